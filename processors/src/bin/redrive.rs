//! `redrive`: re-runs batches that the event source mapping gave up on. Reads
//! the on-failure destination (an SQS queue), fetches each batch's records
//! from the Kinesis stream, runs them through the archiver configured like the
//! `event-processor` (`LAKE_URI`, `DLQ_URI`, ...), and deletes a message only
//! when its whole batch was durably handled.
//!
//! ```sh
//! LAKE_URI=s3://my-lake/events/ DLQ_URI=https://sqs.../dlq \
//!   redrive --on-failure-queue https://sqs.../event-processor-on-failure --stream events
//! ```

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use pipeline_processors::config::ProcessorConfig;
use pipeline_processors::{BatchProcessor, LakeArchiver};

/// Re-run the batches of the on-failure destination.
#[derive(Debug, Parser)]
#[command(name = "redrive", version, about)]
struct Args {
    /// URL of the on-failure destination queue.
    #[arg(long)]
    on_failure_queue: String,
    /// Name of the Kinesis stream.
    #[arg(long)]
    stream: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config =
        ProcessorConfig::from_env().context("configure the archiver as for event-processor")?;
    let (lake, dlq) = config.adapters().await;
    let mut processor = BatchProcessor::new(
        LakeArchiver::new(lake, config.lake_config()),
        dlq,
        config.decoder(),
        config.retry,
    );
    let sdk = pipeline_processors::aws::sdk_config().await;
    let report = pipeline_processors::redrive::redrive(
        &aws_sdk_sqs::Client::new(&sdk),
        &args.on_failure_queue,
        &aws_sdk_kinesis::Client::new(&sdk),
        &args.stream,
        &mut processor,
        Instant::now() + Duration::from_secs(args.timeout_secs),
    )
    .await
    .map_err(anyhow::Error::msg)?;
    println!(
        "{} messages, {} batches redriven ({} records), {} kept",
        report.messages,
        report.redriven,
        report.records,
        report.kept.len()
    );
    for why in &report.kept {
        println!("kept: {why}");
    }
    anyhow::ensure!(report.kept.is_empty(), "some batches could not be redriven");
    Ok(())
}
