//! The local payment provider: deterministic, with test card numbers that
//! decline with each failure reason, as real providers' test cards do.
//!
//! | card number | outcome |
//! | --- | --- |
//! | `4000000000000002` | declined: `card_declined` |
//! | `4000000000009995` | declined: `insufficient_funds` |
//! | `4100000000000019` | declined: `fraud_suspected` |
//! | `4000000000000119` | declined: `provider_error` |
//! | any other number passing the Luhn check | succeeds |
//!
//! Other methods (`paypal`, `apple_pay`, `bank_transfer`) succeed. A repeated
//! idempotency key returns the first outcome and charges nothing more.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ports::{Charge, ChargeOutcome, PaymentProvider};

/// Test cards and their decline reasons.
pub const TEST_CARDS: [(&str, &str); 4] = [
    ("4000000000000002", "card_declined"),
    ("4000000000009995", "insufficient_funds"),
    ("4100000000000019", "fraud_suspected"),
    ("4000000000000119", "provider_error"),
];

/// A card number that succeeds.
pub const GOOD_CARD: &str = "4242424242424242";

/// Luhn check of a card number.
pub fn luhn(number: &str) -> bool {
    let digits: Vec<u32> = number.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 12 || digits.len() != number.len() {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The local provider.
#[derive(Debug, Default)]
pub struct LocalProvider {
    seen: Mutex<HashMap<String, ChargeOutcome>>,
    charges: AtomicU64,
    calls: AtomicU64,
}

impl LocalProvider {
    /// Successful charges made (not counting idempotent repeats).
    pub fn charges(&self) -> u64 {
        self.charges.load(Ordering::SeqCst)
    }

    /// Charge requests received, repeats included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl PaymentProvider for LocalProvider {
    async fn charge(&self, charge: Charge) -> Result<ChargeOutcome, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        // a provider is a network call away: let concurrent requests interleave
        tokio::task::yield_now().await;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(outcome) = seen.get(&charge.idempotency_key) {
            return Ok(outcome.clone());
        }
        let outcome = match (charge.method.as_str(), charge.card_number.as_deref()) {
            ("card", Some(number)) => match TEST_CARDS.iter().find(|(n, _)| *n == number) {
                Some((_, reason)) => ChargeOutcome::Declined { reason },
                None if luhn(number) => ChargeOutcome::Succeeded {
                    payment_id: String::new(),
                },
                None => ChargeOutcome::Declined {
                    reason: "card_declined",
                },
            },
            ("card", None) => return Err("a card payment needs card_number".into()),
            _ => ChargeOutcome::Succeeded {
                payment_id: String::new(),
            },
        };
        let outcome = match outcome {
            ChargeOutcome::Succeeded { .. } => {
                let n = self.charges.fetch_add(1, Ordering::SeqCst) + 1;
                ChargeOutcome::Succeeded {
                    payment_id: format!("pay_local_{n:012}"),
                }
            }
            declined => declined,
        };
        seen.insert(charge.idempotency_key, outcome.clone());
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_pass_luhn() {
        assert!(luhn(GOOD_CARD));
        for (n, _) in TEST_CARDS {
            assert!(luhn(n), "{n}");
        }
        assert!(!luhn("4242424242424241"));
        assert!(!luhn("42424242"));
        assert!(!luhn("4242-4242-4242-4242"));
    }

    #[tokio::test]
    async fn declines_by_test_card_and_charges_once_per_key() {
        let p = LocalProvider::default();
        let charge = |key: &str, card: &str| Charge {
            idempotency_key: key.into(),
            amount_cents: 100,
            currency: "EUR".into(),
            method: "card".into(),
            card_number: Some(card.into()),
        };
        for (n, reason) in TEST_CARDS {
            assert_eq!(
                p.charge(charge(n, n)).await,
                Ok(ChargeOutcome::Declined { reason })
            );
        }
        let first = p.charge(charge("k", GOOD_CARD)).await;
        assert_eq!(p.charge(charge("k", GOOD_CARD)).await, first);
        assert_eq!(p.charges(), 1);
    }
}
