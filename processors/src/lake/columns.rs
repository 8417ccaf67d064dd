//! Events to Arrow record batches, one function per lake table.
//!
//! Builders append into contiguous buffers (no allocation per field); each
//! batch is sized up front from the rows it will hold.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;
use pipeline_schemas::EventData;
use pipeline_schemas::lake::Table;
use pipeline_schemas::rules::email_domain;

use crate::batch::ValidRecord;

fn ts(n: usize) -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC")
}

/// The nine columns every table starts with.
struct Common {
    event_id: StringBuilder,
    event_type: StringBuilder,
    schema_version: Int32Builder,
    occurred_at: TimestampMillisecondBuilder,
    source: StringBuilder,
    correlation_id: StringBuilder,
    shard_id: StringBuilder,
    sequence_number: StringBuilder,
    arrived_at: TimestampMillisecondBuilder,
}

impl Common {
    fn new(n: usize) -> Self {
        Common {
            event_id: StringBuilder::with_capacity(n, n * 36),
            event_type: StringBuilder::with_capacity(n, n * 16),
            schema_version: Int32Builder::with_capacity(n),
            occurred_at: ts(n),
            source: StringBuilder::with_capacity(n, n * 20),
            correlation_id: StringBuilder::with_capacity(n, n * 36),
            shard_id: StringBuilder::with_capacity(n, n * 20),
            sequence_number: StringBuilder::with_capacity(n, n * 56),
            arrived_at: ts(n),
        }
    }

    fn push(&mut self, r: &ValidRecord<'_>) {
        let e = &r.event;
        self.event_id.append_value(e.event_id);
        self.event_type.append_value(e.event_type().as_str());
        self.schema_version.append_value(e.schema_version as i32);
        self.occurred_at.append_value(e.occurred_at_ms);
        self.source.append_value(e.source);
        self.correlation_id.append_value(e.correlation_id);
        self.shard_id.append_value(r.meta.shard_id);
        self.sequence_number.append_value(r.meta.sequence_number);
        self.arrived_at.append_value(r.meta.arrival_ms);
    }

    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.schema_version.finish()),
            Arc::new(self.occurred_at.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.correlation_id.finish()),
            Arc::new(self.shard_id.finish()),
            Arc::new(self.sequence_number.finish()),
            Arc::new(self.arrived_at.finish()),
        ]
    }
}

/// `user_events` rows for `rows` (user events only).
pub fn user_events<'a>(
    rows: impl Iterator<Item = &'a ValidRecord<'a>> + Clone,
) -> Result<RecordBatch, ArrowError> {
    let n = rows.clone().count();
    let mut common = Common::new(n);
    let mut user_id = StringBuilder::with_capacity(n, n * 16);
    let mut country = StringBuilder::with_capacity(n, n * 2);
    let mut channel = StringBuilder::with_capacity(n, n * 4);
    let mut login_method = StringBuilder::with_capacity(n, n * 4);
    let mut opt_in = BooleanBuilder::with_capacity(n);
    let mut changed = ListBuilder::new(StringBuilder::new());
    let mut domain = StringBuilder::with_capacity(n, n * 8);
    for r in rows {
        common.push(r);
        match &r.event.data {
            EventData::UserSignedUp(d) => {
                user_id.append_value(d.user_id);
                country.append_value(d.country.as_str());
                channel.append_value(d.channel.as_str());
                login_method.append_null();
                opt_in.append_value(d.marketing_opt_in);
                changed.append_null();
                domain.append_value(email_domain(d.email));
            }
            EventData::UserLoggedIn(d) => {
                user_id.append_value(d.user_id);
                country.append_value(d.country.as_str());
                channel.append_null();
                login_method.append_value(d.method.as_str());
                opt_in.append_null();
                changed.append_null();
                domain.append_null();
            }
            EventData::UserProfileUpdated(d) => {
                user_id.append_value(d.user_id);
                country.append_null();
                channel.append_null();
                login_method.append_null();
                opt_in.append_null();
                for f in &d.changed_fields {
                    changed.values().append_value(f);
                }
                changed.append(true);
                domain.append_null();
            }
            _ => {
                return Err(ArrowError::InvalidArgumentError(format!(
                    "{} is not a user event",
                    r.event.event_type()
                )));
            }
        }
    }
    let mut cols = common.finish();
    cols.push(Arc::new(user_id.finish()));
    cols.push(Arc::new(country.finish()));
    cols.push(Arc::new(channel.finish()));
    cols.push(Arc::new(login_method.finish()));
    cols.push(Arc::new(opt_in.finish()));
    cols.push(Arc::new(changed.finish()));
    cols.push(Arc::new(domain.finish()));
    RecordBatch::try_new(Table::UserEvents.schema(), cols)
}

