//! Typed v1 events. Strings borrow from the record buffer (`'a`), so reading
//! an event allocates nothing per field.

/// Defines a closed set of string values with a stable wire form.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* #[doc = concat!("Wire form `", $wire, "`.")] $variant),+
        }

        impl $name {
            /// Every value, in contract order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire form.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }

            /// Parses the wire form; `None` for anything else.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The allowed values, for error messages.
            pub const EXPECTED: &'static str = concat!("one of: ", $($wire, " "),+);
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// The eight event types of contract v1.
    EventType {
        /// A user created an account.
        UserSignedUp => "user.signed_up",
        /// A user logged in.
        UserLoggedIn => "user.logged_in",
        /// A user changed profile fields.
        UserProfileUpdated => "user.profile_updated",
        /// An order was placed.
        OrderCreated => "order.created",
        /// An order was paid.
        OrderPaymentSucceeded => "order.payment_succeeded",
        /// A payment attempt failed.
        OrderPaymentFailed => "order.payment_failed",
        /// An order shipped.
        OrderFulfilled => "order.fulfilled",
        /// An order was cancelled.
        OrderCancelled => "order.cancelled",
    }
);

impl EventType {
    /// Order events land in `order_events`, user events in `user_events`.
    pub const fn is_order(self) -> bool {
        matches!(
            self,
            EventType::OrderCreated
                | EventType::OrderPaymentSucceeded
                | EventType::OrderPaymentFailed
                | EventType::OrderFulfilled
                | EventType::OrderCancelled
        )
    }
}

string_enum!(
    /// Where a user signed up.
    Channel { Web => "web", Ios => "ios", Android => "android", Partner => "partner" }
);
string_enum!(
    /// How a user logged in.
    LoginMethod { Password => "password", Sso => "sso", MagicLink => "magic_link" }
);
string_enum!(
    /// How an order was paid.
    PaymentMethod { Card => "card", Paypal => "paypal", ApplePay => "apple_pay", BankTransfer => "bank_transfer" }
);
string_enum!(
    /// Why a payment failed.
    PaymentFailureReason {
        CardDeclined => "card_declined",
        InsufficientFunds => "insufficient_funds",
        FraudSuspected => "fraud_suspected",
        ProviderError => "provider_error",
    }
);
string_enum!(
    /// Why an order was cancelled.
    CancelReason { CustomerRequest => "customer_request", PaymentFailed => "payment_failed", OutOfStock => "out_of_stock" }
);

/// An ISO 3166-1 alpha-2 code, stored inline so metric keys are `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

/// An ISO 4217 code, stored inline so metric keys are `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Country {
    /// `None` unless two upper-case ASCII letters.
    pub fn new(s: &str) -> Option<Self> {
        crate::rules::is_country(s).then(|| Country([s.as_bytes()[0], s.as_bytes()[1]]))
    }
    /// The code as text: a slice of every code, written at compile time,
    /// rather than a UTF-8 check of the two bytes on each call (the lake
    /// asks once a row and column, 1.3% of an archiver invocation).
    pub fn as_str(&self) -> &str {
        let [a, b] = self.0.map(letter);
        match (a, b) {
            (Some(a), Some(b)) => {
                let at = (a * 26 + b) * 2;
                CODES_OF_TWO.get(at..at + 2).unwrap_or("")
            }
            _ => std::str::from_utf8(&self.0).unwrap_or(""),
        }
    }
}

/// An upper-case ASCII letter's place in the alphabet.
fn letter(c: u8) -> Option<usize> {
    c.is_ascii_uppercase().then(|| usize::from(c - b'A'))
}

/// Every code of `N` upper-case letters in order, `LEN` (= `N` * 26^`N`)
/// bytes in all.
const fn codes<const N: usize, const LEN: usize>() -> [u8; LEN] {
    let mut out = [0; LEN];
    let mut code = 0;
    while code * N < LEN {
        let mut rest = code;
        let mut k = N;
        while k > 0 {
            k -= 1;
            out[code * N + k] = b'A' + (rest % 26) as u8;
            rest /= 26;
        }
        code += 1;
    }
    out
}

const fn ascii(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => panic!("codes are ASCII"),
    }
}

