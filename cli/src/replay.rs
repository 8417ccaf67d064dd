//! `pipeline replay`: re-runs the archiver over a shard from a checkpoint (a
//! sequence number), as an operator does after fixing a sink. The main job
//! keeps the stream it delivered under `out/stream/`; a replay rewrites what
//! was already stored (deterministic keys) and adds nothing a reader counts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use pipeline_generator::Expected;
use pipeline_generator::kinesis::KinesisRecord;
use pipeline_processors::lake::read::count_lake;
use pipeline_processors::{
    BatchProcessor, LakeArchiver, LakeConfig, LocalDeadLetters, LocalStore, RetryPolicy, esm,
};
use pipeline_schemas::{DecoderConfig, ReasonCode};
use serde_json::{Value, json};

/// Options of `pipeline replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The main job's output folder (holds `stream/`, `lake/`, `dead-letters/`).
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// The shard, e.g. `shardId-000000000001`.
    #[arg(long)]
    shard: String,
    /// Re-deliver from this sequence number on (default: the shard's start).
    #[arg(long)]
    from: Option<String>,
    /// Records per invocation.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
}

/// Writes each shard's records to `<out>/stream/<shard>.jsonl`.
pub fn save_stream(out: &Path, shards: &[Vec<KinesisRecord>]) -> anyhow::Result<()> {
    let dir = out.join("stream");
    std::fs::create_dir_all(&dir)?;
    for shard in shards {
        let Some(first) = shard.first() else { continue };
        let mut text = String::new();
        for r in shard {
            let line = json!({"sequence_number": r.sequence_number, "partition_key": r.partition_key,
                              "data": r.data_base64, "arrival_ms": r.arrival_ms, "shard": r.shard});
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let path = dir.join(format!(
            "{}.jsonl",
            pipeline_generator::kinesis::shard_id(first.shard)
        ));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn load_shard(out: &Path, shard: &str) -> anyhow::Result<Vec<KinesisRecord>> {
    let path = out.join("stream").join(format!("{shard}.jsonl"));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)?;
            let s = |k: &str| {
                v[k].as_str()
                    .map(str::to_owned)
                    .context("stream file field")
            };
            Ok(KinesisRecord {
                shard: v["shard"].as_u64().context("shard")? as u32,
                sequence_number: s("sequence_number")?,
                partition_key: s("partition_key")?,
                data_base64: s("data")?,
                arrival_ms: v["arrival_ms"].as_i64().context("arrival")?,
                expected: Expected::Poison(ReasonCode::MalformedJson),
            })
        })
        .collect()
}

struct Archiver<'a>(&'a mut BatchProcessor<LakeArchiver<LocalStore>, LocalDeadLetters>);

impl esm::Function for Archiver<'_> {
    async fn invoke(&mut self, mut payload: Vec<u8>) -> Result<Value, String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let out = self
            .0
            .process(&mut payload, deadline)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::to_value(&out.response).map_err(|e| e.to_string())
    }
}

pub fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let records = load_shard(&args.out, &args.shard)?;
    let start = match &args.from {
        None => 0,
        Some(seq) => records
            .iter()
            .position(|r| &r.sequence_number == seq)
            .with_context(|| format!("{seq} is not a sequence number of {}", args.shard))?,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = LocalStore::new(args.out.join("lake"));
        let before = count_lake(&store).await?;
        let mut processor = BatchProcessor::new(
            LakeArchiver::new(store.clone(), LakeConfig::default()),
            LocalDeadLetters::new(args.out.join("dead-letters")),
            DecoderConfig::default(),
            RetryPolicy::default(),
        );
        let mapping = esm::MappingConfig {
            batch_size: args.batch_size,
            ..esm::MappingConfig::default()
        };
        let report = esm::run(&[records[start..].to_vec()], mapping, &mut Archiver(&mut processor)).await;
        anyhow::ensure!(report.on_failure.is_empty(), "replay failed: {:?}", report.on_failure);
        let after = count_lake(&store).await?;
        for (t, c) in &after {
            anyhow::ensure!(
                c.unique_rows == before[t].unique_rows,
                "{t}: {} distinct rows before the replay, {} after",
                before[t].unique_rows,
                c.unique_rows
            );
        }
        println!(
            "replayed {} records of {} from {} in {} invocations; the lake reads the same (duplicates are removed by event_id and compaction)",
            records.len() - start,
            args.shard,
            records[start].sequence_number,
            report.invocations
        );
        Ok(())
    })
}
