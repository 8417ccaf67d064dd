//! Ids and the clock, behind a small port so tests and the main job are
//! deterministic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Source of ids and time.
#[derive(Debug)]
pub struct Ids {
    state: AtomicU64,
    fixed_time: Option<AtomicU64>,
}

impl Ids {
    /// Random-enough ids from the clock and process id; wall-clock time.
    pub fn system() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Ids {
            state: AtomicU64::new(now ^ (u64::from(std::process::id()) << 32)),
            fixed_time: None,
        }
    }

    /// Deterministic ids from `seed`; time starts at `start_ms` and advances
    /// by one millisecond per call.
    pub fn seeded(seed: u64, start_ms: i64) -> Self {
        Ids {
            state: AtomicU64::new(seed),
            fixed_time: Some(AtomicU64::new(start_ms as u64)),
        }
    }

    fn next(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A version-4 UUID.
    pub fn uuid(&self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    /// `prefix_` + 16 hex digits.
    pub fn id(&self, prefix: &str) -> String {
        format!("{prefix}_{:016x}", self.next())
    }

    /// Now, epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        match &self.fixed_time {
            Some(t) => t.fetch_add(1, Ordering::Relaxed) as i64,
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        }
    }

    /// Sets the deterministic clock (the main job's simulated time).
    pub fn set_time(&self, ms: i64) {
        if let Some(t) = &self.fixed_time {
            t.store(ms as u64, Ordering::Relaxed);
        }
    }
}