static TWO: [u8; 2 * 26 * 26] = codes::<2, { 2 * 26 * 26 }>();
static THREE: [u8; 3 * 26 * 26 * 26] = codes::<3, { 3 * 26 * 26 * 26 }>();
/// Every country code: `Country::as_str` slices it.
static CODES_OF_TWO: &str = ascii(&TWO);
/// Every currency code: `Currency::as_str` slices it.
static CODES_OF_THREE: &str = ascii(&THREE);

impl Currency {
    /// `None` unless three upper-case ASCII letters.
    pub fn new(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        crate::rules::is_currency(s).then(|| Currency([b[0], b[1], b[2]]))
    }
    /// The code as text, sliced from every code (see [`Country::as_str`]).
    pub fn as_str(&self) -> &str {
        match self.0.map(letter) {
            [Some(a), Some(b), Some(c)] => {
                let at = ((a * 26 + b) * 26 + c) * 3;
                CODES_OF_THREE.get(at..at + 3).unwrap_or("")
            }
            _ => std::str::from_utf8(&self.0).unwrap_or(""),
        }
    }
}

/// One validated event: the envelope plus its typed payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    /// UUID; the de-duplication key downstream.
    pub event_id: &'a str,
    /// Always 1 for now; kept so sinks can record it.
    pub schema_version: u32,
    /// `occurred_at` in milliseconds since the Unix epoch, UTC.
    pub occurred_at_ms: i64,
    /// The producing function.
    pub source: &'a str,
    /// UUID following one request across functions.
    pub correlation_id: &'a str,
    /// The payload; its variant is the event type.
    pub data: EventData<'a>,
}

impl Event<'_> {
    /// The event type, derived from the payload variant.
    pub fn event_type(&self) -> EventType {
        self.data.event_type()
    }
}

/// The payload of each event type.
#[derive(Debug, Clone, PartialEq)]
pub enum EventData<'a> {
    /// `user.signed_up`
    UserSignedUp(UserSignedUp<'a>),
    /// `user.logged_in`
    UserLoggedIn(UserLoggedIn<'a>),
    /// `user.profile_updated`
    UserProfileUpdated(UserProfileUpdated<'a>),
    /// `order.created`
    OrderCreated(OrderCreated<'a>),
    /// `order.payment_succeeded`
    OrderPaymentSucceeded(OrderPaymentSucceeded<'a>),
    /// `order.payment_failed`
    OrderPaymentFailed(OrderPaymentFailed<'a>),
    /// `order.fulfilled`
    OrderFulfilled(OrderFulfilled<'a>),
    /// `order.cancelled`
    OrderCancelled(OrderCancelled<'a>),
}

impl EventData<'_> {
    /// The event type of this payload.
    pub fn event_type(&self) -> EventType {
        match self {
            EventData::UserSignedUp(_) => EventType::UserSignedUp,
            EventData::UserLoggedIn(_) => EventType::UserLoggedIn,
            EventData::UserProfileUpdated(_) => EventType::UserProfileUpdated,
            EventData::OrderCreated(_) => EventType::OrderCreated,
            EventData::OrderPaymentSucceeded(_) => EventType::OrderPaymentSucceeded,
            EventData::OrderPaymentFailed(_) => EventType::OrderPaymentFailed,
            EventData::OrderFulfilled(_) => EventType::OrderFulfilled,
            EventData::OrderCancelled(_) => EventType::OrderCancelled,
        }
    }

    /// The Kinesis partition key producers use: `order_id` for order events,
    /// `user_id` for user events, so one entity's events stay in one shard.
    pub fn partition_key(&self) -> &str {
        match self {
            EventData::UserSignedUp(d) => d.user_id,
            EventData::UserLoggedIn(d) => d.user_id,
            EventData::UserProfileUpdated(d) => d.user_id,
            EventData::OrderCreated(d) => d.order_id,
            EventData::OrderPaymentSucceeded(d) => d.order_id,
            EventData::OrderPaymentFailed(d) => d.order_id,
            EventData::OrderFulfilled(d) => d.order_id,
            EventData::OrderCancelled(d) => d.order_id,
        }
    }
}

/// `user.signed_up`
#[derive(Debug, Clone, PartialEq)]
pub struct UserSignedUp<'a> {
    /// The new user.
    pub user_id: &'a str,
    /// Personal data: validated here, never written to the lake.
    pub email: &'a str,
    /// Country of the user.
    pub country: Country,
    /// Sign-up channel.
    pub channel: Channel,
    /// Marketing consent.
    pub marketing_opt_in: bool,
}

/// `user.logged_in`
#[derive(Debug, Clone, PartialEq)]
pub struct UserLoggedIn<'a> {
    /// The user.
    pub user_id: &'a str,
    /// Login method.
    pub method: LoginMethod,
    /// Country the login came from.
    pub country: Country,
}

/// `user.profile_updated`
#[derive(Debug, Clone, PartialEq)]
pub struct UserProfileUpdated<'a> {
    /// The user.
    pub user_id: &'a str,
    /// Names of the changed fields (at least one).
    pub changed_fields: Vec<&'a str>,
}

/// One line of `order.created`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineItem<'a> {
    /// Stock-keeping unit.
    pub sku: &'a str,
    /// At least 1; fits `int32`.
    pub quantity: u32,
    /// Price of one unit.
    pub unit_price_cents: u64,
}

/// `order.created`
#[derive(Debug, Clone, PartialEq)]
pub struct OrderCreated<'a> {
    /// The order (partition key).
    pub order_id: &'a str,
    /// The buyer.
    pub user_id: &'a str,
    /// Country of the order.
    pub country: Country,
    /// Currency of all amounts.
    pub currency: Currency,
    /// 1 to 100 line items.
    pub items: Vec<LineItem<'a>>,
    /// Sum of quantity x unit price over the items.
    pub total_cents: u64,
}

/// `order.payment_succeeded`
#[derive(Debug, Clone, PartialEq)]
pub struct OrderPaymentSucceeded<'a> {
    /// The order.
    pub order_id: &'a str,
    /// The buyer.
    pub user_id: &'a str,
    /// Country of the order.
    pub country: Country,
    /// The provider's payment reference.
    pub payment_id: &'a str,
    /// Amount charged.
    pub amount_cents: u64,
    /// Currency charged.
    pub currency: Currency,
    /// Payment method.
    pub method: PaymentMethod,
}

