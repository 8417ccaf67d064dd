//! `pipeline run`: the main job on the embedded default. Traffic -> Kinesis
//! invocations per shard (with event-source-mapping checkpoints and retries)
//! -> the real batch core and archiver -> Parquet lake and dead letters on
//! local disk -> a summary that reconciles every record.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use pipeline_aggregators::emulator::{WindowMapping, run_shard};
use pipeline_aggregators::sink::FaultySink;
use pipeline_aggregators::{LocalMetrics, Measures, WindowAggregator};
use pipeline_generator::kinesis;
use pipeline_generator::{Expected, expected_counts, generate};
use pipeline_processors::esm;
use pipeline_processors::faults::{FaultPlan, FaultyDlq, FaultyStore};
use pipeline_processors::lake::read::{TableCounts, count_lake, scan_lake};
use pipeline_processors::{
    BatchProcessor, DeadLetterQueue, LakeArchiver, LakeConfig, LocalDeadLetters, LocalStore,
    RecordHandler, RetryPolicy,
};
use pipeline_schemas::parallel::Workers;
use pipeline_schemas::{DecoderConfig, EventData, RecordParser};
use serde_json::json;

use crate::TrafficArgs;
use crate::lake_totals::add_measures;
use crate::simulate;

/// Options of `pipeline run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    traffic: TrafficArgs,
    /// Output folder: `lake/`, `dead-letters/` and `summary.json` go here.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Probability that an upload or dead-letter write fails transiently
    /// (retried inside the invocation, then by the event source mapping).
    #[arg(long, default_value_t = 0.01)]
    fault_rate: f64,
    /// The event source mapping's `MaximumRetryAttempts` per batch.
    #[arg(long, default_value_t = 10)]
    max_retry_attempts: u32,
    /// `MaximumBatchingWindowInSeconds`, in milliseconds (0: no waiting).
    #[arg(long, default_value_t = 0)]
    batching_window_ms: i64,
    /// `ParallelizationFactor`: concurrent batches per shard, by partition key.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10))]
    parallelization_factor: u32,
    /// Where the valid events come from: the order and user functions driven
    /// by simulated clients, or the traffic generator alone (faster).
    #[arg(long, value_enum, default_value_t = Source::Functions)]
    source: Source,
}

/// Source of the valid events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// Simulated clients call the order functions (embedded adapters).
    Functions,
    /// The traffic generator writes the events directly.
    Generator,
}

struct Totals {
    invocations: usize,
    esm_retries: usize,
    retries: u64,
}

/// The archiver as a function under the in-process event source mapping:
/// it gets the payload bytes Lambda would send and answers as Lambda's
/// handler does.
struct Archiver<'a, H, D> {
    processor: &'a mut BatchProcessor<H, D>,
    retries: u64,
    progress: indicatif::ProgressBar,
}

impl<H: RecordHandler, D: DeadLetterQueue> esm::Function for Archiver<'_, H, D> {
    async fn invoke(&mut self, mut payload: Vec<u8>) -> Result<serde_json::Value, String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let out = self
            .processor
            .process(&mut payload, deadline)
            .await
            .map_err(|e| e.to_string())?;
        self.retries += u64::from(out.stats.retries);
        if out.response.batch_item_failures.is_empty() {
            self.progress.inc(out.stats.records_in as u64);
        }
        serde_json::to_value(&out.response).map_err(|e| e.to_string())
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix:>12} [{bar:40}] {pos}/{len} records ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what.to_owned());
    bar
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..1.0).contains(&args.fault_rate),
        "--fault-rate must be within 0..1"
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run_async(args))
}