/// `order_events` rows for `rows` (order events only).
pub fn order_events<'a>(
    rows: impl Iterator<Item = &'a ValidRecord<'a>> + Clone,
) -> Result<RecordBatch, ArrowError> {
    let n = rows.clone().count();
    let mut common = Common::new(n);
    let mut order_id = StringBuilder::with_capacity(n, n * 20);
    let mut user_id = StringBuilder::with_capacity(n, n * 16);
    let mut country = StringBuilder::with_capacity(n, n * 2);
    let mut currency = StringBuilder::with_capacity(n, n * 3);
    let mut amount = Int64Builder::with_capacity(n);
    let mut item_count = Int32Builder::with_capacity(n);
    let mut payment_id = StringBuilder::with_capacity(n, n * 8);
    let mut method = StringBuilder::with_capacity(n, n * 4);
    let mut failure = StringBuilder::with_capacity(n, n * 4);
    let mut warehouse = StringBuilder::with_capacity(n, n * 2);
    let mut carrier = StringBuilder::with_capacity(n, n * 2);
    let mut shipped = Int32Builder::with_capacity(n);
    let mut cancel = StringBuilder::with_capacity(n, n * 2);
    for r in rows {
        common.push(r);
        // (order, user, country, currency, amount, items, payment, method, failure, warehouse, carrier, shipped, cancel)
        match &r.event.data {
            EventData::OrderCreated(d) => {
                order_id.append_value(d.order_id);
                user_id.append_value(d.user_id);
                country.append_value(d.country.as_str());
                currency.append_value(d.currency.as_str());
                amount.append_value(d.total_cents as i64);
                item_count.append_value(d.items.len() as i32);
                payment_id.append_null();
                method.append_null();
                failure.append_null();
                warehouse.append_null();
                carrier.append_null();
                shipped.append_null();
                cancel.append_null();
            }
            EventData::OrderPaymentSucceeded(d) => {
                order_id.append_value(d.order_id);
                user_id.append_value(d.user_id);
                country.append_value(d.country.as_str());
                currency.append_value(d.currency.as_str());
                amount.append_value(d.amount_cents as i64);
                item_count.append_null();
                payment_id.append_value(d.payment_id);
                method.append_value(d.method.as_str());
                failure.append_null();
                warehouse.append_null();
                carrier.append_null();
                shipped.append_null();
                cancel.append_null();
            }
            EventData::OrderPaymentFailed(d) => {
                order_id.append_value(d.order_id);
                user_id.append_value(d.user_id);
                country.append_value(d.country.as_str());
                currency.append_value(d.currency.as_str());
                amount.append_value(d.amount_cents as i64);
                item_count.append_null();
                payment_id.append_null();
                method.append_value(d.method.as_str());
                failure.append_value(d.reason.as_str());
                warehouse.append_null();
                carrier.append_null();
                shipped.append_null();
                cancel.append_null();
            }
            EventData::OrderFulfilled(d) => {
                order_id.append_value(d.order_id);
                user_id.append_value(d.user_id);
                country.append_value(d.country.as_str());
                currency.append_null();
                amount.append_null();
                item_count.append_null();
                payment_id.append_null();
                method.append_null();
                failure.append_null();
                warehouse.append_value(d.warehouse);
                carrier.append_value(d.carrier);
                shipped.append_value(d.shipped_items as i32);
                cancel.append_null();
            }
            EventData::OrderCancelled(d) => {
                order_id.append_value(d.order_id);
                user_id.append_value(d.user_id);
                country.append_value(d.country.as_str());
                currency.append_null();
                amount.append_null();
                item_count.append_null();
                payment_id.append_null();
                method.append_null();
                failure.append_null();
                warehouse.append_null();
                carrier.append_null();
                shipped.append_null();
                cancel.append_value(d.reason.as_str());
            }
            _ => {
                return Err(ArrowError::InvalidArgumentError(format!(
                    "{} is not an order event",
                    r.event.event_type()
                )));
            }
        }
    }
    let mut cols = common.finish();
    let rest: [ArrayRef; 13] = [
        Arc::new(order_id.finish()),
        Arc::new(user_id.finish()),
        Arc::new(country.finish()),
        Arc::new(currency.finish()),
        Arc::new(amount.finish()),
        Arc::new(item_count.finish()),
        Arc::new(payment_id.finish()),
        Arc::new(method.finish()),
        Arc::new(failure.finish()),
        Arc::new(warehouse.finish()),
        Arc::new(carrier.finish()),
        Arc::new(shipped.finish()),
        Arc::new(cancel.finish()),
    ];
    cols.extend(rest);
    RecordBatch::try_new(Table::OrderEvents.schema(), cols)
}

/// `order_items` rows: one per line item of each `order.created` in `rows`.
pub fn order_items<'a>(
    rows: impl Iterator<Item = &'a ValidRecord<'a>> + Clone,
) -> Result<RecordBatch, ArrowError> {
    let n: usize = rows
        .clone()
        .map(|r| match &r.event.data {
            EventData::OrderCreated(d) => d.items.len(),
            _ => 0,
        })
        .sum();
    let mut common = Common::new(n);
    let mut order_id = StringBuilder::with_capacity(n, n * 20);
    let mut user_id = StringBuilder::with_capacity(n, n * 16);
    let mut line = Int32Builder::with_capacity(n);
    let mut sku = StringBuilder::with_capacity(n, n * 10);
    let mut quantity = Int32Builder::with_capacity(n);
    let mut price = Int64Builder::with_capacity(n);
    let mut currency = StringBuilder::with_capacity(n, n * 3);
    let mut country = StringBuilder::with_capacity(n, n * 2);
    for r in rows {
        let EventData::OrderCreated(d) = &r.event.data else {
            continue;
        };
        for (i, item) in d.items.iter().enumerate() {
            common.push(r);
            order_id.append_value(d.order_id);
            user_id.append_value(d.user_id);
            line.append_value(i as i32 + 1);
            sku.append_value(item.sku);
            quantity.append_value(item.quantity as i32);
            price.append_value(item.unit_price_cents as i64);
            currency.append_value(d.currency.as_str());
            country.append_value(d.country.as_str());
        }
    }
    let mut cols = common.finish();
    let rest: [ArrayRef; 8] = [
        Arc::new(order_id.finish()),
        Arc::new(user_id.finish()),
        Arc::new(line.finish()),
        Arc::new(sku.finish()),
        Arc::new(quantity.finish()),
        Arc::new(price.finish()),
        Arc::new(currency.finish()),
        Arc::new(country.finish()),
    ];
    cols.extend(rest);
    RecordBatch::try_new(Table::OrderItems.schema(), cols)
}
