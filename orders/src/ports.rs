//! The ports of the order functions: state store (with the transactional
//! outbox), event stream, payment provider. Each has an embedded adapter
//! (`memory`, `payments`) and an AWS adapter (`dynamo`, `kinesis`).

use std::future::Future;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{Order, User};

/// A store failure.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StoreError {
    /// A condition failed: the order changed since it was read, the entity
    /// exists already, or does not exist.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The idempotency key was taken by a concurrent request.
    #[error("idempotency key already used")]
    KeyTaken,
    /// The store is throttling: the client should back off (429).
    #[error("store throttled: {0}")]
    Throttled(String),
    /// 5xx, network: the request may be retried.
    #[error("store unavailable: {0}")]
    Transient(String),
    /// Anything else.
    #[error("store error: {0}")]
    Permanent(String),
}

/// An event waiting in the outbox, written in the same transaction as the
/// state change it describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The event's id (unique; duplicates downstream carry the same id).
    pub event_id: String,
    /// Kinesis partition key: `order_id` or `user_id`.
    pub partition_key: String,
    /// The event, contract JSON.
    pub data: String,
    /// When it was committed, epoch milliseconds.
    pub created_ms: i64,
}

/// The stored result of a request made with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The key.
    pub key: String,
    /// Digest of method, path and body: the same key with another request is refused.
    pub request_hash: String,
    /// HTTP status of the first response.
    pub status: u16,
    /// Body of the first response.
    pub body: String,
}

/// The state change of one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A new order (fails if the id exists).
    NewOrder(Order),
    /// An order change, if the stored version is still `expected_version`.
    UpdateOrder {
        /// The new state (with `version = expected_version + 1`).
        order: Order,
        /// The version read.
        expected_version: u64,
    },
    /// A new user (fails if the id exists).
    NewUser(User),
    /// A login: only checks that the user exists.
    UserExists {
        /// The user.
        user_id: String,
    },
}

/// One atomic commit: the state change, its event in the outbox and, for
/// requests with an `Idempotency-Key`, the response. All or nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The state change.
    pub write: Write,
    /// The event.
    pub outbox: OutboxEntry,
    /// The response to remember.
    pub idempotency: Option<IdempotencyRecord>,
}

/// The state store.
pub trait Store: Send + Sync {
    /// Commits atomically, with the conditions of [`Write`].
    fn commit(&self, commit: Commit) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// An order.
    fn order(
        &self,
        order_id: &str,
    ) -> impl Future<Output = Result<Option<Order>, StoreError>> + Send;
    /// A user.
    fn user(&self, user_id: &str) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;
    /// A stored response.
    fn idempotency(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, StoreError>> + Send;
    /// Outbox entries not yet published, oldest first.
    fn pending(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutboxEntry>, StoreError>> + Send;
    /// Marks entries published (removes them from the outbox).
    fn mark_sent(
        &self,
        entries: &[OutboxEntry],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The event stream (Kinesis `PutRecords` semantics: per-record results).
pub trait EventStream: Send + Sync {
    /// Puts records `(partition key, data)`; one result per record, in order.
    fn put(
        &self,
        records: &[(String, Vec<u8>)],
    ) -> impl Future<Output = Result<Vec<bool>, String>> + Send;
}

/// A payment request. The idempotency key makes a retried or concurrent
/// request charge at most once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// Provider idempotency key.
    pub idempotency_key: String,
    /// Amount in minor units.
    pub amount_cents: u64,
    /// ISO currency.
    pub currency: String,
    /// `card`, `paypal`, `apple_pay`, `bank_transfer`.
    pub method: String,
    /// For cards.
    pub card_number: Option<String>,
}

/// What the provider said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Charged.
    Succeeded {
        /// The provider's reference.
        payment_id: String,
    },
    /// Declined, with one of the contract's reasons.
    Declined {
        /// `card_declined`, `insufficient_funds`, `fraud_suspected`, `provider_error`.
        reason: &'static str,
    },
}

/// A payment provider.
pub trait PaymentProvider: Send + Sync {
    /// Charges, idempotently by key.
    fn charge(&self, charge: Charge) -> impl Future<Output = Result<ChargeOutcome, String>> + Send;
}
