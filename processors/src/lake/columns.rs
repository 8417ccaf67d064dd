//! Events to Arrow record batches, one function per lake table.
//!
//! Builders append into contiguous buffers (no allocation per field); each
//! batch is sized up front from the rows it will hold. Columns that have a
//! plan are written straight from the records into their page instead
//! (`super::direct`), in the same pass: they come back as [`Built::Direct`].

use arrow_array::ArrayRef;
use arrow_array::ArrowPrimitiveType;
use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Int32Builder, Int64Builder, ListBuilder, PrimitiveBuilder,
    StringBuilder, TimestampMillisecondBuilder,
};
use arrow_schema::ArrowError;
use pipeline_schemas::EventData;
use pipeline_schemas::rules::email_domain;

use super::direct;
use crate::batch::ValidRecord;

fn ts(n: usize) -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC")
}

/// The nine columns every table starts with.
struct Common<'a> {
    event_id: Slot<'a, StringBuilder>,
    event_type: Slot<'a, StringBuilder>,
    schema_version: Slot<'a, Int32Builder>,
    occurred_at: Slot<'a, TimestampMillisecondBuilder>,
    source: Slot<'a, StringBuilder>,
    correlation_id: Slot<'a, StringBuilder>,
    shard_id: Slot<'a, StringBuilder>,
    sequence_number: Slot<'a, StringBuilder>,
    arrived_at: Slot<'a, TimestampMillisecondBuilder>,
}

/// How each of a table's columns (by position) is written: `Some` plan for
/// those [`direct`] writes, `None` (or no entry) for Arrow.
pub(crate) type Plans = [Option<direct::Plan>];

/// A column through its Arrow builder `B`, or written by [`direct`]. (Nine
/// slots a batch at most, never boxed: the size check sees a generic `B`,
/// but every builder here is itself a hundred-odd bytes.)
#[allow(clippy::large_enum_variant)]
enum Slot<'a, B> {
    Arrow(B),
    Direct(direct::Page<'a>),
}

impl<'a, B: ArrayBuilder> Slot<'a, B> {
    /// Column `c`'s slot for `n` rows: [`direct`] where `plans` has a plan.
    fn new(plans: &Plans, c: usize, n: usize, arrow: impl FnOnce() -> B) -> Self {
        match plans.get(c) {
            Some(Some(plan)) => Slot::Direct(direct::Page::new(plan, n)),
            _ => Slot::Arrow(arrow()),
        }
    }

    fn finish(self) -> Built {
        match self {
            Slot::Arrow(b) => Built::Arrow(finish(b)),
            Slot::Direct(page) => page.finish().map_or(Built::Left, Built::Direct),
        }
    }
}

impl<'a> Slot<'a, StringBuilder> {
    #[inline]
    fn push(&mut self, value: &'a str) {
        match self {
            Slot::Arrow(b) => b.append_value(value),
            Slot::Direct(page) => page.push_text(value),
        }
    }

    #[inline]
    fn push_option(&mut self, value: Option<&'a str>) {
        match (self, value) {
            (Slot::Arrow(b), v) => b.append_option(v),
            (Slot::Direct(page), Some(v)) => page.push_text(v),
            (Slot::Direct(page), None) => page.push_null(),
        }
    }
}

/// An integer column: `i32` or `i64` for Arrow, every value an `i64` to
/// [`direct`].
impl<T: ArrowPrimitiveType> Slot<'_, PrimitiveBuilder<T>>
where
    T::Native: Into<i64>,
{
    #[inline]
    fn push_int(&mut self, value: T::Native) {
        match self {
            Slot::Arrow(b) => b.append_value(value),
            Slot::Direct(page) => page.push_int(value.into()),
        }
    }

    #[inline]
    fn push_int_option(&mut self, value: Option<T::Native>) {
        match (self, value) {
            (Slot::Arrow(b), v) => b.append_option(v),
            (Slot::Direct(page), Some(v)) => page.push_int(v.into()),
            (Slot::Direct(page), None) => page.push_null(),
        }
    }
}

/// An `Int32` column of column `c`.
fn int32s<'a>(plans: &Plans, c: usize, n: usize) -> Slot<'a, Int32Builder> {
    Slot::new(plans, c, n, || Int32Builder::with_capacity(n))
}

/// An `Int64` column of column `c`.
fn int64s<'a>(plans: &Plans, c: usize, n: usize) -> Slot<'a, Int64Builder> {
    Slot::new(plans, c, n, || Int64Builder::with_capacity(n))
}

