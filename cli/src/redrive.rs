//! `pipeline redrive`: bring back what the deployed pipeline set aside
//! (feature `aws`; it talks to the real queues and stream).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use pipeline_processors::config::ProcessorConfig;
use pipeline_processors::redrive::{AwsClients, PoisonOptions, redrive, redrive_poison};
use pipeline_processors::{BatchProcessor, LakeArchiver};
use pipeline_schemas::DecoderConfig;

/// Options of `pipeline redrive`.
#[derive(Debug, Args)]
pub struct RedriveArgs {
    #[command(subcommand)]
    what: What,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600, global = true)]
    timeout_secs: u64,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Batches the event source mapping gave up on: read the on-failure
    /// destination, fetch each batch from the stream, re-run it through the
    /// archiver (configured like `event-processor`: LAKE_URI, DLQ_URI, ...),
    /// delete the message when the whole batch is handled.
    Batches {
        /// URL of the on-failure destination queue.
        #[arg(long)]
        on_failure_queue: String,
        /// Name of the Kinesis stream.
        #[arg(long)]
        stream: String,
    },
    /// Dead letters, once a fix is deployed: re-validate each record with this
    /// build's parser and re-publish the ones it now accepts to the stream
    /// (same bytes, same partition key); delete their messages.
    Poison {
        /// URL of the dead-letter queue.
        #[arg(long)]
        dead_letter_queue: String,
        /// Name of the Kinesis stream.
        #[arg(long)]
        stream: String,
        /// Only letters with this reason code (repeatable).
        #[arg(long = "reason")]
        reasons: Vec<String>,
        /// Report what would be re-published; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Re-publish even records this build still rejects.
        #[arg(long)]
        force: bool,
        /// Record size limit the consumers run with (their MAX_RECORD_BYTES).
        #[arg(long, default_value_t = pipeline_schemas::invocation::DEFAULT_MAX_RECORD_BYTES)]
        max_record_bytes: usize,
    },
}

pub fn redrive_cmd(args: &RedriveArgs) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let path_style = std::env::var("S3_FORCE_PATH_STYLE").as_deref() == Ok("true");
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let clients = AwsClients::from_env(path_style).await;
        match &args.what {
            What::Batches {
                on_failure_queue,
                stream,
            } => {
                let config = ProcessorConfig::from_env()
                    .context("configure the archiver as for event-processor")?;
                let (lake, dlq) = config.adapters().await;
                let mut processor = BatchProcessor::new(
                    LakeArchiver::new(lake, config.lake_config()),
                    dlq,
                    config.decoder(),
                    config.retry,
                );
                let report = redrive(
                    &clients.sqs,
                    on_failure_queue,
                    &clients.kinesis,
                    stream,
                    &mut processor,
                    deadline,
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
            }
            What::Poison {
                dead_letter_queue,
                stream,
                reasons,
                dry_run,
                force,
                max_record_bytes,
            } => {
                for r in reasons {
                    anyhow::ensure!(
                        pipeline_schemas::ReasonCode::from_code(r).is_some(),
                        "--reason {r}: not a reason code (see docs/event-contract.md)"
                    );
                }
                let options = PoisonOptions {
                    reasons: reasons.clone(),
                    dry_run: *dry_run,
                    force: *force,
                    decoder: DecoderConfig {
                        max_record_bytes: *max_record_bytes,
                    },
                };
                let report =
                    redrive_poison(&clients, dead_letter_queue, stream, &options, deadline)
                        .await
                        .map_err(anyhow::Error::msg)?;
                println!(
                    "{} messages: {} re-published, {} would be (dry run), {} filtered out, {} still rejected {:?}, {} kept",
                    report.messages,
                    report.republished,
                    report.would_republish,
                    report.filtered,
                    report.still_rejected.values().sum::<usize>(),
                    report.still_rejected,
                    report.kept.len()
                );
                for why in &report.kept {
                    println!("kept: {why}");
                }
                anyhow::ensure!(report.kept.is_empty(), "some letters could not be redriven");
            }
        }
        Ok(())
    })
}
