//! Retries of transient failures with full-jitter exponential backoff,
//! bounded by the invocation's deadline.
//!
//! The deadline is the Lambda's remaining time minus a safety margin: a retry
//! that cannot finish before the function times out is not started, and the
//! failure is reported instead (Lambda retries the records; nothing is lost).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Whether an error is worth retrying.
pub trait Transient {
    /// `true` for throttling, 5xx, timeouts, connection errors.
    fn is_transient(&self) -> bool;
}

/// Backoff settings.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Backoff cap before jitter for the first retry.
    pub base: Duration,
    /// Largest backoff cap.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// The outcome of a retried operation.
#[derive(Debug)]
pub struct Retried<T, E> {
    /// The last result.
    pub result: Result<T, E>,
    /// Retries made (attempts - 1).
    pub retries: u32,
}

static JITTER: AtomicU64 = AtomicU64::new(0x2545_F491_4F6C_DD1D);

/// A uniform fraction in [0, 1) for jitter; lock-free, not cryptographic.
fn jitter_fraction() -> f64 {
    let mut z = JITTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

impl RetryPolicy {
    /// The sleep before retry number `retry` (1-based): full jitter over an
    /// exponentially growing cap, so that many failing writers spread out.
    pub fn backoff(&self, retry: u32) -> Duration {
        let cap = self
            .base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.max_backoff);
        cap.mul_f64(jitter_fraction())
    }

    /// Runs `op` until it succeeds, fails permanently, runs out of attempts,
    /// or the next attempt could not finish before `deadline`.
    pub async fn run<T, E, F, Fut>(&self, deadline: Instant, mut op: F) -> Retried<T, E>
    where
        E: Transient,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut retries = 0;
        loop {
            let result = op().await;
            match &result {
                Err(e) if e.is_transient() && retries + 1 < self.max_attempts => {
                    let pause = self.backoff(retries + 1);
                    if Instant::now() + pause >= deadline {
                        return Retried { result, retries };
                    }
                    tokio::time::sleep(pause).await;
                    retries += 1;
                }
                _ => return Retried { result, retries },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[derive(Debug, PartialEq)]
    struct E(bool);
    impl Transient for E {
        fn is_transient(&self) -> bool {
            self.0
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_until_success() {
        let calls = Cell::new(0);
        let out = fast()
            .run(Instant::now() + Duration::from_secs(5), || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { if n < 3 { Err(E(true)) } else { Ok(n) } }
            })
            .await;
        assert_eq!(out.result, Ok(3));
        assert_eq!(out.retries, 2);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let calls = Cell::new(0);
        let out: Retried<(), E> = fast()
            .run(Instant::now() + Duration::from_secs(5), || {
                calls.set(calls.get() + 1);
                async { Err(E(false)) }
            })
            .await;
        assert_eq!(calls.get(), 1);
        assert_eq!(out.result, Err(E(false)));
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_and_at_the_deadline() {
        let calls = Cell::new(0);
        let out: Retried<(), E> = fast()
            .run(Instant::now() + Duration::from_secs(5), || {
                calls.set(calls.get() + 1);
                async { Err(E(true)) }
            })
            .await;
        assert_eq!(calls.get(), 5);
        assert_eq!(out.retries, 4);

        let calls = Cell::new(0);
        let slow = RetryPolicy {
            max_attempts: 100,
            base: Duration::from_secs(10),
            max_backoff: Duration::from_secs(10),
        };
        let started = Instant::now();
        let _: Retried<(), E> = slow
            .run(Instant::now() + Duration::from_millis(50), || {
                calls.set(calls.get() + 1);
                async { Err(E(true)) }
            })
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "must not sleep past the deadline"
        );
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        for retry in 1..40 {
            assert!(p.backoff(retry) <= p.max_backoff);
        }
        let samples: Vec<_> = (0..20).map(|_| p.backoff(3)).collect();
        assert!(samples.windows(2).any(|w| w[0] != w[1]), "jitter varies");
    }
}
