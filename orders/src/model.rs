//! Orders, users and the legal order state machine (DESIGN section 7).

use serde::{Deserialize, Serialize};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, not paid.
    Created,
    /// The last payment attempt failed; it may be retried.
    PaymentFailed,
    /// Paid.
    Paid,
    /// Shipped (final).
    Fulfilled,
    /// Cancelled (final).
    Cancelled,
}

impl OrderStatus {
    /// The legal transitions: created -> paid | payment_failed;
    /// payment_failed -> paid | payment_failed (a retried payment);
    /// paid -> fulfilled; created | payment_failed | paid -> cancelled.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Created, Paid)
                | (Created, PaymentFailed)
                | (PaymentFailed, Paid)
                | (PaymentFailed, PaymentFailed)
                | (Paid, Fulfilled)
                | (Created | PaymentFailed | Paid, Cancelled)
        )
    }

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "created",
            OrderStatus::PaymentFailed => "payment_failed",
            OrderStatus::Paid => "paid",
            OrderStatus::Fulfilled => "fulfilled",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

/// A line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Stock-keeping unit.
    pub sku: String,
    /// Units, at least 1.
    pub quantity: u32,
    /// Price of one unit in minor units.
    pub unit_price_cents: u64,
}

/// One entry of an order's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The status entered.
    pub status: OrderStatus,
    /// When, epoch milliseconds.
    pub at_ms: i64,
    /// The event emitted for it.
    pub event_id: String,
    /// A payment id, failure reason or cancel reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An order, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Id (the Kinesis partition key of its events).
    pub order_id: String,
    /// Buyer.
    pub user_id: String,
    /// ISO country.
    pub country: String,
    /// ISO currency.
    pub currency: String,
    /// Lines.
    pub items: Vec<Item>,
    /// Sum of the lines.
    pub total_cents: u64,
    /// Current status.
    pub status: OrderStatus,
    /// Optimistic-concurrency version: every change increments it, and a
    /// write succeeds only if the stored version is the one it read.
    pub version: u64,
    /// Every status change, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// A user, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub user_id: String,
    /// E-mail (personal data: stays here, the lake keeps the domain only).
    pub email: String,
    /// ISO country.
    pub country: String,
    /// Sign-up channel.
    pub channel: String,
    /// Marketing consent.
    pub marketing_opt_in: bool,
    /// When, epoch milliseconds.
    pub created_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::{self, *};

    #[test]
    fn every_transition_is_legal_or_illegal_as_designed() {
        let all = [Created, PaymentFailed, Paid, Fulfilled, Cancelled];
        let legal = [
            (Created, Paid),
            (Created, PaymentFailed),
            (PaymentFailed, Paid),
            (PaymentFailed, PaymentFailed),
            (Paid, Fulfilled),
            (Created, Cancelled),
            (PaymentFailed, Cancelled),
            (Paid, Cancelled),
        ];
        for from in all {
            for to in all {
                assert_eq!(
                    OrderStatus::can_become(from, to),
                    legal.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }
}
