//! Work sharing across a Lambda's cores: one pool of helper threads per
//! process, kept awake while an invocation is on the CPU.
//!
//! Why not a thread per phase: on a virtual machine (Firecracker on Lambda,
//! KVM on our benchmark machine) an idle vCPU is parked by the host, and
//! waking it takes from 0.1 to 4 ms, as long as the work being shared. A
//! thread spawned for the second half of the records started up to 4 ms late
//! (median 1.8 ms), so two cores decoded no faster than one about half the
//! time. The helpers here are created once, and [`Workers::warm`] sets them
//! spinning when an invocation starts. The first shared work, the envelope,
//! is cut into more pieces than threads and handed out as threads come free,
//! so a helper that wakes late takes fewer; from then on the cores are awake.
//! Spinning costs nothing on Lambda, which bills wall time whatever the CPU
//! does, and it stops a few milliseconds after the last [`Warm`] guard.

use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long helpers keep spinning after the last guard is dropped: covers
/// the serial steps between two parallel phases (handing decoded records to
/// the encoder takes under a millisecond).
const LINGER: Duration = Duration::from_millis(3);

/// Slices of shared work per thread (see [`Workers::slices`]).
const SLICES_PER_THREAD: usize = 4;

/// A helper never spins longer than this for one `warm` call, so a guard
/// held across slow I/O cannot burn a core for long.
const MAX_SPIN: Duration = Duration::from_millis(250);

/// The process's helpers, one per core beyond the first (none on one core).
struct Pool {
    threads: rayon_core::ThreadPool,
    helpers: usize,
    /// Live [`Warm`] guards.
    holders: AtomicUsize,
    /// Helpers currently spinning.
    spinning: AtomicUsize,
    /// When the last guard was dropped, in nanoseconds since `epoch`.
    released_ns: AtomicU64,
    epoch: Instant,
}

fn pool() -> Option<&'static Arc<Pool>> {
    static POOL: OnceLock<Option<Arc<Pool>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let helpers = cores.saturating_sub(1);
        if helpers == 0 {
            return None;
        }
        // A pool that cannot start (no threads left) only costs parallelism.
        let threads = rayon_core::ThreadPoolBuilder::new()
            .num_threads(helpers)
            .thread_name(|i| format!("pipeline-worker-{i}"))
            .build()
            .ok()?;
        Some(Arc::new(Pool {
            threads,
            helpers,
            holders: AtomicUsize::new(0),
            spinning: AtomicUsize::new(0),
            released_ns: AtomicU64::new(0),
            epoch: Instant::now(),
        }))
    })
    .as_ref()
}