impl Slot<'_, TimestampMillisecondBuilder> {
    #[inline]
    fn push(&mut self, value: i64) {
        match self {
            Slot::Arrow(b) => b.append_value(value),
            Slot::Direct(page) => page.push_number(value),
        }
    }
}

/// A string column of column `c`, `bytes` a row reserved for Arrow.
fn strings<'a>(plans: &Plans, c: usize, n: usize, bytes: usize) -> Slot<'a, StringBuilder> {
    Slot::new(plans, c, n, || StringBuilder::with_capacity(n, n * bytes))
}

/// A timestamp column of column `c`.
fn stamps<'a>(plans: &Plans, c: usize, n: usize) -> Slot<'a, TimestampMillisecondBuilder> {
    Slot::new(plans, c, n, || ts(n))
}

impl<'a> Common<'a> {
    fn new(n: usize, plans: &Plans) -> Self {
        Common {
            event_id: strings(plans, 0, n, 36),
            event_type: strings(plans, 1, n, 16),
            schema_version: int32s(plans, 2, n),
            occurred_at: stamps(plans, 3, n),
            source: strings(plans, 4, n, 20),
            correlation_id: strings(plans, 5, n, 36),
            shard_id: strings(plans, 6, n, 20),
            sequence_number: strings(plans, 7, n, 56),
            arrived_at: stamps(plans, 8, n),
        }
    }

    fn push(&mut self, r: &ValidRecord<'a>) {
        let e = &r.event;
        self.event_id.push(e.event_id);
        self.event_type.push(e.event_type().as_str());
        self.schema_version.push_int(e.schema_version as i32);
        self.occurred_at.push(e.occurred_at_ms);
        self.source.push(e.source);
        self.correlation_id.push(e.correlation_id);
        self.shard_id.push(r.meta.shard_id);
        self.sequence_number.push(r.meta.sequence_number);
        self.arrived_at.push(r.meta.arrival_ms);
    }

    fn finish(self) -> Columns {
        vec![
            self.event_id.finish(),
            self.event_type.finish(),
            self.schema_version.finish(),
            self.occurred_at.finish(),
            self.source.finish(),
            self.correlation_id.finish(),
            self.shard_id.finish(),
            self.sequence_number.finish(),
            self.arrived_at.finish(),
        ]
    }
}

/// One column of a table, as built.
#[derive(Debug)]
pub(crate) enum Built {
    /// An Arrow array, for `parquet`'s writers.
    Arrow(ArrayRef),
    /// A chunk written by [`direct`].
    Direct(direct::Chunk),
    /// A chunk [`direct`] left to `parquet`: the column is to be built
    /// again, through Arrow.
    Left,
}

/// A table's columns in schema order.
pub(crate) type Columns = Vec<Built>;

/// The rows the columns hold: those of any column but one left to be built
/// again (every column holds every row; some tables have no Arrow column
/// left at all).
pub(crate) fn rows(columns: &Columns) -> usize {
    columns
        .iter()
        .find_map(|c| match c {
            Built::Arrow(array) => Some(array.len()),
            Built::Direct(chunk) => usize::try_from(chunk.1.rows_written).ok(),
            Built::Left => None,
        })
        .unwrap_or(0)
}

fn finish(mut builder: impl ArrayBuilder) -> ArrayRef {
    builder.finish()
}

/// The columns as a batch of the table's schema (all of them Arrow).
#[cfg(test)]
pub(crate) fn batch(
    table: pipeline_schemas::lake::Table,
    columns: Columns,
) -> Result<arrow_array::RecordBatch, ArrowError> {
    let columns = columns
        .into_iter()
        .enumerate()
        .map(|(c, column)| match column {
            Built::Arrow(array) => Ok(array),
            Built::Direct(_) | Built::Left => Err(ArrowError::InvalidArgumentError(format!(
                "column {c} of {} was written directly",
                table.name()
            ))),
        })
        .collect::<Result<_, _>>()?;
    arrow_array::RecordBatch::try_new(table.schema(), columns)
}

/// The table-specific columns of one `user_events` row; `None` is null.
#[derive(Default)]
struct UserRow<'a> {
    user_id: &'a str,
    country: Option<&'a str>,
    channel: Option<&'static str>,
    login_method: Option<&'static str>,
    marketing_opt_in: Option<bool>,
    changed_fields: Option<&'a [&'a str]>,
    email_domain: Option<&'a str>,
}

