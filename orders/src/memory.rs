//! Embedded adapters with the same conditional semantics as DynamoDB and the
//! same per-record results as Kinesis, so the main job runs the functions in
//! process. One lock makes each commit atomic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use crate::model::{Order, User};
use crate::ports::{Commit, EventStream, IdempotencyRecord, OutboxEntry, Store, StoreError, Write};

#[derive(Debug, Default)]
struct Tables {
    orders: HashMap<String, Order>,
    users: HashMap<String, User>,
    keys: HashMap<String, IdempotencyRecord>,
    outbox: BTreeMap<(i64, String), OutboxEntry>,
    sent: HashSet<String>,
}

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Orders stored (for tests and reports).
    pub fn orders(&self) -> Vec<Order> {
        self.lock().orders.values().cloned().collect()
    }
}

impl Store for MemoryStore {
    async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        let mut t = self.lock();
        // check every condition first: all or nothing
        if let Some(idem) = &commit.idempotency
            && t.keys.contains_key(&idem.key)
        {
            return Err(StoreError::KeyTaken);
        }
        match &commit.write {
            Write::NewOrder(o) if t.orders.contains_key(&o.order_id) => {
                return Err(StoreError::Conflict(format!("order {} exists", o.order_id)));
            }
            Write::UpdateOrder {
                order,
                expected_version,
            } => {
                let current = t.orders.get(&order.order_id).map(|o| o.version);
                if current != Some(*expected_version) {
                    return Err(StoreError::Conflict(format!(
                        "order {} is at version {current:?}, not {expected_version}",
                        order.order_id
                    )));
                }
            }
            Write::NewUser(u) if t.users.contains_key(&u.user_id) => {
                return Err(StoreError::Conflict(format!("user {} exists", u.user_id)));
            }
            Write::UserExists { user_id } if !t.users.contains_key(user_id) => {
                return Err(StoreError::Conflict(format!("no user {user_id}")));
            }
            _ => {}
        }
        match commit.write {
            Write::NewOrder(o) | Write::UpdateOrder { order: o, .. } => {
                t.orders.insert(o.order_id.clone(), o);
            }
            Write::NewUser(u) => {
                t.users.insert(u.user_id.clone(), u);
            }
            Write::UserExists { .. } => {}
        }
        if let Some(idem) = commit.idempotency {
            t.keys.insert(idem.key.clone(), idem);
        }
        let key = (commit.outbox.created_ms, commit.outbox.event_id.clone());
        t.outbox.insert(key, commit.outbox);
        Ok(())
    }

    async fn order(&self, order_id: &str) -> Result<Option<Order>, StoreError> {
        Ok(self.lock().orders.get(order_id).cloned())
    }

    async fn user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        Ok(self.lock().users.get(user_id).cloned())
    }

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self.lock().keys.get(key).cloned())
    }

    async fn pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let t = self.lock();
        Ok(t.outbox
            .values()
            .filter(|e| !t.sent.contains(&e.event_id))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn mark_sent(&self, entries: &[OutboxEntry]) -> Result<(), StoreError> {
        let mut t = self.lock();
        for e in entries {
            t.sent.insert(e.event_id.clone());
        }
        Ok(())
    }
}

/// An in-memory stream: records in arrival order (the main job routes them
/// to shards).
#[derive(Debug, Default)]
pub struct MemoryStream {
    records: Mutex<Vec<(String, Vec<u8>)>>,
}

impl MemoryStream {
    /// Everything put so far, in order.
    pub fn records(&self) -> Vec<(String, Vec<u8>)> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many records were put.
    pub fn len(&self) -> usize {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing was put.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes everything put so far.
    pub fn drain(&self) -> Vec<(String, Vec<u8>)> {
        std::mem::take(&mut *self.records.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl EventStream for MemoryStream {
    async fn put(&self, records: &[(String, Vec<u8>)]) -> Result<Vec<bool>, String> {
        let mut r = self.records.lock().unwrap_or_else(|e| e.into_inner());
        r.extend(records.iter().cloned());
        Ok(vec![true; records.len()])
    }
}