async fn run_async(args: &RunArgs) -> anyhow::Result<()> {
    let config = args.traffic.config()?;
    let started = Instant::now();
    eprintln!(
        "generating {} records (seed {}, {} shards, poison {:.2}%, fault rate {:.1}%)...",
        config.events,
        config.seed,
        args.traffic.shards,
        config.poison.total() * 100.0,
        args.fault_rate * 100.0
    );
    let seed = config.seed;
    let records = match args.source {
        Source::Generator => generate(config),
        Source::Functions => {
            let (records, clients) = simulate::traffic(&config).await?;
            eprintln!(
                "simulated clients sent {} requests to the order functions ({} retried with the same Idempotency-Key, {} answered 409)",
                clients.requests, clients.idempotent_retries, clients.conflicts
            );
            records
        }
    };
    let expected = expected_counts(&records);
    let mut expected_items = 0usize;
    let mut parser = RecordParser::new();
    for r in &records {
        if let (Expected::Valid(_), pipeline_generator::Body::Json(bytes)) = (&r.expected, &r.body)
        {
            let mut buf = bytes.clone();
            if let Ok(e) = parser.parse(&mut buf)
                && let EventData::OrderCreated(d) = &e.data
            {
                expected_items += d.items.len();
            }
        }
    }
    let shards = kinesis::route(&records, args.traffic.shards);
    crate::replay::save_stream(&args.out, &shards)?;

    let lake_dir = args.out.join("lake");
    let dlq_dir = args.out.join("dead-letters");
    for dir in [&lake_dir, &dlq_dir] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
    }
    let plan = |salt: u64| {
        if args.fault_rate > 0.0 {
            FaultPlan::Rate {
                rate: args.fault_rate,
                seed: seed ^ salt,
            }
        } else {
            FaultPlan::None
        }
    };
    let retry = RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(2),
        max_backoff: Duration::from_millis(20),
    };
    let store = FaultyStore::new(LocalStore::new(&lake_dir), plan(1));
    let dlq = FaultyDlq::new(LocalDeadLetters::new(&dlq_dir), plan(2));
    let mut processor = BatchProcessor::new(
        LakeArchiver::new(
            store,
            LakeConfig {
                retry,
                ..LakeConfig::default()
            },
        ),
        dlq,
        DecoderConfig {
            max_record_bytes: args.traffic.max_record_bytes,
        },
        retry,
    );
    let mut totals = Totals {
        invocations: 0,
        esm_retries: 0,
        retries: 0,
    };
    let processing = Instant::now();
    let mapping = esm::MappingConfig {
        batch_size: args.traffic.batch_size,
        batching_window_ms: args.batching_window_ms,
        max_retry_attempts: args.max_retry_attempts,
        bisect_on_error: true,
        parallelization_factor: args.parallelization_factor,
    };
    let mut archiver = Archiver {
        processor: &mut processor,
        retries: 0,
        progress: progress_bar(records.len() as u64, "archiver"),
    };
    let report = esm::run(&shards, mapping, &mut archiver).await;
    archiver.progress.finish_and_clear();
    totals.retries += archiver.retries;
    totals.invocations += report.invocations;
    totals.esm_retries += report.retries;
    eprintln!(
        "archiver: {} invocations over {} shards ({} retried, {} bisections)",
        report.invocations,
        shards.len(),
        report.retries,
        report.bisections
    );
    anyhow::ensure!(
        report.on_failure.is_empty(),
        "batches exhausted their retries and went to the on-failure destination: {:?}",
        report.on_failure
    );
    let processing = processing.elapsed();

    // The metrics aggregator: a second consumer of the same shards, with its
    // own (tumbling-window) event source mapping and checkpoints.
    let metrics_started = Instant::now();
    let metrics_dir = args.out.join("metrics");
    if metrics_dir.exists() {
        std::fs::remove_dir_all(&metrics_dir)
            .with_context(|| format!("clearing {}", metrics_dir.display()))?;
    }
    let mut aggregator = WindowAggregator::new(
        FaultySink::new(LocalMetrics::new(&metrics_dir), plan(3)),
        DecoderConfig {
            max_record_bytes: args.traffic.max_record_bytes,
        },
    );
    let mut windows = 0;
    for shard in &shards {
        let mapping = WindowMapping {
            window_ms: 60_000,
            batch_size: args.traffic.batch_size,
            max_retries: args.max_retry_attempts,
            empty_final: false,
        };
        let stats = run_shard(&mut aggregator, shard, mapping, || args.traffic.batch_size)
            .await
            .map_err(anyhow::Error::msg)?;
        windows += stats.windows;
        totals.invocations += stats.invocations;
        totals.esm_retries += stats.retries;
    }
    let metrics_time = metrics_started.elapsed();
    let faults = processor.handler().store().faults().injected()
        + processor.dlq().faults().injected()
        + aggregator.sink().injected();

    // Reconcile: every record is a lake row or a dead letter, exactly once
    // after de-duplication by event_id; one pass over the lake gives both the
    // row counts and the measures to check the metrics against.
    let mut lake: BTreeMap<&'static str, TableCounts> = BTreeMap::new();
    let mut from_lake = Measures::default();
    let files = scan_lake(processor.handler().store().inner(), |table, batch, mask| {
        lake.entry(table.name()).or_default().add(batch, mask)?;
        add_measures(&mut from_lake, table, batch, mask)
    })
    .await?;
    for (table, n) in files {
        lake.entry(table).or_default().files = n;
    }
    let letters = LocalDeadLetters::new(&dlq_dir).read_all()?;
    let mut dead: BTreeMap<String, usize> = BTreeMap::new();
    for l in &letters {
        *dead
            .entry(l["reason"].as_str().unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    let mut lake_by_type: BTreeMap<String, usize> = BTreeMap::new();
    for t in ["user_events", "order_events"] {
        for (k, v) in &lake[t].by_event_type {
            *lake_by_type.entry(k.clone()).or_insert(0) += v;
        }
    }
    println!();
    println!("{:<34} {:>10} {:>12}", "", "produced", "lake / DLQ");
    let mut problems = Vec::new();
    for (k, want) in &expected {
        let (name, got) = match k {
            Expected::Valid(t) => (
                format!("event {t}"),
                lake_by_type.get(t.as_str()).copied().unwrap_or(0),
            ),
            Expected::Poison(r) => (
                format!("poison {r}"),
                dead.get(r.as_str()).copied().unwrap_or(0),
            ),
        };
        let mark = if got == *want { "" } else { "  <-- mismatch" };
        if got != *want {
            problems.push(name.clone());
        }
        println!("{name:<34} {want:>10} {got:>12}{mark}");
    }
    let items = lake["order_items"].unique_rows;
    println!(
        "{:<34} {expected_items:>10} {items:>12}",
        "order line items"
    );
    if items != expected_items {
        problems.push("order_items".into());
    }
    let written = aggregator.sink().inner().read_all()?;
    let mut metric_totals = Measures::default();
    for r in &written {
        metric_totals.add(&r.measures);
    }
    println!();
    println!(
        "{:<34} {:>12} {:>12}",
        "metric (all minutes)", "metrics", "from lake"
    );
    for ((name, got), (_, want)) in metric_totals.named().iter().zip(from_lake.named()) {
        let mark = if *got == want { "" } else { "  <-- mismatch" };
        if *got != want {
            problems.push(format!("metric {name}"));
        }
        println!("{name:<34} {got:>12} {want:>12}{mark}");
    }
    println!(
        "{} metric records from {windows} tumbling windows, in {:.2} s",
        written.len(),
        metrics_time.as_secs_f64()
    );
    let produced = records.len();
    let landed: usize = lake_by_type.values().sum::<usize>() + dead.values().sum::<usize>();
    println!();
    for (t, c) in &lake {
        println!(
            "lake {t:<14} {:>5} files {:>9} rows ({} duplicates from retries, removed by event_id)",
            c.files,
            c.rows,
            c.rows - c.unique_rows
        );
    }
    println!(
        "{} invocations, {} transient faults injected, {} retried inside invocations, {} batches retried by the event source mapping",
        totals.invocations, faults, totals.retries, totals.esm_retries
    );
    println!(
        "processed {produced} records in {:.2} s ({:.0} records/s, {} cores available to the functions, faults and retries included); total {:.1} s",
        processing.as_secs_f64(),
        produced as f64 / processing.as_secs_f64().max(1e-9),
        Workers::new(0).threads(),
        started.elapsed().as_secs_f64()
    );
    let summary = json!({
        "records_produced": produced,
        "expected": expected.iter().map(|(k, v)| (match k {
            Expected::Valid(t) => format!("event:{t}"),
            Expected::Poison(r) => format!("poison:{r}"),
        }, v)).collect::<BTreeMap<_, _>>(),
        "expected_order_items": expected_items,
        "lake": lake.iter().map(|(t, c)| (t.to_string(), json!({
            "files": c.files, "rows": c.rows, "unique_rows": c.unique_rows, "by_event_type": c.by_event_type,
        }))).collect::<serde_json::Map<_, _>>(),
        "dead_letters": dead,
        "metric_totals": metric_totals.named().iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "invocations": totals.invocations,
        "faults_injected": faults,
        "reconciled": problems.is_empty() && landed == produced,
    });
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(
        args.out.join("summary.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    anyhow::ensure!(
        problems.is_empty() && landed == produced,
        "does not reconcile: {problems:?}; {produced} produced, {landed} in lake + DLQ"
    );
    println!(
        "reconciled: {produced} records produced = lake rows + dead letters, and metric totals = totals from the lake; lake at {}",
        lake_dir.display()
    );
    // compact the small files, then check nothing changed for a reader
    let (merged, into) = crate::compact::compact_lake(
        &args.out,
        pipeline_processors::lake::compact::CompactionSizes::default(),
    )
    .await?;
    let compacted = count_lake(processor.handler().store().inner()).await?;
    for (t, c) in &compacted {
        anyhow::ensure!(
            c.unique_rows == lake[t].unique_rows && c.rows == c.unique_rows,
            "compaction changed {t}: {c:?} vs {:?}",
            lake[t]
        );
    }
    println!(
        "compacted {merged} small files into {into}; every table has the same rows, without duplicates"
    );
    let html = crate::report::write_all(&args.out).await?;
    let html = std::fs::canonicalize(&html).unwrap_or(html);
    println!("reports: open {}", html.display());
    Ok(())
}