impl Pool {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Runs on a helper: executes whatever the pool is given, spinning in
    /// between, until no guard is held (and `LINGER` has passed).
    fn spin(&self) {
        let started = Instant::now();
        loop {
            if let Some(rayon_core::Yield::Executed) = rayon_core::yield_now() {
                continue;
            }
            if self.holders.load(Ordering::Acquire) == 0 {
                let released = self.released_ns.load(Ordering::Acquire);
                if self.now_ns().saturating_sub(released) > LINGER.as_nanos() as u64 {
                    break;
                }
            }
            if started.elapsed() > MAX_SPIN {
                break;
            }
            std::hint::spin_loop();
        }
        self.spinning.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A share of the process's cores: at most `threads` threads, the caller's
/// included. Cheap to create; every `Workers` uses the same helper threads.
#[derive(Debug, Clone, Copy)]
pub struct Workers {
    threads: usize,
}

impl Workers {
    /// Up to `threads` threads (`0`: every core). More than the machine has
    /// are not created: the extra ones would only take turns.
    pub fn new(threads: usize) -> Self {
        let available = pool().map_or(1, |p| p.helpers + 1);
        let threads = match threads {
            0 => available,
            n => n.min(available),
        };
        Workers { threads }
    }

    /// The threads work is shared among, the caller's included.
    pub fn threads(&self) -> usize {
        self.threads
    }

    fn pool(&self) -> Option<&'static Arc<Pool>> {
        if self.threads > 1 { pool() } else { None }
    }

    /// Wakes the helpers and keeps them spinning until the guard (and every
    /// other guard) is dropped. Take it before serial work that precedes a
    /// parallel phase, so that waking the other cores overlaps that work.
    pub fn warm(&self) -> Warm {
        let Some(pool) = self.pool() else {
            return Warm { pool: None };
        };
        pool.holders.fetch_add(1, Ordering::AcqRel);
        let wanted = self.threads - 1;
        while pool.spinning.load(Ordering::Acquire) < wanted {
            pool.spinning.fetch_add(1, Ordering::AcqRel);
            let p = Arc::clone(pool);
            pool.threads.spawn(move || p.spin());
        }
        Warm {
            pool: Some(Arc::clone(pool)),
        }
    }

    /// Runs each job once, the first on the caller's thread and the rest on
    /// the helpers; results come back in the jobs' order. Give at most
    /// [`Workers::threads`] jobs: more would queue behind each other. A
    /// panicking job panics the caller, as a scoped thread's would.
    pub fn run<T, F>(&self, jobs: Vec<F>) -> Vec<T>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let Some(pool) = self.pool().filter(|_| jobs.len() > 1) else {
            return jobs.into_iter().map(|job| job()).collect();
        };
        let mut slots: Vec<Option<T>> = jobs.iter().map(|_| None).collect();
        let remaining = AtomicUsize::new(jobs.len() - 1);
        let mut jobs = jobs.into_iter();
        if let (Some(first), Some((head, tail))) = (jobs.next(), slots.split_first_mut()) {
            pool.threads.in_place_scope(|scope| {
                let remaining = &remaining;
                for (job, slot) in jobs.zip(tail.iter_mut()) {
                    scope.spawn(move |_| {
                        *slot = Some(job());
                        remaining.fetch_sub(1, Ordering::Release);
                    });
                }
                *head = Some(first());
                // wait for the helpers' share here, on this core: a caller
                // blocked in the scope's latch is a parked vCPU, woken late
                let waiting = Instant::now();
                while remaining.load(Ordering::Acquire) != 0 && waiting.elapsed() < MAX_SPIN {
                    if let Some(rayon_core::Yield::Executed) = rayon_core::yield_now() {
                        continue;
                    }
                    std::hint::spin_loop();
                }
            });
        }
        // the scope returned, so every job has filled its slot
        slots.into_iter().flatten().collect()
    }

    /// Calls `work` once on each of `items` (owned: a slice of the payload,
    /// say), handing the next to whichever thread is free; results come back
    /// in `items`' order.
    pub fn map<I, T, W>(&self, items: Vec<I>, work: W) -> Vec<T>
    where
        I: Send,
        T: Send,
        W: Fn(I) -> T + Sync,
    {
        let mut states = vec![(); self.threads.min(items.len()).max(1)];
        self.map_with(&mut states, items, |(), item| work(item))
    }

    /// Contiguous ranges covering `0..len`, four for each thread: handed out
    /// as threads come free, they let a core slowed by its neighbours on the
    /// host take fewer, and stay few enough that joining their results is cheap.
    pub fn slices(&self, len: usize) -> Vec<std::ops::Range<usize>> {
        let count = self.slice_count().min(len.max(1));
        let share = len.div_ceil(count);
        (0..count)
            .map(|k| (k * share).min(len)..((k + 1) * share).min(len))
            .collect()
    }

    /// How many slices [`Workers::slices`] cuts work into; for cutting by
    /// another measure than item count (bytes, say).
    pub fn slice_count(&self) -> usize {
        self.threads * SLICES_PER_THREAD
    }

    /// Calls `work(i)` for every `i` in `0..count`, handing the next index to
    /// whichever thread is free (so one slow item does not hold up a queue);
    /// results come back indexed by `i`.
    pub fn each<T, W>(&self, count: usize, work: W) -> Vec<T>
    where
        T: Send,
        W: Fn(usize) -> T + Sync,
    {
        let mut states = vec![(); self.threads.min(count).max(1)];
        self.each_with(&mut states, count, |(), i| work(i))
    }

