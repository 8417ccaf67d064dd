//! The dashboard contract (DESIGN section 6): per-minute measures keyed by
//! low-cardinality dimensions, never per user or per order.

use std::collections::BTreeMap;

use pipeline_schemas::{Event, EventData};

/// Dimensions of one metric series. `"none"` where the event type lacks one
/// (Timestream and InfluxDB need non-empty dimension values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dims {
    /// ISO country code of the user or order.
    pub country: Dim,
    /// ISO currency code, or `none` for user events and fulfilment/cancellation.
    pub currency: Dim,
    /// Payment method of payment events, or `none`.
    pub payment_method: Dim,
}

/// One dimension value, stored inline: every value the aggregator writes fits
/// (a country's 2 letters, a currency's 3, a payment method's at most 13,
/// `none`), so counting an event allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dim {
    len: u8,
    bytes: [u8; Dim::MAX],
}

impl Dim {
    /// The longest value, in bytes.
    pub const MAX: usize = 15;

    /// `None` when `value` is longer than [`Dim::MAX`] bytes.
    pub fn new(value: &str) -> Option<Dim> {
        let len = value.len();
        if len > Dim::MAX {
            return None;
        }
        let mut bytes = [0u8; Dim::MAX];
        bytes[..len].copy_from_slice(value.as_bytes());
        Some(Dim {
            len: len as u8,
            bytes,
        })
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        // built from a &str in `new`, so always UTF-8
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl PartialOrd for Dim {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Dim {
    /// As the strings compare (series keep the order they had as `String`s).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.bytes[..usize::from(self.len)].cmp(&other.bytes[..usize::from(other.len)])
    }
}

impl std::fmt::Debug for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The dimension value of an absent dimension.
const NONE_DIM: Dim = Dim {
    len: 4,
    bytes: *b"none\0\0\0\0\0\0\0\0\0\0\0",
};

/// The value written for an absent dimension.
pub const NONE: &str = "none";

/// The measures of one series and minute. Names are fixed: dashboards rely on them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measures {
    /// `order.created` events.
    pub orders_created: u64,
    /// Sum of `total_cents` of `order.created`.
    pub gross_revenue_cents: u64,
    /// Units (sum of item quantities) of `order.created`.
    pub items_sold: u64,
    /// `order.payment_succeeded` events.
    pub payments_succeeded: u64,
    /// Sum of `amount_cents` of `order.payment_succeeded`.
    pub payment_revenue_cents: u64,
    /// `order.payment_failed` events.
    pub payments_failed: u64,
    /// `order.fulfilled` events.
    pub orders_fulfilled: u64,
    /// `order.cancelled` events.
    pub orders_cancelled: u64,
    /// `user.signed_up` events.
    pub signups: u64,
    /// `user.logged_in` events.
    pub logins: u64,
}

impl Measures {
    /// The measure names, in a fixed order, with their values.
    pub fn named(&self) -> [(&'static str, u64); 10] {
        [
            ("orders_created", self.orders_created),
            ("gross_revenue_cents", self.gross_revenue_cents),
            ("items_sold", self.items_sold),
            ("payments_succeeded", self.payments_succeeded),
            ("payment_revenue_cents", self.payment_revenue_cents),
            ("payments_failed", self.payments_failed),
            ("orders_fulfilled", self.orders_fulfilled),
            ("orders_cancelled", self.orders_cancelled),
            ("signups", self.signups),
            ("logins", self.logins),
        ]
    }

    /// Rebuilds from [`Measures::named`] values (same order).
    pub fn from_values(v: [u64; 10]) -> Self {
        Measures {
            orders_created: v[0],
            gross_revenue_cents: v[1],
            items_sold: v[2],
            payments_succeeded: v[3],
            payment_revenue_cents: v[4],
            payments_failed: v[5],
            orders_fulfilled: v[6],
            orders_cancelled: v[7],
            signups: v[8],
            logins: v[9],
        }
    }

    /// Element-wise sum.
    pub fn add(&mut self, other: &Measures) {
        let a = self.named();
        let b = other.named();
        let mut sum = [0u64; 10];
        for i in 0..10 {
            sum[i] = a[i].1.saturating_add(b[i].1);
        }
        *self = Measures::from_values(sum);
    }

    /// `profile_updated` events carry no measure: such a series would be all zeros.
    pub fn is_zero(&self) -> bool {
        self.named().iter().all(|(_, v)| *v == 0)
    }
}

/// A series key: the minute (epoch ms, floored) and the dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// Start of the minute of `occurred_at`, epoch milliseconds.
    pub minute_ms: i64,
    /// Dimensions.
    pub dims: Dims,
}

/// Aggregates of many events.
pub type Aggregates = BTreeMap<SeriesKey, Measures>;

/// The minute of `ms`.
pub fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(60_000) * 60_000
}

/// The validated codes and enum names always fit; `none` otherwise.
fn dim(value: &str) -> Dim {
    Dim::new(value).unwrap_or(NONE_DIM)
}

