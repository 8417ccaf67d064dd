//! DynamoDB as the store: one table (`pk`, `sk`), conditional writes for the
//! state machine, and `TransactWriteItems` to commit a state change, its
//! outbox event and the idempotency record together.
//!
//! | item | pk | sk | attributes |
//! | --- | --- | --- | --- |
//! | order | `ORDER#<id>` | `ORDER` | `doc` (JSON), `version`, `status` |
//! | user | `USER#<id>` | `USER` | `doc` |
//! | idempotency | `IDEMPOTENCY#<key>` | `IDEMPOTENCY` | `hash`, `status`, `body`, `ttl` (24 h) |
//! | outbox event | `OUTBOX#<0..7>` | `<created ms>#<event id>` | `doc`; deleted once published |

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use md5::{Digest, Md5};

use crate::model::{Order, User};
use crate::ports::{Commit, IdempotencyRecord, OutboxEntry, Store, StoreError, Write};

/// Outbox partitions: spreads the relay's reads and the writes.
pub const OUTBOX_BUCKETS: u8 = 8;

/// The DynamoDB store.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn bucket(event_id: &str) -> u8 {
    Md5::digest(event_id.as_bytes())[0] % OUTBOX_BUCKETS
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> StoreError {
    if matches!(
        e.code(),
        Some(
            "ThrottlingException"
                | "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
        )
    ) {
        return StoreError::Throttled(DisplayErrorContext(&e).to_string());
    }
    let transient = matches!(
        e.code(),
        Some(
            "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionConflictException"
                | "TransactionInProgressException"
        )
    ) || matches!(
        e,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    );
    let msg = DisplayErrorContext(&e).to_string();
    if transient {
        StoreError::Transient(msg)
    } else {
        StoreError::Permanent(msg)
    }
}

fn put(
    table: &str,
    item: Vec<(&str, AttributeValue)>,
    condition: Option<(&str, Vec<(&str, AttributeValue)>)>,
) -> Result<TransactWriteItem, StoreError> {
    let mut b = Put::builder().table_name(table);
    for (k, v) in item {
        b = b.item(k, v);
    }
    if let Some((expr, values)) = condition {
        b = b.condition_expression(expr);
        for (k, v) in values {
            b = b.expression_attribute_values(k, v);
        }
    }
    let p = b
        .build()
        .map_err(|e| StoreError::Permanent(e.to_string()))?;
    Ok(TransactWriteItem::builder().put(p).build())
}

impl DynamoStore {
    /// The store on `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str) -> Self {
        DynamoStore {
            client,
            table: table.to_owned(),
        }
    }

    async fn doc(&self, pk: String, sk: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .item()
            .and_then(|i| i.get("doc"))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Permanent(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Permanent(format!("stored document: {e}")))
}

