//! The business measures recomputed from the lake, de-duplicated by
//! `event_id`: what an analyst's SQL would give, to reconcile the metrics with.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{BooleanArray, RecordBatch};
use pipeline_aggregators::Measures;
use pipeline_schemas::lake::Table;

/// Adds the first-seen rows (`mask`) of one lake batch to `m`.
pub fn add_measures(
    m: &mut Measures,
    table: Table,
    batch: &RecordBatch,
    mask: &BooleanArray,
) -> Result<(), String> {
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| format!("no column {name}"))
    };
    let rows = (0..batch.num_rows()).filter(|&r| mask.value(r));
    if table == Table::OrderItems {
        let quantity = col("quantity")?.as_primitive::<Int32Type>();
        m.items_sold += rows.map(|r| quantity.value(r) as u64).sum::<u64>();
        return Ok(());
    }
    let types = col("event_type")?.as_string::<i32>();
    let amount = batch
        .column_by_name("amount_cents")
        .map(|c| c.as_primitive::<Int64Type>());
    let amount = |r: usize| amount.map_or(0, |a| a.value(r) as u64);
    for r in rows {
        match types.value(r) {
            "user.signed_up" => m.signups += 1,
            "user.logged_in" => m.logins += 1,
            "order.created" => {
                m.orders_created += 1;
                m.gross_revenue_cents += amount(r);
            }
            "order.payment_succeeded" => {
                m.payments_succeeded += 1;
                m.payment_revenue_cents += amount(r);
            }
            "order.payment_failed" => m.payments_failed += 1,
            "order.fulfilled" => m.orders_fulfilled += 1,
            "order.cancelled" => m.orders_cancelled += 1,
            _ => {}
        }
    }
    Ok(())
}