    /// [`Workers::each`] with a state per thread (a parser and its scratch
    /// buffers, say): each of `states` is used by one thread at a time, and
    /// no more threads take part than there are states.
    pub fn each_with<S, T, W>(&self, states: &mut [S], count: usize, work: W) -> Vec<T>
    where
        S: Send,
        T: Send,
        W: Fn(&mut S, usize) -> T + Sync,
    {
        let participants = self.threads.min(count).min(states.len());
        if participants <= 1 {
            return match states.first_mut() {
                Some(state) => (0..count).map(|i| work(state, i)).collect(),
                None => Vec::new(),
            };
        }
        let next = AtomicUsize::new(0);
        let pull = |state: &mut S| {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break mine;
                }
                mine.push((i, work(state, i)));
            }
        };
        let jobs: Vec<_> = states[..participants]
            .iter_mut()
            .map(|state| {
                let pull = &pull;
                move || pull(state)
            })
            .collect();
        let mut out: Vec<Option<T>> = (0..count).map(|_| None).collect();
        for (i, value) in self.run(jobs).into_iter().flatten() {
            out[i] = Some(value);
        }
        out.into_iter().flatten().collect()
    }

    /// [`Workers::map`] with a state per thread, as [`Workers::each_with`].
    pub fn map_with<S, I, T, W>(&self, states: &mut [S], items: Vec<I>, work: W) -> Vec<T>
    where
        S: Send,
        I: Send,
        T: Send,
        W: Fn(&mut S, I) -> T + Sync,
    {
        let slots = Slots::new(items);
        self.each_with(states, slots.len(), |state, i| {
            slots.take(i).map(|item| work(state, item))
        })
        .into_iter()
        .flatten()
        .collect()
    }

    /// Runs `work` on every task of `initial` and on every task the work
    /// adds with [`TaskQueue::push`], on all threads, until none is left;
    /// the highest priority first (ties: the first pushed). For work in
    /// stages, such as a file's columns once its batch is built: a thread
    /// that finishes a stage takes the next ready task at once, where phases
    /// separated by barriers leave a core idle while the last task of each
    /// phase finishes. Results go wherever `work` puts them.
    pub fn run_queue<T, W>(&self, initial: Vec<(u64, T)>, work: W)
    where
        T: Send,
        W: Fn(T, &TaskQueue<T>) + Sync,
    {
        let queue = TaskQueue {
            heap: Mutex::new(BinaryHeap::new()),
            pending: AtomicUsize::new(0),
            pushed: AtomicU64::new(0),
            abandoned: AtomicBool::new(false),
        };
        for (priority, task) in initial {
            queue.push(priority, task);
        }
        let pull = || {
            loop {
                if queue.abandoned.load(Ordering::Acquire) {
                    break;
                }
                let next = queue
                    .heap
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop();
                match next {
                    Some(ranked) => {
                        // counted done even if `work` panics, so that the
                        // other threads stop waiting for it
                        let _done = Finished(&queue);
                        work(ranked.task, &queue);
                    }
                    None if queue.pending.load(Ordering::Acquire) == 0 => break,
                    // a running task may still add work
                    None => std::hint::spin_loop(),
                }
            }
        };
        let jobs: Vec<_> = (0..self.threads.max(1))
            .map(|_| &pull)
            .map(|p| move || p())
            .collect();
        self.run(jobs);
    }
}

/// The tasks of [`Workers::run_queue`]: those waiting, and a way for a task
/// to add more.
pub struct TaskQueue<T> {
    heap: Mutex<BinaryHeap<Ranked<T>>>,
    /// Tasks pushed and not yet finished (waiting or running).
    pending: AtomicUsize,
    /// Tasks ever pushed: ties in priority go to the first.
    pushed: AtomicU64,
    /// A task panicked: the others stop taking work.
    abandoned: AtomicBool,
}

impl<T> TaskQueue<T> {
    /// Adds a task; a higher `priority` runs sooner.
    pub fn push(&self, priority: u64, task: T) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let order = self.pushed.fetch_add(1, Ordering::Relaxed);
        self.heap
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Ranked {
                priority,
                order,
                task,
            });
    }
}

/// Marks a task finished when dropped, and the queue abandoned when that
/// happens in a panic.
struct Finished<'q, T>(&'q TaskQueue<T>);

impl<T> Drop for Finished<'_, T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abandoned.store(true, Ordering::Release);
        }
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A task with its place in the queue.
struct Ranked<T> {
    priority: u64,
    order: u64,
    task: T,
}

