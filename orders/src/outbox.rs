//! Publishing the outbox: right after each commit (the fast path), and by the
//! relay for anything whose first publish failed.
//!
//! The relay is a sweeper run on a schedule (EventBridge, every minute): it
//! publishes entries still pending after a grace period. *Rejected:* a
//! DynamoDB Streams-triggered relay: it adds a second consumer of every write,
//! and a stream record is kept only 24 hours, while the sweeper reads the
//! outbox itself, so nothing can age out. Duplicates (a publish that succeeded
//! but was not marked sent) are harmless: they carry the same `event_id`.

use std::time::Duration;

use crate::ports::{EventStream, OutboxEntry, Store, StoreError};

/// What a publish did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    /// Entries put to the stream and marked sent.
    pub sent: usize,
    /// Entries still pending (the relay will retry).
    pub pending: usize,
}

/// Puts `entries` to the stream, retrying the records a `PutRecords` call
/// failed (partial `FailedRecordCount`) up to `attempts` times, and marks the
/// ones that went through as sent.
pub async fn publish<S: Store, E: EventStream>(
    store: &S,
    stream: &E,
    entries: &[OutboxEntry],
    attempts: u32,
) -> Result<Published, StoreError> {
    let mut pending: Vec<&OutboxEntry> = entries.iter().collect();
    let mut sent = Vec::new();
    for attempt in 0..attempts.max(1) {
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(10 << attempt.min(6))).await;
        }
        let records: Vec<(String, Vec<u8>)> = pending
            .iter()
            .map(|e| (e.partition_key.clone(), e.data.clone().into_bytes()))
            .collect();
        match stream.put(&records).await {
            Ok(results) => {
                let mut still = Vec::new();
                for (entry, ok) in pending
                    .into_iter()
                    .zip(results.into_iter().chain(std::iter::repeat(false)))
                {
                    if ok {
                        sent.push(entry.clone());
                    } else {
                        still.push(entry);
                    }
                }
                pending = still;
            }
            Err(e) => tracing::warn!(error = %e, "PutRecords failed; will retry"),
        }
    }
    if !sent.is_empty() {
        store.mark_sent(&sent).await?;
    }
    Ok(Published {
        sent: sent.len(),
        pending: pending.len(),
    })
}

/// The relay: publishes outbox entries still pending `grace_ms` after their
/// commit (the fast path had its chance), oldest first, up to `limit`.
pub async fn relay<S: Store, E: EventStream>(
    store: &S,
    stream: &E,
    now_ms: i64,
    grace_ms: i64,
    limit: usize,
) -> Result<Published, StoreError> {
    let due: Vec<OutboxEntry> = store
        .pending(limit)
        .await?
        .into_iter()
        .filter(|e| now_ms - e.created_ms >= grace_ms)
        .collect();
    let mut out = Published::default();
    for chunk in due.chunks(500) {
        let p = publish(store, stream, chunk, 4).await?;
        out.sent += p.sent;
        out.pending += p.pending;
    }
    Ok(out)
}
