//! One core against two, measured interleaved: on a shared machine the speed
//! of the second vCPU changes from one minute to the next, so two criterion
//! benchmarks run a minute apart can disagree about the ratio by 15%. Here
//! each round times a one-thread invocation and a two-thread one back to back
//! (alternating which goes first) and the ratio is of the medians.
//!
//! ```sh
//! cargo run --profile bench -p pipeline-benches --example scaling -- pipeline 200 0
//! ```
//!
//! Arguments: `archive`, `aggregate` or `pipeline` (both functions, as
//! `--bench pipeline` runs them); rounds; a pause in milliseconds before
//! each invocation, long enough (20) for the helper threads to stop spinning
//! and their vCPU to be parked, as after an idle spell on Lambda; and
//! optionally `one`, to run the one-thread invocations only. Under callgrind
//! that is the way to count an invocation's instructions: two-thread
//! invocations wake helper threads, whose spinning callgrind counts too.
//!
//! ```sh
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg3.out \
//!     target/release/examples/scaling archive 3 0 one   # 6 invocations
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg6.out \
//!     target/release/examples/scaling archive 6 0 one   # 12: the difference / 6 is one
//! ```

use std::time::{Duration, Instant};

use pipeline_aggregators::WindowAggregator;
use pipeline_benches::fixtures::{
    CountingSink, NullDlq, NullStore, archiver, deadline, payload, runtime,
};
use pipeline_processors::{BatchProcessor, LakeArchiver};
use pipeline_schemas::DecoderConfig;

const EVENTS: usize = 10_000;

/// The functions one invocation goes through, on a given thread count.
struct Functions {
    archiver: Option<BatchProcessor<LakeArchiver<NullStore>, NullDlq>>,
    aggregator: Option<WindowAggregator<CountingSink>>,
}

impl Functions {
    fn new(job: &str, threads: usize) -> Self {
        Functions {
            archiver: (job != "aggregate").then(|| archiver(NullStore::default(), threads)),
            aggregator: (job != "archive").then(|| {
                WindowAggregator::new(CountingSink::default(), DecoderConfig::default())
                    .with_decode_threads(threads)
            }),
        }
    }

    /// Handles one invocation; returns the time taken. Each function gets
    /// its own copy of the payload made just before it runs (untimed), as
    /// each Lambda reads its own off the socket: copying both first left the
    /// archiver's out of cache, behind the aggregator's 10.7 MB, even when
    /// the aggregator did not run.
    fn time(&mut self, rt: &tokio::runtime::Runtime, payload: &[u8]) -> Duration {
        let mut taken = Duration::ZERO;
        if let Some(archiver) = &mut self.archiver {
            let mut a = payload.to_vec();
            let started = Instant::now();
            let out = rt.block_on(archiver.process(&mut a, deadline()));
            taken += started.elapsed();
            assert!(out.is_ok_and(|o| o.stats.valid == EVENTS));
        }
        if let Some(aggregator) = &mut self.aggregator {
            let mut b = payload.to_vec();
            let started = Instant::now();
            let out = rt.block_on(aggregator.process(&mut b, deadline()));
            taken += started.elapsed();
            assert!(out.is_ok_and(|o| o.stats.counted == EVENTS));
        }
        taken
    }
}

/// The median and the tenth percentile: on a shared host the fast end of
/// the spread moves less with the neighbours than the middle does.
fn median_and_p10(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() / 10])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let job = args.next().unwrap_or_else(|| "pipeline".to_owned());
    assert!(
        ["archive", "aggregate", "pipeline"].contains(&job.as_str()),
        "the job is archive, aggregate or pipeline"
    );
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let pause = Duration::from_millis(args.next().and_then(|a| a.parse().ok()).unwrap_or(0));
    let one_only = match args.next().as_deref() {
        None => false,
        Some("one") => true,
        Some(other) => panic!("the fourth argument is `one` or nothing, not {other}"),
    };
    let rt = runtime();
    let payload = payload(EVENTS, true);
    let mut one = Functions::new(&job, 1);
    let mut two = (!one_only).then(|| Functions::new(&job, 2));
    // warm-up: buffers grown, pages touched, the helper pool created
    for _ in 0..rounds.min(10) {
        one.time(&rt, &payload);
        if let Some(two) = &mut two {
            two.time(&rt, &payload);
        }
    }
    let (mut t1, mut t2) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for first in [round % 2 == 0, round % 2 == 1] {
            match (first, &mut two) {
                (true, _) => {
                    std::thread::sleep(pause);
                    t1.push(one.time(&rt, &payload));
                }
                (false, Some(two)) => {
                    std::thread::sleep(pause);
                    t2.push(two.time(&rt, &payload));
                }
                (false, None) => {}
            }
        }
    }
    let per_s = |d: Duration| EVENTS as f64 / d.as_secs_f64() / 1000.0;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (m1, p1) = median_and_p10(t1);
    if t2.is_empty() {
        println!(
            "{job}, {rounds} rounds, {} ms pause: one thread {:.2} ms ({:.0} K events/s); tenth percentile {:.2} ms",
            pause.as_millis(),
            ms(m1),
            per_s(m1),
            ms(p1),
        );
        return;
    }
    let (m2, p2) = median_and_p10(t2);
    println!(
        "{job}, {rounds} rounds, {} ms pause: one thread {:.2} ms ({:.0} K events/s), two threads {:.2} ms ({:.0} K events/s), {:.2}x; tenth percentile {:.2} / {:.2} ms, {:.2}x",
        pause.as_millis(),
        ms(m1),
        per_s(m1),
        ms(m2),
        per_s(m2),
        ms(m1) / ms(m2),
        ms(p1),
        ms(p2),
        ms(p1) / ms(p2),
    );
}