/// `user_events` rows for `rows` (user events only).
pub(crate) fn user_events<'a>(
    rows: impl Iterator<Item = &'a ValidRecord<'a>> + Clone,
    plans: &Plans,
) -> Result<Columns, ArrowError> {
    let n = rows.clone().count();
    let mut common = Common::new(n, plans);
    let mut user_id = strings(plans, 9, n, 16);
    let mut country = strings(plans, 10, n, 2);
    let mut channel = strings(plans, 11, n, 4);
    let mut login_method = strings(plans, 12, n, 4);
    let mut opt_in = BooleanBuilder::with_capacity(n);
    let mut changed = ListBuilder::new(StringBuilder::new());
    let mut domain = strings(plans, 15, n, 8);
    for r in rows {
        let row = match &r.event.data {
            EventData::UserSignedUp(d) => UserRow {
                user_id: d.user_id,
                country: Some(d.country.as_str()),
                channel: Some(d.channel.as_str()),
                marketing_opt_in: Some(d.marketing_opt_in),
                email_domain: Some(email_domain(d.email)),
                ..UserRow::default()
            },
            EventData::UserLoggedIn(d) => UserRow {
                user_id: d.user_id,
                country: Some(d.country.as_str()),
                login_method: Some(d.method.as_str()),
                ..UserRow::default()
            },
            EventData::UserProfileUpdated(d) => UserRow {
                user_id: d.user_id,
                changed_fields: Some(&d.changed_fields),
                ..UserRow::default()
            },
            _ => {
                return Err(ArrowError::InvalidArgumentError(format!(
                    "{} is not a user event",
                    r.event.event_type()
                )));
            }
        };
        common.push(r);
        user_id.push(row.user_id);
        country.push_option(row.country);
        channel.push_option(row.channel);
        login_method.push_option(row.login_method);
        opt_in.append_option(row.marketing_opt_in);
        match row.changed_fields {
            Some(fields) => {
                for f in fields {
                    changed.values().append_value(f);
                }
                changed.append(true);
            }
            None => changed.append_null(),
        }
        domain.push_option(row.email_domain);
    }
    let mut cols = common.finish();
    let rest: [Built; 7] = [
        user_id.finish(),
        country.finish(),
        channel.finish(),
        login_method.finish(),
        Built::Arrow(finish(opt_in)),
        Built::Arrow(finish(changed)),
        domain.finish(),
    ];
    cols.extend(rest);
    Ok(cols)
}

/// The table-specific columns of one `order_events` row; `None` is null.
#[derive(Default)]
struct OrderRow<'a> {
    order_id: &'a str,
    user_id: &'a str,
    country: &'a str,
    currency: Option<&'a str>,
    amount_cents: Option<i64>,
    item_count: Option<i32>,
    payment_id: Option<&'a str>,
    payment_method: Option<&'static str>,
    failure_reason: Option<&'static str>,
    warehouse: Option<&'a str>,
    carrier: Option<&'a str>,
    shipped_items: Option<i32>,
    cancel_reason: Option<&'static str>,
}

fn order_row<'a>(data: &'a EventData<'a>) -> Option<OrderRow<'a>> {
    Some(match data {
        EventData::OrderCreated(d) => OrderRow {
            order_id: d.order_id,
            user_id: d.user_id,
            country: d.country.as_str(),
            currency: Some(d.currency.as_str()),
            amount_cents: Some(d.total_cents as i64),
            item_count: Some(d.items.len() as i32),
            ..OrderRow::default()
        },
        EventData::OrderPaymentSucceeded(d) => OrderRow {
            order_id: d.order_id,
            user_id: d.user_id,
            country: d.country.as_str(),
            currency: Some(d.currency.as_str()),
            amount_cents: Some(d.amount_cents as i64),
            payment_id: Some(d.payment_id),
            payment_method: Some(d.method.as_str()),
            ..OrderRow::default()
        },
        EventData::OrderPaymentFailed(d) => OrderRow {
            order_id: d.order_id,
            user_id: d.user_id,
            country: d.country.as_str(),
            currency: Some(d.currency.as_str()),
            amount_cents: Some(d.amount_cents as i64),
            payment_method: Some(d.method.as_str()),
            failure_reason: Some(d.reason.as_str()),
            ..OrderRow::default()
        },
        EventData::OrderFulfilled(d) => OrderRow {
            order_id: d.order_id,
            user_id: d.user_id,
            country: d.country.as_str(),
            warehouse: Some(d.warehouse),
            carrier: Some(d.carrier),
            shipped_items: Some(d.shipped_items as i32),
            ..OrderRow::default()
        },
        EventData::OrderCancelled(d) => OrderRow {
            order_id: d.order_id,
            user_id: d.user_id,
            country: d.country.as_str(),
            cancel_reason: Some(d.reason.as_str()),
            ..OrderRow::default()
        },
        _ => return None,
    })
}

