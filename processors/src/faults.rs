//! Fault injection: wrappers that make a port fail on purpose, so the retry
//! and partial-failure paths of the real code run in tests and in the main
//! job. (Against real AWS-protocol servers, faults are injected the same way:
//! by wrapping the real adapter, so the SDK's own paths run too.)

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::dlq::{DeadLetter, DeadLetterQueue, DlqError};
use crate::store::{Listed, ObjectStore, PutOptions, PutOutcome, StoreError};

/// When a wrapped call fails.
#[derive(Debug)]
pub enum FaultPlan {
    /// Never.
    None,
    /// Each call fails with this probability (deterministic sequence from `seed`).
    Rate {
        /// Probability of failure per call.
        rate: f64,
        /// Seed of the sequence.
        seed: u64,
    },
    /// Calls whose key contains this text fail the next `times` times.
    KeyContains {
        /// The text.
        needle: String,
        /// Remaining failures.
        times: Mutex<u32>,
    },
    /// Every call fails (a service outage).
    Always,
    /// Every call fails permanently (e.g. access denied).
    AlwaysPermanent,
}

/// Decides, call by call, whether to fail.
#[derive(Debug)]
pub struct Faults {
    plan: FaultPlan,
    calls: AtomicU64,
    injected: AtomicU64,
}

impl Faults {
    /// Faults following `plan`.
    pub fn new(plan: FaultPlan) -> Self {
        Faults {
            plan,
            calls: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }

    /// How many faults were injected.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// `Some(permanent?)` when this call (about `key`) must fail.
    pub fn decide(&self, key: &str) -> Option<bool> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let fail = match &self.plan {
            FaultPlan::None => None,
            FaultPlan::Always => Some(false),
            FaultPlan::AlwaysPermanent => Some(true),
            FaultPlan::Rate { rate, seed } => {
                let mut z = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                let u = ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64;
                (u < *rate).then_some(false)
            }
            FaultPlan::KeyContains { needle, times } => {
                let mut left = times.lock().unwrap_or_else(|e| e.into_inner());
                (key.contains(needle.as_str()) && *left > 0).then(|| {
                    *left -= 1;
                    false
                })
            }
        };
        if fail.is_some() {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        fail
    }
}

/// An [`ObjectStore`] whose puts fail per a [`FaultPlan`] (reads pass through).
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    faults: Faults,
}

impl<S> FaultyStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, plan: FaultPlan) -> Self {
        FaultyStore {
            inner,
            faults: Faults::new(plan),
        }
    }

    /// The fault counter.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: ObjectStore> ObjectStore for FaultyStore<S> {
    async fn put(
        &self,
        key: &str,
        body: Bytes,
        options: PutOptions,
    ) -> Result<PutOutcome, StoreError> {
        match self.faults.decide(key) {
            Some(true) => Err(StoreError::Permanent(format!(
                "injected: access denied for {key}"
            ))),
            Some(false) => Err(StoreError::Transient(format!(
                "injected: 503 SlowDown for {key}"
            ))),
            None => self.inner.put(key, body, options).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.inner.get(key).await
    }

    async fn list_sized(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        self.inner.list_sized(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }

    fn uri(&self, key: &str) -> String {
        self.inner.uri(key)
    }
}

/// A [`DeadLetterQueue`] whose letters fail per a [`FaultPlan`] (keyed by
/// sequence number).
#[derive(Debug)]
pub struct FaultyDlq<D> {
    inner: D,
    faults: Faults,
}

impl<D> FaultyDlq<D> {
    /// Wraps `inner`.
    pub fn new(inner: D, plan: FaultPlan) -> Self {
        FaultyDlq {
            inner,
            faults: Faults::new(plan),
        }
    }

    /// The fault counter.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}

impl<D: DeadLetterQueue> DeadLetterQueue for FaultyDlq<D> {
    async fn send(&self, letters: &[DeadLetter]) -> Vec<Result<(), DlqError>> {
        let verdicts: Vec<Option<bool>> = letters
            .iter()
            .map(|l| self.faults.decide(&l.sequence_number))
            .collect();
        let pass: Vec<DeadLetter> = letters
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| v.is_none())
            .map(|(l, _)| l.clone())
            .collect();
        let mut sent = self.inner.send(&pass).await.into_iter();
        verdicts
            .into_iter()
            .map(|v| match v {
                Some(true) => Err(DlqError::Permanent("injected: access denied".into())),
                Some(false) => Err(DlqError::Transient("injected: 503".into())),
                None => sent
                    .next()
                    .unwrap_or_else(|| Err(DlqError::Transient("missing result".into()))),
            })
            .collect()
    }
}