/// Adds one event to `agg`. Late events land in their own minute.
pub fn add_event(agg: &mut Aggregates, event: &Event<'_>) {
    if let Some((key, m)) = measure(event) {
        agg.entry(key).or_default().add(&m);
    }
}

/// The series `event` counts in and what it adds to it; `None` for an event
/// that carries no measure (`user.profile_updated`).
pub fn measure(event: &Event<'_>) -> Option<(SeriesKey, Measures)> {
    let (country, currency, method, m) = match &event.data {
        EventData::UserSignedUp(d) => (
            dim(d.country.as_str()),
            NONE_DIM,
            NONE_DIM,
            Measures {
                signups: 1,
                ..Measures::default()
            },
        ),
        EventData::UserLoggedIn(d) => (
            dim(d.country.as_str()),
            NONE_DIM,
            NONE_DIM,
            Measures {
                logins: 1,
                ..Measures::default()
            },
        ),
        EventData::UserProfileUpdated(_) => return None,
        EventData::OrderCreated(d) => (
            dim(d.country.as_str()),
            dim(d.currency.as_str()),
            NONE_DIM,
            Measures {
                orders_created: 1,
                gross_revenue_cents: d.total_cents,
                items_sold: d.items.iter().map(|i| u64::from(i.quantity)).sum(),
                ..Measures::default()
            },
        ),
        EventData::OrderPaymentSucceeded(d) => (
            dim(d.country.as_str()),
            dim(d.currency.as_str()),
            dim(d.method.as_str()),
            Measures {
                payments_succeeded: 1,
                payment_revenue_cents: d.amount_cents,
                ..Measures::default()
            },
        ),
        EventData::OrderPaymentFailed(d) => (
            dim(d.country.as_str()),
            dim(d.currency.as_str()),
            dim(d.method.as_str()),
            Measures {
                payments_failed: 1,
                ..Measures::default()
            },
        ),
        EventData::OrderFulfilled(d) => (
            dim(d.country.as_str()),
            NONE_DIM,
            NONE_DIM,
            Measures {
                orders_fulfilled: 1,
                ..Measures::default()
            },
        ),
        EventData::OrderCancelled(d) => (
            dim(d.country.as_str()),
            NONE_DIM,
            NONE_DIM,
            Measures {
                orders_cancelled: 1,
                ..Measures::default()
            },
        ),
    };
    let key = SeriesKey {
        minute_ms: minute_of(event.occurred_at_ms),
        dims: Dims {
            country,
            currency,
            payment_method: method,
        },
    };
    Some((key, m))
}

/// Merges `other` (a map of any kind: a slice's sums are a hash map) into
/// `agg`.
pub fn merge<'a>(
    agg: &mut Aggregates,
    other: impl IntoIterator<Item = (&'a SeriesKey, &'a Measures)>,
) {
    for (k, m) in other {
        agg.entry(*k).or_default().add(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimension_values_are_inline_strings_in_string_order() {
        let d = |s: &str| Dim::new(s).expect("fits");
        assert_eq!(d("bank_transfer").as_str(), "bank_transfer");
        assert_eq!(d("").as_str(), "");
        assert_eq!(NONE_DIM, d(NONE));
        assert!(Dim::new("sixteen_bytes_xx").is_none());
        let mut values = [
            d("none"),
            d("US"),
            d("DE"),
            d("card"),
            d("apple_pay"),
            d("EUR"),
        ];
        values.sort();
        let strings: Vec<&str> = values.iter().map(Dim::as_str).collect();
        assert_eq!(strings, ["DE", "EUR", "US", "apple_pay", "card", "none"]);
        assert_eq!(format!("{} {:?}", d("DE"), d("DE")), "DE \"DE\"");
        // prefixes, NULs and the longest values order as their strings do
        let tricky = [
            "",
            "a",
            "a\0",
            "a\0\0",
            "a\0b",
            "ab",
            "abc",
            "b",
            "\0",
            "\u{7f}",
            "é",
            "fifteen_bytes_x",
            "fifteen_bytes_y",
            "fifteen_bytes_",
            "Z",
        ];
        for x in tricky {
            for y in tricky {
                assert_eq!(d(x).cmp(&d(y)), x.cmp(y), "{x:?} vs {y:?}");
            }
        }
    }

    #[test]
    fn minutes_floor_in_utc() {
        assert_eq!(minute_of(1_795_617_476_123), 1_795_617_420_000);
        assert_eq!(minute_of(-1), -60_000);
    }

    #[test]
    fn measures_add_and_name() {
        let mut a = Measures {
            orders_created: 1,
            gross_revenue_cents: 100,
            ..Default::default()
        };
        a.add(&Measures {
            orders_created: 2,
            logins: 5,
            ..Default::default()
        });
        assert_eq!(a.orders_created, 3);
        assert_eq!(a.logins, 5);
        assert_eq!(Measures::from_values(a.named().map(|(_, v)| v)), a);
        assert!(!a.is_zero());
        assert!(Measures::default().is_zero());
    }
}
