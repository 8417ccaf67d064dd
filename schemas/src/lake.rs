//! Arrow schemas of the lake tables (DESIGN section 5): the analyst contract.
//!
//! Timestamps are `Timestamp(Millisecond, "UTC")`, which the Parquet writer
//! stores as INT64 `TIMESTAMP(MILLIS, isAdjustedToUTC=true)`: the encoding
//! that Athena, Glue, DuckDB and pyarrow all read as the same instant.
//! Hive partition columns (`dt`, `hour`) live in the path, not in the files.

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The three tables, one folder each under the lake root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// One row per user event.
    UserEvents,
    /// One row per order event.
    OrderEvents,
    /// One row per line item of `order.created`.
    OrderItems,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 3] = [Table::UserEvents, Table::OrderEvents, Table::OrderItems];

    /// The folder and Glue table name.
    pub const fn name(self) -> &'static str {
        match self {
            Table::UserEvents => "user_events",
            Table::OrderEvents => "order_events",
            Table::OrderItems => "order_items",
        }
    }

    /// The table's Arrow schema.
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::UserEvents => USER_EVENTS.clone(),
            Table::OrderEvents => ORDER_EVENTS.clone(),
            Table::OrderItems => ORDER_ITEMS.clone(),
        }
    }
}

/// The lake's timestamp type.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn common() -> Vec<Field> {
    vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("schema_version", DataType::Int32, false),
        Field::new("occurred_at", timestamp_type(), false),
        Field::new("source", DataType::Utf8, false),
        Field::new("correlation_id", DataType::Utf8, false),
        Field::new("shard_id", DataType::Utf8, false),
        Field::new("sequence_number", DataType::Utf8, false),
        Field::new("arrived_at", timestamp_type(), false),
    ]
}

fn with_common(rest: Vec<Field>) -> SchemaRef {
    let mut fields = common();
    fields.extend(rest);
    Arc::new(Schema::new(fields))
}

static USER_EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    with_common(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, true),
        Field::new("channel", DataType::Utf8, true),
        Field::new("login_method", DataType::Utf8, true),
        Field::new("marketing_opt_in", DataType::Boolean, true),
        Field::new(
            "changed_fields",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        Field::new("email_domain", DataType::Utf8, true),
    ])
});

static ORDER_EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    with_common(vec![
        Field::new("order_id", DataType::Utf8, false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("currency", DataType::Utf8, true),
        Field::new("amount_cents", DataType::Int64, true),
        Field::new("item_count", DataType::Int32, true),
        Field::new("payment_id", DataType::Utf8, true),
        Field::new("payment_method", DataType::Utf8, true),
        Field::new("failure_reason", DataType::Utf8, true),
        Field::new("warehouse", DataType::Utf8, true),
        Field::new("carrier", DataType::Utf8, true),
        Field::new("shipped_items", DataType::Int32, true),
        Field::new("cancel_reason", DataType::Utf8, true),
    ])
});

static ORDER_ITEMS: LazyLock<SchemaRef> = LazyLock::new(|| {
    with_common(vec![
        Field::new("order_id", DataType::Utf8, false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("line_number", DataType::Int32, false),
        Field::new("sku", DataType::Utf8, false),
        Field::new("quantity", DataType::Int32, false),
        Field::new("unit_price_cents", DataType::Int64, false),
        Field::new("currency", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
    ])
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_the_common_columns_first() {
        for table in Table::ALL {
            let schema = table.schema();
            let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(
                &names[..9],
                [
                    "event_id",
                    "event_type",
                    "schema_version",
                    "occurred_at",
                    "source",
                    "correlation_id",
                    "shard_id",
                    "sequence_number",
                    "arrived_at"
                ]
            );
            assert_eq!(
                schema
                    .field_with_name("occurred_at")
                    .map(|f| f.data_type().clone())
                    .ok(),
                Some(timestamp_type())
            );
        }
    }

    #[test]
    fn money_is_int64_and_counts_int32() {
        let orders = Table::OrderEvents.schema();
        assert_eq!(
            orders
                .field_with_name("amount_cents")
                .map(|f| f.data_type().clone())
                .ok(),
            Some(DataType::Int64)
        );
        assert_eq!(
            orders
                .field_with_name("item_count")
                .map(|f| f.data_type().clone())
                .ok(),
            Some(DataType::Int32)
        );
        let items = Table::OrderItems.schema();
        assert_eq!(
            items
                .field_with_name("quantity")
                .map(|f| f.data_type().clone())
                .ok(),
            Some(DataType::Int32)
        );
        assert!(
            Table::UserEvents.schema().field_with_name("email").is_err(),
            "no raw e-mail in the lake"
        );
    }
}