impl<T> Ranked<T> {
    fn key(&self) -> (u64, std::cmp::Reverse<u64>) {
        (self.priority, std::cmp::Reverse(self.order))
    }
}

impl<T> PartialEq for Ranked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl<T> Eq for Ranked<T> {}

impl<T> PartialOrd for Ranked<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Ranked<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// Owned items handed out by index, each exactly once, to whichever thread
/// gets its turn.
struct Slots<I>(Vec<Mutex<Option<I>>>);

impl<I> Slots<I> {
    fn new(items: Vec<I>) -> Self {
        Slots(items.into_iter().map(|i| Mutex::new(Some(i))).collect())
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn take(&self, i: usize) -> Option<I> {
        // a poisoned lock means a panic, which reaches the caller anyway
        self.0[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Keeps the helpers spinning while alive; see [`Workers::warm`].
#[must_use = "the helpers stop spinning when this is dropped"]
pub struct Warm {
    pool: Option<Arc<Pool>>,
}

impl Drop for Warm {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.released_ns.store(pool.now_ns(), Ordering::Release);
            pool.holders.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helpers_available() -> bool {
        Workers::new(0).threads() > 1
    }

    #[test]
    fn run_returns_every_result_in_job_order() {
        for threads in [1, 2, 0] {
            let jobs: Vec<_> = (0..5).map(|i| move || i * 10).collect();
            assert_eq!(
                Workers::new(threads).run(jobs),
                vec![0, 10, 20, 30, 40],
                "threads {threads}"
            );
        }
    }

    #[test]
    fn each_calls_every_index_once_and_returns_them_indexed() {
        for threads in [1, 2, 0] {
            let calls = AtomicUsize::new(0);
            let out = Workers::new(threads).each(1000, |i| {
                calls.fetch_add(1, Ordering::Relaxed);
                i * 2
            });
            assert_eq!(calls.load(Ordering::Relaxed), 1000);
            assert_eq!(out, (0..1000).map(|i| i * 2).collect::<Vec<_>>());
        }
        assert!(Workers::new(2).each(0, |i| i).is_empty());
    }

    #[test]
    fn owned_items_are_each_used_once_and_come_back_in_their_order() {
        for threads in [1, 2, 0] {
            let items: Vec<String> = (0..50).map(|i| format!("item {i}")).collect();
            let out = Workers::new(threads).map(items.clone(), |s| s + "!");
            let want: Vec<String> = items.iter().map(|s| format!("{s}!")).collect();
            assert_eq!(out, want, "threads {threads}");
            assert_eq!(Workers::new(threads).map(items, |s| s.len()).len(), 50);
        }
    }

    #[test]
    fn queued_tasks_and_the_tasks_they_add_all_run_once_by_priority() {
        for threads in [1, 2, 0] {
            // each task n > 0 adds n - 1: 1 + 2 + ... + 10 runs in all
            let ran = Mutex::new(Vec::new());
            let initial: Vec<(u64, u32)> = (1..=10).map(|n| (u64::from(n), n)).collect();
            Workers::new(threads).run_queue(initial, |n, queue| {
                ran.lock().expect("lock").push(n);
                if n > 1 {
                    queue.push(u64::from(n - 1), n - 1);
                }
            });
            let mut ran = ran.into_inner().expect("lock");
            if threads == 1 {
                // one thread: strictly by priority, ties first pushed first
                assert_eq!(&ran[..3], &[10, 9, 9], "threads {threads}");
            }
            ran.sort_unstable();
            let want: Vec<u32> = (1..=10).flat_map(|n| (1..=n).rev()).collect::<Vec<_>>();
            let mut want = want;
            want.sort_unstable();
            assert_eq!(ran, want, "threads {threads}");
        }
        Workers::new(2).run_queue(Vec::<(u64, ())>::new(), |(), _| {});
    }

    #[test]
    #[should_panic(expected = "task 7 failed")]
    fn a_panicking_task_panics_the_caller_and_stops_the_others() {
        let initial: Vec<(u64, u32)> = (0..20).map(|n| (0, n)).collect();
        Workers::new(2).run_queue(initial, |n, queue| {
            if n == 7 {
                panic!("task 7 failed");
            }
            // keep adding work: without the stop this would never end
            queue.push(0, n + 100);
        });
    }

    #[test]
    fn each_thread_has_a_state_of_its_own() {
        for threads in [1, 2, 0] {
            // a state records the items it handled; together they handled each once
            let mut states: Vec<Vec<usize>> = vec![Vec::new(); 3];
            let items: Vec<usize> = (0..200).collect();
            let out = Workers::new(threads).map_with(&mut states, items, |seen, i| {
                seen.push(i);
                i * 3
            });
            assert_eq!(out, (0..200).map(|i| i * 3).collect::<Vec<_>>());
            let used = states.iter().filter(|s| !s.is_empty()).count();
            assert!(used <= Workers::new(threads).threads(), "threads {threads}");
            let mut all: Vec<usize> = states.concat();
            all.sort_unstable();
            assert_eq!(all, (0..200).collect::<Vec<_>>());
        }
        // no states, no work; fewer states than threads, fewer threads
        assert!(
            Workers::new(2)
                .each_with(&mut [] as &mut [()], 5, |(), i| i)
                .is_empty()
        );
        assert_eq!(
            Workers::new(2).each_with(&mut [0u8], 3, |_, i| i),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn slices_cover_every_index_once_in_order() {
        for threads in [1, 2, 0] {
            let w = Workers::new(threads);
            for len in [0, 1, 3, 7, 8, 9, 1000] {
                let slices = w.slices(len);
                assert!(slices.len() <= w.slice_count());
                let all: Vec<usize> = slices.into_iter().flatten().collect();
                assert_eq!(all, (0..len).collect::<Vec<_>>(), "len {len}");
            }
        }
    }

    #[test]
    fn jobs_may_borrow_and_mutate_the_callers_data() {
        let mut halves = [vec![1u32; 100], vec![2u32; 100]];
        let (a, b) = halves.split_at_mut(1);
        let jobs: Vec<Box<dyn FnOnce() -> u32 + Send>> = vec![
            Box::new(|| {
                a[0].iter_mut().for_each(|x| *x += 1);
                a[0].iter().sum()
            }),
            Box::new(|| {
                b[0].iter_mut().for_each(|x| *x += 1);
                b[0].iter().sum()
            }),
        ];
        assert_eq!(Workers::new(2).run(jobs), vec![200, 300]);
        assert_eq!(halves[1][0], 3);
    }

    #[test]
    fn no_more_threads_than_the_machine_has() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(Workers::new(0).threads(), cores);
        assert_eq!(Workers::new(cores + 5).threads(), cores);
        assert_eq!(Workers::new(1).threads(), 1);
    }

    #[test]
    fn shared_work_runs_on_another_thread() {
        if !helpers_available() {
            return; // one core: nothing to share with
        }
        let caller = std::thread::current().id();
        let jobs: Vec<_> = (0..2).map(|_| || std::thread::current().id()).collect();
        let ids = Workers::new(2).run(jobs);
        assert_eq!(ids[0], caller);
        assert_ne!(ids[1], caller);
    }

    #[test]
    #[should_panic(expected = "job two failed")]
    fn a_panicking_job_panics_the_caller() {
        let jobs: Vec<Box<dyn FnOnce() + Send>> =
            vec![Box::new(|| {}), Box::new(|| panic!("job two failed"))];
        Workers::new(2).run(jobs);
    }

    #[test]
    fn helpers_spin_while_warm_and_stop_after_the_guard() {
        if !helpers_available() {
            return;
        }
        let Some(pool) = pool() else { return };
        let warm = Workers::new(2).warm();
        let until = Instant::now() + Duration::from_secs(5);
        while pool.spinning.load(Ordering::Acquire) == 0 && Instant::now() < until {
            std::thread::yield_now();
        }
        assert!(pool.spinning.load(Ordering::Acquire) >= 1);
        // work handed over while warm is done by the spinning helper
        let jobs: Vec<_> = (0..2).map(|i| move || i + 1).collect();
        assert_eq!(Workers::new(2).run(jobs), vec![1, 2]);
        drop(warm);
        // other tests may hold guards of their own: wait for all of them
        let until = Instant::now() + Duration::from_secs(10);
        while pool.spinning.load(Ordering::Acquire) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            pool.spinning.load(Ordering::Acquire),
            0,
            "helpers kept spinning"
        );
    }
}