/// `order_events` rows for `rows` (order events only).
pub(crate) fn order_events<'a>(
    rows: impl Iterator<Item = &'a ValidRecord<'a>> + Clone,
    plans: &Plans,
) -> Result<Columns, ArrowError> {
    let n = rows.clone().count();
    let mut common = Common::new(n, plans);
    let mut order_id = strings(plans, 9, n, 20);
    let mut user_id = strings(plans, 10, n, 16);
    let mut country = strings(plans, 11, n, 2);
    let mut currency = strings(plans, 12, n, 3);
    let mut amount = int64s(plans, 13, n);
    let mut item_count = int32s(plans, 14, n);
    let mut payment_id = strings(plans, 15, n, 8);
    let mut method = strings(plans, 16, n, 4);
    let mut failure = strings(plans, 17, n, 4);
    let mut warehouse = strings(plans, 18, n, 2);
    let mut carrier = strings(plans, 19, n, 2);
    let mut shipped = int32s(plans, 20, n);
    let mut cancel = strings(plans, 21, n, 2);
    for r in rows {
        let Some(row) = order_row(&r.event.data) else {
            return Err(ArrowError::InvalidArgumentError(format!(
                "{} is not an order event",
                r.event.event_type()
            )));
        };
        common.push(r);
        order_id.push(row.order_id);
        user_id.push(row.user_id);
        country.push(row.country);
        currency.push_option(row.currency);
        amount.push_int_option(row.amount_cents);
        item_count.push_int_option(row.item_count);
        payment_id.push_option(row.payment_id);
        method.push_option(row.payment_method);
        failure.push_option(row.failure_reason);
        warehouse.push_option(row.warehouse);
        carrier.push_option(row.carrier);
        shipped.push_int_option(row.shipped_items);
        cancel.push_option(row.cancel_reason);
    }
    let mut cols = common.finish();
    let rest: [Built; 13] = [
        order_id.finish(),
        user_id.finish(),
        country.finish(),
        currency.finish(),
        amount.finish(),
        item_count.finish(),
        payment_id.finish(),
        method.finish(),
        failure.finish(),
        warehouse.finish(),
        carrier.finish(),
        shipped.finish(),
        cancel.finish(),
    ];
    cols.extend(rest);
    Ok(cols)
}

/// `order_items` rows: one per line item of each `order.created` in `rows`.
pub(crate) fn order_items<'a>(
    rows: impl Iterator<Item = &'a ValidRecord<'a>> + Clone,
    plans: &Plans,
) -> Result<Columns, ArrowError> {
    let n: usize = rows
        .clone()
        .map(|r| match &r.event.data {
            EventData::OrderCreated(d) => d.items.len(),
            _ => 0,
        })
        .sum();
    let mut common = Common::new(n, plans);
    let mut order_id = strings(plans, 9, n, 20);
    let mut user_id = strings(plans, 10, n, 16);
    let mut line = int32s(plans, 11, n);
    let mut sku = strings(plans, 12, n, 10);
    let mut quantity = int32s(plans, 13, n);
    let mut price = int64s(plans, 14, n);
    let mut currency = strings(plans, 15, n, 3);
    let mut country = strings(plans, 16, n, 2);
    for r in rows {
        let EventData::OrderCreated(d) = &r.event.data else {
            continue;
        };
        for (i, item) in d.items.iter().enumerate() {
            common.push(r);
            order_id.push(d.order_id);
            user_id.push(d.user_id);
            line.push_int(i as i32 + 1);
            sku.push(item.sku);
            quantity.push_int(item.quantity as i32);
            price.push_int(item.unit_price_cents as i64);
            currency.push(d.currency.as_str());
            country.push(d.country.as_str());
        }
    }
    let mut cols = common.finish();
    let rest: [Built; 8] = [
        order_id.finish(),
        user_id.finish(),
        line.finish(),
        sku.finish(),
        quantity.finish(),
        price.finish(),
        currency.finish(),
        country.finish(),
    ];
    cols.extend(rest);
    Ok(cols)
}
