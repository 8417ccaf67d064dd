//! `pipeline`: the main job and its tools.

mod compact;
mod generate;
mod lake_totals;
#[cfg(feature = "aws")]
mod redrive;
mod replay;
mod report;
mod run;
mod simulate;

use clap::{Args, Parser, Subcommand};
use pipeline_generator::{PoisonMix, TrafficConfig};

/// A high-throughput serverless event pipeline, run on one machine.
#[derive(Debug, Parser)]
#[command(name = "pipeline", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job: generate traffic, deliver it as Kinesis invocations,
    /// decode and validate every record, and reconcile the verdicts.
    Run(run::RunArgs),
    /// Write generated traffic as NDJSON or as Kinesis invocation payloads.
    Generate(generate::GenerateArgs),
    /// Run the SQL reports over a lake: CSV, JSON and one HTML page.
    Report(report::ReportArgs),
    /// Merge each partition's small files into files of about 128 MB, dropping duplicate event ids.
    Compact(compact::CompactArgs),
    /// Re-run the archiver over a shard of a previous run from a sequence number.
    Replay(replay::ReplayArgs),
    /// Bring back what the deployed pipeline set aside: failed batches from the
    /// on-failure destination, or dead letters after a fix (feature `aws`).
    #[cfg(feature = "aws")]
    Redrive(redrive::RedriveArgs),
}

/// Traffic options shared by the subcommands.
#[derive(Debug, Clone, Args)]
pub struct TrafficArgs {
    /// Number of records (valid and poison).
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of Kinesis shards (records are routed by MD5 of the partition key).
    #[arg(long, default_value_t = 4)]
    pub shards: u32,
    /// Share of poison records, spread over every kind.
    #[arg(long, default_value_t = 0.01)]
    pub poison_rate: f64,
    /// Per-kind poison rates instead, e.g. `malformed_json=0.01,total_mismatch=0.002`.
    #[arg(long)]
    pub poison: Option<String>,
    /// Records per invocation (the event source mapping's `BatchSize`).
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Record size limit in bytes (Kinesis: 1 MiB).
    #[arg(long, default_value_t = pipeline_schemas::invocation::DEFAULT_MAX_RECORD_BYTES)]
    pub max_record_bytes: usize,
}

impl TrafficArgs {
    /// The generator configuration these options describe.
    pub fn config(&self) -> anyhow::Result<TrafficConfig> {
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.poison_rate),
            "--poison-rate must be within 0..=1"
        );
        anyhow::ensure!(self.shards >= 1, "--shards must be at least 1");
        anyhow::ensure!(
            (1..=10_000).contains(&self.batch_size),
            "--batch-size must be 1 to 10000 (Lambda's limit for Kinesis)"
        );
        let poison = match &self.poison {
            Some(spec) => PoisonMix::parse(spec)?,
            None => PoisonMix::uniform(self.poison_rate),
        };
        Ok(TrafficConfig {
            events: self.events,
            seed: self.seed,
            poison,
            max_record_bytes: self.max_record_bytes,
            ..TrafficConfig::default()
        })
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Generate(args) => generate::generate(&args),
        Command::Report(args) => report::report(&args),
        Command::Compact(args) => compact::compact(&args),
        Command::Replay(args) => replay::replay(&args),
        #[cfg(feature = "aws")]
        Command::Redrive(args) => redrive::redrive_cmd(&args),
    }
}