/// `order.payment_failed`
#[derive(Debug, Clone, PartialEq)]
pub struct OrderPaymentFailed<'a> {
    /// The order.
    pub order_id: &'a str,
    /// The buyer.
    pub user_id: &'a str,
    /// Country of the order.
    pub country: Country,
    /// Amount attempted.
    pub amount_cents: u64,
    /// Currency attempted.
    pub currency: Currency,
    /// Payment method.
    pub method: PaymentMethod,
    /// Why it failed.
    pub reason: PaymentFailureReason,
}

/// `order.fulfilled`
#[derive(Debug, Clone, PartialEq)]
pub struct OrderFulfilled<'a> {
    /// The order.
    pub order_id: &'a str,
    /// The buyer.
    pub user_id: &'a str,
    /// Country of the order.
    pub country: Country,
    /// Shipping warehouse.
    pub warehouse: &'a str,
    /// Carrier.
    pub carrier: &'a str,
    /// Units shipped, at least 1.
    pub shipped_items: u32,
}

/// `order.cancelled`
#[derive(Debug, Clone, PartialEq)]
pub struct OrderCancelled<'a> {
    /// The order.
    pub order_id: &'a str,
    /// The buyer.
    pub user_id: &'a str,
    /// Country of the order.
    pub country: Country,
    /// Why.
    pub reason: CancelReason,
}

#[cfg(test)]
mod tests {
    use super::{Country, Currency};

    #[test]
    fn every_code_reads_back_as_itself() {
        let letters = b'A'..=b'Z';
        for a in letters.clone() {
            for b in letters.clone() {
                let two = [a, b];
                let text = std::str::from_utf8(&two).expect("ASCII");
                assert_eq!(
                    Country::new(text).map(|c| c.as_str().to_owned()).as_deref(),
                    Some(text)
                );
                for c in letters.clone() {
                    let three = [a, b, c];
                    let text = std::str::from_utf8(&three).expect("ASCII");
                    assert_eq!(
                        Currency::new(text)
                            .map(|c| c.as_str().to_owned())
                            .as_deref(),
                        Some(text)
                    );
                }
            }
        }
        assert_eq!(Country::new("de"), None);
        assert_eq!(Currency::new("EU"), None);
    }
}
