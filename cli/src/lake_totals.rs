//! The business measures recomputed from the lake, de-duplicated by
//! `event_id`: what an analyst's SQL would give, to reconcile the metrics with.

use std::collections::HashSet;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use pipeline_aggregators::Measures;
use pipeline_processors::ObjectStore;
use pipeline_processors::lake::read::read_parquet;

/// Sums the measures over every distinct event (and line item) in the lake.
pub async fn measures_from_lake<S: ObjectStore>(store: &S) -> anyhow::Result<Measures> {
    let mut m = Measures::default();
    let mut seen: HashSet<(String, i32)> = HashSet::new();
    for table in ["user_events", "order_events", "order_items"] {
        for key in store.list(&format!("{table}/")).await? {
            let Some(bytes) = store.get(&key).await? else {
                continue;
            };
            for batch in read_parquet(bytes).map_err(anyhow::Error::msg)? {
                let col = |name: &str| {
                    batch
                        .column_by_name(name)
                        .ok_or_else(|| anyhow::anyhow!("{key} has no column {name}"))
                };
                let ids = col("event_id")?.as_string::<i32>().clone();
                let types = col("event_type")?.as_string::<i32>().clone();
                for row in 0..batch.num_rows() {
                    let line = if table == "order_items" {
                        col("line_number")?.as_primitive::<Int32Type>().value(row)
                    } else {
                        -1
                    };
                    if !seen.insert((ids.value(row).to_owned(), line)) {
                        continue;
                    }
                    if table == "order_items" {
                        m.items_sold +=
                            col("quantity")?.as_primitive::<Int32Type>().value(row) as u64;
                        continue;
                    }
                    let amount = || -> anyhow::Result<u64> {
                        Ok(col("amount_cents")?.as_primitive::<Int64Type>().value(row) as u64)
                    };
                    match types.value(row) {
                        "user.signed_up" => m.signups += 1,
                        "user.logged_in" => m.logins += 1,
                        "order.created" => {
                            m.orders_created += 1;
                            m.gross_revenue_cents += amount()?;
                        }
                        "order.payment_succeeded" => {
                            m.payments_succeeded += 1;
                            m.payment_revenue_cents += amount()?;
                        }
                        "order.payment_failed" => m.payments_failed += 1,
                        "order.fulfilled" => m.orders_fulfilled += 1,
                        "order.cancelled" => m.orders_cancelled += 1,
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(m)
}