impl Store for DynamoStore {
    async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        let t = self.table.as_str();
        let mut items = Vec::with_capacity(3);
        match &commit.write {
            Write::NewOrder(o) => items.push(put(
                t,
                vec![
                    ("pk", s(format!("ORDER#{}", o.order_id))),
                    ("sk", s("ORDER")),
                    ("doc", s(json(o)?)),
                    ("version", n(o.version)),
                    ("status", s(o.status.as_str())),
                ],
                Some(("attribute_not_exists(pk)", vec![])),
            )?),
            Write::UpdateOrder {
                order,
                expected_version,
            } => items.push(put(
                t,
                vec![
                    ("pk", s(format!("ORDER#{}", order.order_id))),
                    ("sk", s("ORDER")),
                    ("doc", s(json(order)?)),
                    ("version", n(order.version)),
                    ("status", s(order.status.as_str())),
                ],
                Some((
                    "version = :expected",
                    vec![(":expected", n(expected_version))],
                )),
            )?),
            Write::NewUser(u) => items.push(put(
                t,
                vec![
                    ("pk", s(format!("USER#{}", u.user_id))),
                    ("sk", s("USER")),
                    ("doc", s(json(u)?)),
                ],
                Some(("attribute_not_exists(pk)", vec![])),
            )?),
            Write::UserExists { user_id } => {
                let check = ConditionCheck::builder()
                    .table_name(t)
                    .key("pk", s(format!("USER#{user_id}")))
                    .key("sk", s("USER"))
                    .condition_expression("attribute_exists(pk)")
                    .build()
                    .map_err(|e| StoreError::Permanent(e.to_string()))?;
                items.push(TransactWriteItem::builder().condition_check(check).build());
            }
        }
        let e = &commit.outbox;
        items.push(put(
            t,
            vec![
                ("pk", s(format!("OUTBOX#{}", bucket(&e.event_id)))),
                ("sk", s(format!("{:013}#{}", e.created_ms, e.event_id))),
                ("doc", s(json(e)?)),
            ],
            None,
        )?);
        let idem_index = commit.idempotency.as_ref().map(|_| items.len());
        if let Some(r) = &commit.idempotency {
            let ttl = e.created_ms / 1000 + 24 * 3600;
            items.push(put(
                t,
                vec![
                    ("pk", s(format!("IDEMPOTENCY#{}", r.key))),
                    ("sk", s("IDEMPOTENCY")),
                    ("hash", s(&r.request_hash)),
                    ("status", n(r.status)),
                    ("body", s(&r.body)),
                    ("ttl", n(ttl)),
                ],
                Some(("attribute_not_exists(pk)", vec![])),
            )?);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se)) => match se.err() {
                TransactWriteItemsError::TransactionCanceledException(c) => {
                    let reasons: Vec<Option<&str>> =
                        c.cancellation_reasons().iter().map(|r| r.code()).collect();
                    let failed = |i: usize| {
                        reasons.get(i).copied().flatten() == Some("ConditionalCheckFailed")
                    };
                    if idem_index.is_some_and(failed) {
                        Err(StoreError::KeyTaken)
                    } else if failed(0) {
                        Err(StoreError::Conflict(format!(
                            "condition failed: {reasons:?}"
                        )))
                    } else {
                        Err(StoreError::Transient(format!(
                            "transaction cancelled: {reasons:?}"
                        )))
                    }
                }
                _ => Err(classify(SdkError::ServiceError(se))),
            },
            Err(e) => Err(classify(e)),
        }
    }

    async fn order(&self, order_id: &str) -> Result<Option<Order>, StoreError> {
        self.doc(format!("ORDER#{order_id}"), "ORDER")
            .await?
            .map(|d| from_json(&d))
            .transpose()
    }

    async fn user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        self.doc(format!("USER#{user_id}"), "USER")
            .await?
            .map(|d| from_json(&d))
            .transpose()
    }

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("IDEMPOTENCY#{key}")))
            .key("sk", s("IDEMPOTENCY"))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let get = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_s().ok().or_else(|| v.as_n().ok()))
                .cloned()
        };
        Ok(Some(IdempotencyRecord {
            key: key.to_owned(),
            request_hash: get("hash").unwrap_or_default(),
            status: get("status").and_then(|v| v.parse().ok()).unwrap_or(500),
            body: get("body").unwrap_or_default(),
        }))
    }

    async fn pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut out = Vec::new();
        for b in 0..OUTBOX_BUCKETS {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(format!("OUTBOX#{b}")))
                .limit(limit.min(1000) as i32)
                .send()
                .await
                .map_err(classify)?;
            for item in page.items() {
                if let Some(doc) = item.get("doc").and_then(|v| v.as_s().ok()) {
                    out.push(from_json::<OutboxEntry>(doc)?);
                }
            }
        }
        out.sort_by(|a, b| (a.created_ms, &a.event_id).cmp(&(b.created_ms, &b.event_id)));
        out.truncate(limit);
        Ok(out)
    }

    async fn mark_sent(&self, entries: &[OutboxEntry]) -> Result<(), StoreError> {
        for e in entries {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(format!("OUTBOX#{}", bucket(&e.event_id))))
                .key("sk", s(format!("{:013}#{}", e.created_ms, e.event_id)))
                .send()
                .await
                .map_err(classify)?;
        }
        Ok(())
    }
}
