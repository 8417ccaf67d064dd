//! The aggregator under Lambda's tumbling-window semantics: totals equal a
//! brute-force recomputation over the stream for many seeds, whatever the
//! batch boundaries, with failed final writes retried (re-batched) and
//! duplicated records.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use pipeline_aggregators::emulator::{WindowMapping, run_shard};
use pipeline_aggregators::measures::add_event;
use pipeline_aggregators::sink::FaultySink;
use pipeline_aggregators::window::{STATE_BUDGET_BYTES, STATE_KEY, totals};
use pipeline_aggregators::{Aggregates, LocalMetrics, WindowAggregator, WindowState};
use pipeline_generator::kinesis::{self, KinesisRecord, StreamInfo};
use pipeline_generator::rng::Rng;
use pipeline_generator::{PoisonMix, TrafficConfig, generate};
use pipeline_processors::faults::FaultPlan;
use pipeline_schemas::{DecoderConfig, RecordParser};
use proptest::prelude::*;

/// A folder for one test, removed when it ends.
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("agg-{name}-"))
        .tempdir()
        .expect("temp dir")
}

/// Brute force: every distinct valid event, added once.
fn brute_force(shards: &[Vec<KinesisRecord>]) -> Aggregates {
    let mut agg = Aggregates::new();
    let mut seen = HashSet::new();
    let mut parser = RecordParser::new();
    for r in shards.iter().flatten() {
        let Ok(mut bytes) = base64_simd::STANDARD.decode_to_vec(&r.data_base64) else {
            continue;
        };
        if bytes.len() > 64 * 1024 {
            continue; // dead-lettered as record_too_large, however valid its JSON
        }
        if let Ok(e) = parser.parse(&mut bytes)
            && seen.insert(e.event_id.to_owned())
        {
            add_event(&mut agg, &e);
        }
    }
    agg
}

fn traffic(seed: u64, events: usize, shards: u32, duplicates: f64) -> Vec<Vec<KinesisRecord>> {
    let records = generate(TrafficConfig {
        events,
        seed,
        poison: PoisonMix::uniform(0.02),
        max_record_bytes: 64 * 1024,
        ..TrafficConfig::default()
    });
    let mut routed = kinesis::route(&records, shards);
    // producers that retry publish the same event twice, adjacent in the shard
    let mut rng = Rng::new(seed ^ 0xD0D0);
    for shard in &mut routed {
        let mut out = Vec::with_capacity(shard.len());
        for r in shard.drain(..) {
            let dup = rng.chance(duplicates);
            out.push(r.clone());
            if dup {
                let mut again = r;
                again.sequence_number.push('1'); // a new record, same event
                out.push(again);
            }
        }
        *shard = out;
    }
    routed
}

/// Runs the traffic of `seed` with `fault_rate` failed writes; returns the faults injected.
async fn check(seed: u64, fault_rate: f64) -> u64 {
    let shards = traffic(seed, 3000, 3, 0.03);
    let root = temp_dir("windows");
    let sink = FaultySink::new(
        LocalMetrics::new(root.path()),
        if fault_rate > 0.0 {
            FaultPlan::Rate {
                rate: fault_rate,
                seed,
            }
        } else {
            FaultPlan::None
        },
    );
    let mut agg = WindowAggregator::new(
        sink,
        DecoderConfig {
            max_record_bytes: 64 * 1024,
        },
    );
    let mut rng = Rng::new(seed);
    let mut retries = 0;
    for shard in &shards {
        let mapping = WindowMapping {
            window_ms: 5_000,
            batch_size: 400,
            max_retries: 200,
            empty_final: rng.chance(0.3),
        };
        let mut sizes = Rng::new(seed ^ 7);
        let stats = run_shard(&mut agg, shard, mapping, || sizes.range(1, 400) as usize)
            .await
            .expect("windows close");
        retries += stats.retries;
    }
    let written = agg.sink().inner().read_all().expect("metrics");
    let got = totals(&written);
    let want = brute_force(&shards);
    if got != want {
        let sum = |a: &Aggregates| {
            let mut t = pipeline_aggregators::Measures::default();
            a.values().for_each(|m| t.add(m));
            t
        };
        let missing: Vec<_> = want
            .keys()
            .filter(|k| !got.contains_key(*k))
            .take(3)
            .collect();
        panic!(
            "seed {seed}: {} series written, {} expected; totals {:?} vs {:?}; e.g. missing {missing:?}",
            got.len(),
            want.len(),
            sum(&got),
            sum(&want)
        );
    }
    // every injected fault fails a final write, which the mapping retries
    let injected = agg.sink().injected();
    assert!(
        retries as u64 >= injected,
        "{injected} faults injected, {retries} retries"
    );
    injected
}

