//! `pipeline run`: the main job. Today: traffic -> Kinesis invocations ->
//! SIMD decoding and validation -> a reconciled summary.

use std::collections::BTreeMap;
use std::time::Instant;

use clap::Args;
use pipeline_generator::kinesis::{self, StreamInfo};
use pipeline_generator::{Expected, expected_counts, generate};
use pipeline_schemas::{DecoderConfig, InvocationDecoder};

use crate::TrafficArgs;

/// Options of `pipeline run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    traffic: TrafficArgs,
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let config = args.traffic.config()?;
    let started = Instant::now();
    eprintln!(
        "generating {} records (seed {}, {} shards, poison {:.2}%)...",
        config.events,
        config.seed,
        args.traffic.shards,
        config.poison.total() * 100.0
    );
    let records = generate(config);
    let expected = expected_counts(&records);
    let shards = kinesis::route(&records, args.traffic.shards);
    let mut payloads =
        kinesis::invocations(&shards, args.traffic.batch_size, &StreamInfo::default());
    let payload_bytes: usize = payloads.iter().map(Vec::len).sum();
    eprintln!(
        "built {} invocations, {:.1} MB, in {:.2?}",
        payloads.len(),
        payload_bytes as f64 / 1e6,
        started.elapsed()
    );

    let mut decoder = InvocationDecoder::new(DecoderConfig {
        max_record_bytes: args.traffic.max_record_bytes,
    });
    let mut got: BTreeMap<Expected, usize> = BTreeMap::new();
    let mut mismatches = 0usize;
    let decode_started = Instant::now();
    let mut flat = shards
        .iter()
        .flat_map(|s| s.chunks(args.traffic.batch_size.max(1)));
    for payload in &mut payloads {
        let batch = flat.next().unwrap_or(&[]);
        let decoded = decoder.decode(payload)?;
        for (rec, src) in decoded.iter().zip(batch) {
            let verdict = match &rec.outcome {
                Ok(e) => Expected::Valid(e.event_type()),
                Err(r) => Expected::Poison(r.reason),
            };
            if verdict != src.expected {
                mismatches += 1;
            }
            *got.entry(verdict).or_insert(0) += 1;
        }
    }
    let elapsed = decode_started.elapsed();

    println!();
    println!("{:<32} {:>10} {:>10}", "verdict", "expected", "decoded");
    let mut keys: Vec<_> = expected.keys().chain(got.keys()).copied().collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let name = match k {
            Expected::Valid(t) => format!("event {t}"),
            Expected::Poison(r) => format!("poison {r}"),
        };
        println!(
            "{name:<32} {:>10} {:>10}",
            expected.get(&k).copied().unwrap_or(0),
            got.get(&k).copied().unwrap_or(0)
        );
    }
    let total: usize = got.values().sum();
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!();
    println!(
        "decoded {total} records in {:.1} ms: {:.2} M records/s, {:.0} MB/s of invocation payload (one core)",
        secs * 1e3,
        total as f64 / secs / 1e6,
        payload_bytes as f64 / secs / 1e6
    );
    anyhow::ensure!(
        total == records.len(),
        "{} records produced but {total} decoded",
        records.len()
    );
    anyhow::ensure!(
        mismatches == 0,
        "{mismatches} records got a verdict other than intended"
    );
    anyhow::ensure!(got == expected, "verdict counts do not reconcile");
    println!("reconciled: every record got its intended verdict");
    Ok(())
}
