//! The archiver end to end, from the raw invocation payload (10,000 records of
//! the generated mix, base64 and all) to the Lambda response and the encoded
//! Parquet objects, against the ordinary path in the same run
//! (`aws_lambda_events` + `serde_json` typed structs + the same encoder).
//!
//! Then the same for invocations of 100 and 1,000 records (zstd and snappy).
//!
//! Also prints, once: Parquet bytes per event, and the peak heap and the
//! heap allocations while handling a 6 MB invocation (a counting global
//! allocator), for both paths.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pipeline_benches::fixtures::{NullStore, archiver, archiver_with, deadline, payload, runtime};
use pipeline_processors::Codec;

/// Counts live heap bytes, their high-water mark and allocation calls, only
/// while [`heap_of`] measures: shared counters updated on every allocation would
/// make the two-thread benchmark pay for cache lines bouncing between cores.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        CALLS.fetch_add(1, Ordering::Relaxed);
        let by = by as isize;
        let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

fn shrank(by: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_sub(by as isize, Ordering::Relaxed);
    }
}

// SAFETY: delegates to the system allocator; only adds atomic counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size > layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What `f` asked of the heap.
struct Heap {
    /// The most it held at once beyond what was live when it started
    /// (freeing older allocations lowers the count, as before).
    peak: usize,
    /// Allocations and growing reallocations.
    calls: usize,
}

fn heap_of(f: impl FnOnce()) -> Heap {
    LIVE.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    CALLS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    Heap {
        peak: PEAK.load(Ordering::Relaxed).max(0) as usize,
        calls: CALLS.load(Ordering::Relaxed),
    }
}

fn report_memory_and_size(rt: &tokio::runtime::Runtime) {
    // ~6 MB: Lambda's synchronous payload limit
    let mut events = 5600;
    let mut big = payload(events, false);
    while big.len() < 6 * 1000 * 1000 - 12_000 {
        events += 50;
        big = payload(events, false);
    }
    let store = NullStore::default();
    let mut ours = archiver(store.clone(), 1);
    let mut invoke = || {
        let mut buf = big.clone();
        heap_of(|| {
            let out = rt
                .block_on(ours.process(&mut buf, deadline()))
                .expect("a Kinesis event");
            assert!(out.response.batch_item_failures.is_empty());
        })
    };
    // the first invocation of a container: its buffers are allocated too
    let first = invoke();
    let parquet = store.0.load(Ordering::Relaxed);
    // a warm container's invocation: buffers reused
    let warm = invoke();
    let base = heap_of(|| {
        let (valid, _, files) =
            pipeline_benches::archive_invocation(&big, Codec::Zstd(1)).expect("archive");
        assert_eq!(valid, events);
        assert!(!files.is_empty());
    });
    eprintln!(
        "archive: 6 MB invocation ({} bytes, {events} records): peak heap ours {:.1} MB (the payload, copied before, not counted), baseline {:.1} MB; Parquet {:.1} bytes/event ({} bytes)",
        big.len(),
        first.peak as f64 / 1e6,
        base.peak as f64 / 1e6,
        parquet as f64 / events as f64,
        parquet
    );
    let per_event = |h: &Heap| h.calls as f64 / events as f64;
    eprintln!(
        "archive: heap allocations per event: ours {:.2} warm ({} in all; first invocation {:.2}), baseline {:.2} ({} in all)",
        per_event(&warm),
        warm.calls,
        per_event(&first),
        per_event(&base),
        base.calls
    );
}

/// Records in the main benchmark's invocation.
const EVENTS: usize = 10_000;

/// A measurement run (`cargo bench`), not the test-mode smoke run of `cargo
/// test --all-targets`: the one-off reports are printed only then.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn archive(c: &mut Criterion) {
    let rt = runtime();
    if measuring() {
        report_memory_and_size(&rt);
    }
    invocation(
        c,
        &rt,
        "archive_invocation",
        EVENTS,
        &[
            ("simd_batch_core_to_parquet", 1, Codec::Zstd(1)),
            ("simd_batch_core_to_parquet_2_threads", 2, Codec::Zstd(1)),
        ],
    );
}

/// Invocations of 100 and 1,000 records: what an event source mapping
/// delivers with its default `BatchSize` (100) or ours (1,000), and what any
/// stream delivers when traffic is low. The per-invocation costs (a Parquet
/// file per table and partition, each column chunk's codec set up, the
/// footers) weigh more here than in a 10,000-record invocation. Snappy
/// (`PARQUET_CODEC=snappy`) is measured too: `parquet` sets up a zstd
/// compressor and decompressor for every compressed column chunk.
fn archive_small(c: &mut Criterion) {
    let rt = runtime();
    for events in [100, 1_000] {
        invocation(
            c,
            &rt,
            &format!("archive_invocation_{events}_records"),
            events,
            &[
                ("simd_batch_core_to_parquet", 1, Codec::Zstd(1)),
                ("simd_batch_core_to_parquet_snappy", 1, Codec::Snappy),
            ],
        );
    }
}

/// A group for an invocation of `events` records: ours in each variant
/// (name, threads, codec), then the ordinary path (zstd level 1).
fn invocation(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    events: usize,
    variants: &[(&str, usize, Codec)],
) {
    let payload = payload(events, false);
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(events as u64));
    group.sample_size(if events < EVENTS { 40 } else { 20 });
    for &(name, threads, codec) in variants {
        let mut ours = archiver_with(NullStore::default(), threads, codec);
        if measuring() {
            let out = rt
                .block_on(ours.process(&mut payload.clone(), deadline()))
                .expect("a Kinesis event");
            println!(
                "archive, {events} records, {codec:?}, {threads} thread(s): Parquet {:.1} bytes/event ({} objects)",
                out.stats.bytes as f64 / events as f64,
                out.stats.objects.0
            );
        }
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || payload.clone(),
                |buf| {
                    let out = rt
                        .block_on(ours.process(buf, deadline()))
                        .expect("a Kinesis event");
                    assert_eq!(out.stats.valid, events);
                    out.stats.objects.0
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.bench_function("aws_lambda_events_serde_json_to_parquet", |b| {
        b.iter(|| {
            let (valid, _, files) =
                pipeline_benches::archive_invocation(&payload, Codec::Zstd(1)).expect("archive");
            assert_eq!(valid, events);
            files.len()
        })
    });
    group.finish();
}

criterion_group!(benches, archive, archive_small);
criterion_main!(benches);