#[tokio::test]
async fn totals_equal_brute_force_with_failed_writes_and_duplicates() {
    assert!(check(1, 0.5).await > 0, "faults were injected and retried");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn totals_equal_brute_force_for_any_seed_and_batching(seed in any::<u64>(), faulty in any::<bool>()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        // (a seed may draw no fault over a few windows; the fixed-seed test always does)
        rt.block_on(check(seed, if faulty { 0.4 } else { 0.0 }));
    }
}

/// A large invocation (counted on several threads) gives the same state,
/// the same counts and the same metric records as on one thread, with
/// duplicates adjacent and far apart (one in each half) and poison.
#[tokio::test]
async fn counting_on_several_threads_gives_what_one_thread_gives() {
    let mut shard = traffic(5, 6000, 1, 0.03).remove(0);
    for i in [3, 40, 2500] {
        let mut again = shard[i].clone();
        again.sequence_number.push('7');
        shard.push(again);
    }
    let brute = brute_force(std::slice::from_ref(&shard));
    let fields = |is_final| kinesis::WindowFields::first_minute(Vec::new(), is_final);
    let mut outcomes = Vec::new();
    for threads in [1, 2, 3] {
        let root = temp_dir(&format!("threads-{threads}"));
        let mut agg = WindowAggregator::new(
            LocalMetrics::new(root.path()),
            DecoderConfig {
                max_record_bytes: 64 * 1024,
            },
        )
        .with_decode_threads(threads);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut open =
            kinesis::invocation_payload_with(&shard, &StreamInfo::default(), Some(&fields(false)));
        let open = agg.process(&mut open, deadline).await.expect("a window");
        let mut last =
            kinesis::invocation_payload_with(&shard, &StreamInfo::default(), Some(&fields(true)));
        let last = agg.process(&mut last, deadline).await.expect("a window");
        assert_eq!(totals(&agg.sink().read_all().expect("metrics")), brute);
        let s = &open.stats;
        assert!(s.duplicates >= 3 && s.poison > 0, "{s:?}");
        outcomes.push((
            open.response,
            (s.counted, s.duplicates, s.poison),
            last.response,
        ));
    }
    assert_eq!(outcomes[0], outcomes[1], "two threads");
    assert_eq!(outcomes[0], outcomes[2], "three threads");
}

#[tokio::test]
async fn a_window_past_lambdas_state_limit_drops_its_digests_not_its_counts() {
    // a window already holding 95,000 events' digests (about 1,013 KB encoded),
    // then two invocations of 300 and 200 new events
    let shard = traffic(9, 500, 1, 0.0).remove(0);
    let mut carried = WindowState::default();
    let digests: Vec<Option<u64>> = (0..95_000u64)
        .map(|i| Some(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect();
    carried.admit([digests.as_slice()]);
    let fields = kinesis::WindowFields::first_minute;
    let state_limit = temp_dir("state-limit");
    let mut agg = WindowAggregator::new(
        LocalMetrics::new(state_limit.path()),
        DecoderConfig {
            max_record_bytes: 64 * 1024,
        },
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let state = vec![(STATE_KEY.to_owned(), carried.encode())];
    let mut first = kinesis::invocation_payload_with(
        &shard[..300],
        &StreamInfo::default(),
        Some(&fields(state, false)),
    );
    let first = agg
        .process(&mut first, deadline)
        .await
        .expect("the invocation succeeds");
    let s = &first.stats;
    assert!(
        s.digests_forgotten >= 95_000 && s.state_bytes <= STATE_BUDGET_BYTES,
        "{s:?}"
    );
    let returned = first.response["state"][STATE_KEY]
        .as_str()
        .expect("a state");
    assert!(
        WindowState::decode(returned)
            .expect("state")
            .seen()
            .is_empty(),
        "the digests are dropped"
    );
    // the window goes on from the returned state, its counts whole
    let state = vec![(STATE_KEY.to_owned(), returned.to_owned())];
    let mut last = kinesis::invocation_payload_with(
        &shard[300..],
        &StreamInfo::default(),
        Some(&fields(state, true)),
    );
    agg.process(&mut last, deadline)
        .await
        .expect("the window closes");
    assert_eq!(
        totals(&agg.sink().read_all().expect("metrics")),
        brute_force(std::slice::from_ref(&shard))
    );
}

#[tokio::test]
async fn an_invocation_without_a_window_is_refused() {
    let shards = traffic(3, 50, 1, 0.0);
    let mut payload = kinesis::invocation_payload(&shards[0], &StreamInfo::default());
    let nowindow = temp_dir("nowindow");
    let mut agg =
        WindowAggregator::new(LocalMetrics::new(nowindow.path()), DecoderConfig::default());
    let err = agg
        .process(&mut payload, Instant::now() + Duration::from_secs(5))
        .await
        .expect_err("no window");
    assert!(err.to_string().contains("TumblingWindowInSeconds"));
}

/// A state this build cannot read (a rollback across a change of its format,
/// whether under our key or a later one) must fail the invocation, so Lambda retries it and the alarm fires, rather
/// than close the window with counts that start from nothing.
#[tokio::test]
async fn a_window_state_this_build_cannot_read_fails_the_invocation_and_writes_nothing() {
    let shard = traffic(4, 40, 1, 0.0).remove(0);
    let dir = temp_dir("bad-state");
    let mut agg = WindowAggregator::new(LocalMetrics::new(dir.path()), DecoderConfig::default());
    let unsorted = {
        let mut s = WindowState::default();
        s.admit([[Some(1u64), Some(2)].as_slice()]);
        // the same digests, their base64 swapped into descending order
        let encoded = s.encode();
        assert!(encoded.contains("AQAAAAAAAAACAAAAAAAAAA=="), "{encoded}");
        encoded.replace("AQAAAAAAAAACAAAAAAAAAA==", "AgAAAAAAAAABAAAAAAAAAA==")
    };
    let states = [
        (STATE_KEY, "not a state"),
        (STATE_KEY, "{\"s\":[],\"e\":\"!!\"}"),
        (STATE_KEY, unsorted.as_str()),
        // a later build's format under its own key
        ("aggregates_v2", "{}"),
    ];
    for (key, bad) in states {
        let state = vec![(key.to_owned(), bad.to_owned())];
        let mut payload = kinesis::invocation_payload_with(
            &shard,
            &StreamInfo::default(),
            Some(&kinesis::WindowFields::first_minute(state, true)),
        );
        let err = agg
            .process(&mut payload, Instant::now() + Duration::from_secs(5))
            .await
            .expect_err("an unreadable state is an error");
        assert!(
            err.to_string().starts_with("window state is unreadable"),
            "{bad}: {err}"
        );
    }
    assert!(
        agg.sink().read_all().expect("metrics").is_empty(),
        "no metric records from a window whose earlier counts are unknown"
    );
}

/// The dashboards name only measures the aggregator writes, and always sum.
#[test]
fn dashboards_use_the_measure_names_we_write() {
    let known: Vec<&str> = pipeline_aggregators::Measures::default()
        .named()
        .iter()
        .map(|(n, _)| *n)
        .collect();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/timestream");
    let grafana: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/grafana-dashboard.json")).expect("dashboard"),
    )
    .expect("dashboard JSON");
    let mut queries: Vec<String> = grafana["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .map(|p| {
            p["targets"][0]["rawQuery"]
                .as_str()
                .expect("query")
                .to_owned()
        })
        .collect();
    let sql = std::fs::read_to_string(format!("{dir}/dashboard_queries.sql")).expect("queries");
    queries.extend(
        sql.split(';')
            .filter(|q| q.contains("SELECT"))
            .map(str::to_owned),
    );
    assert!(queries.len() >= 8);
    for q in &queries {
        let mut used = 0;
        for word in q.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            let measure_like = word.ends_with("_cents")
                || ["orders_", "payments_", "items_", "signups", "logins"]
                    .iter()
                    .any(|p| word.starts_with(p));
            if measure_like {
                assert!(
                    known.contains(&word),
                    "{word} is not a measure we write: {q}"
                );
                used += 1;
            }
        }
        assert!(
            used > 0 && q.contains("SUM("),
            "every query sums measures: {q}"
        );
    }
}
