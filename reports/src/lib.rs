//! Reports over the Parquet lake. Each report is a SQL file under
//! `reports/sql/`, run here with DataFusion and, unchanged, in Athena.
//!
//! Dialect rules that keep one SQL text valid in both engines: plain table
//! names (Athena: the `events` database is the query's default), no
//! positional `GROUP BY`, `SUM(CASE ...)` instead of `FILTER`, explicit
//! `CAST(... AS DOUBLE)`, `date_trunc('hour', ts)`, and de-duplication by
//! `event_id` with `SELECT DISTINCT` sub-queries.

pub mod html;
pub mod remote;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::datasource::MemTable;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use pipeline_schemas::lake::Table;
use pipeline_schemas::rules::parse_day;
use serde_json::{Map, Value};
use thiserror::Error;

/// A report failed.
#[derive(Debug, Error)]
pub enum ReportError {
    /// DataFusion.
    #[error("query {0}: {1}")]
    Query(&'static str, String),
    /// Files.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// A report: name, title, SQL.
#[derive(Debug, Clone, Copy)]
pub struct ReportDef {
    /// File stem of the SQL and the outputs.
    pub name: &'static str,
    /// Human title.
    pub title: &'static str,
    /// The SQL (also in `reports/sql/<name>.sql`).
    pub sql: &'static str,
}

/// Every report, in the order the HTML page shows them.
pub const REPORTS: &[ReportDef] = &[
    ReportDef {
        name: "revenue_by_hour_country",
        title: "Revenue and orders per hour and country",
        sql: include_str!("../sql/revenue_by_hour_country.sql"),
    },
    ReportDef {
        name: "funnel",
        title: "Funnel: signed up, ordered, paid, fulfilled (users)",
        sql: include_str!("../sql/funnel.sql"),
    },
    ReportDef {
        name: "payment_failure_rate",
        title: "Payment failure rate by method",
        sql: include_str!("../sql/payment_failure_rate.sql"),
    },
    ReportDef {
        name: "payment_failure_reasons",
        title: "Payment failures by method and reason",
        sql: include_str!("../sql/payment_failure_reasons.sql"),
    },
    ReportDef {
        name: "top_skus",
        title: "Top SKUs by units",
        sql: include_str!("../sql/top_skus.sql"),
    },
    ReportDef {
        name: "dlq_by_reason",
        title: "Dead-lettered records by reason",
        sql: include_str!("../sql/dlq_by_reason.sql"),
    },
];

/// A report's result as rows of JSON values (numbers stay numbers).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportResult {
    /// The report.
    pub name: &'static str,
    /// Its title.
    pub title: &'static str,
    /// Its SQL.
    pub sql: &'static str,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<Value>>,
}

impl ReportResult {
    /// The value of `column` in every row.
    pub fn column(&self, column: &str) -> Vec<Value> {
        let Some(i) = self.columns.iter().position(|c| c == column) else {
            return Vec::new();
        };
        self.rows.iter().map(|r| r[i].clone()).collect()
    }

    /// CSV (RFC 4180 quoting).
    pub fn to_csv(&self) -> String {
        let cell = |v: &Value| {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s
            }
        };
        let mut out = self.columns.join(",");
        out.push('\n');
        for row in &self.rows {
            out.push_str(&row.iter().map(cell).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        out
    }

    /// JSON: an array of objects.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    let mut o = Map::new();
                    for (c, v) in self.columns.iter().zip(row) {
                        o.insert(c.clone(), v.clone());
                    }
                    Value::Object(o)
                })
                .collect(),
        )
    }
}

fn to_rows(batches: &[RecordBatch]) -> Result<(Vec<String>, Vec<Vec<Value>>), String> {
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for batch in batches {
        if columns.is_empty() {
            columns = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
        }
        for r in 0..batch.num_rows() {
            let mut row = Vec::with_capacity(batch.num_columns());
            for col in batch.columns() {
                row.push(cell(col, r)?);
            }
            rows.push(row);
        }
    }
    Ok((columns, rows))
}

fn cell(col: &ArrayRef, r: usize) -> Result<Value, String> {
    if col.is_null(r) {
        return Ok(Value::Null);
    }
    let text = array_value_to_string(col, r).map_err(|e| e.to_string())?;
    Ok(match col.data_type() {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::String(text)),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => text
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or(Value::String(text)),
        DataType::Float32 | DataType::Float64 => text
            .parse::<f64>()
            .map(Value::from)
            .unwrap_or(Value::String(text)),
        _ => Value::String(text),
    })
}

/// Registers the lake's tables (Hive partitions `dt`, `hour`) and the dead
/// letters, then runs every report.
pub async fn run_reports(
    lake: &Path,
    dead_letters: &Path,
) -> Result<Vec<ReportResult>, ReportError> {
    let ctx = SessionContext::new();
    register_lake(&ctx, &format!("{}/", lake.display()), None).await?;
    // dead letters: JSON files, one per record
    let letters = pipeline_processors::LocalDeadLetters::new(dead_letters)
        .read_all()
        .map_err(|e| ReportError::Io(dead_letters.to_path_buf(), e))?;
    run_sql(&ctx, &letters).await
}

/// Registers the lake's three tables under `root` (a folder, or a URL whose
/// object store `ctx` knows, e.g. `s3://bucket/lake/`), read where they lie:
/// DataFusion reads only the column chunks a query needs. With `days`
/// (`YYYY-MM-DD`), each table is a view of those days' partitions only, and
/// the others are never read.
pub async fn register_lake(
    ctx: &SessionContext,
    root: &str,
    days: Option<&[String]>,
) -> Result<(), ReportError> {
    for lake_table in Table::ALL {
        let table = lake_table.name();
        let options = ParquetReadOptions::default().table_partition_cols(vec![
            ("dt".to_owned(), DataType::Utf8),
            ("hour".to_owned(), DataType::Utf8),
        ]);
        let schema = lake_table.schema();
        let location = format!("{}/{table}/", root.trim_end_matches('/'));
        // a local table with no file yet is an empty folder; in an object
        // store it is a prefix with no keys, which reads as empty
        if !location.contains("://") {
            std::fs::create_dir_all(&location)
                .map_err(|e| ReportError::Io(PathBuf::from(&location), e))?;
        }
        let name = match days {
            None => table.to_owned(),
            Some(_) => format!("{table}_all_days"),
        };
        ctx.register_parquet(&name, location, options.schema(&schema))
            .await
            .map_err(|e| ReportError::Query("register", format!("{table}: {e}")))?;
        if let Some(days) = days {
            // a real YYYY-MM-DD is all a day may be before it goes into SQL
            if days.is_empty() || !days.iter().all(|d| parse_day(d).is_some()) {
                return Err(ReportError::Query(
                    "register",
                    format!("days must be YYYY-MM-DD, at least one: {days:?}"),
                ));
            }
            let view = format!(
                "CREATE VIEW {table} AS SELECT * FROM {name} WHERE dt IN ('{}')",
                days.join("', '")
            );
            ctx.sql(&view)
                .await
                .map_err(|e| ReportError::Query("register", format!("{table}: {e}")))?;
        }
    }
    Ok(())
}

/// Runs every report over the tables registered in `ctx`, with `letters`
/// (dead letters as their JSON documents) as the `dead_letters` table.
pub async fn run_sql(
    ctx: &SessionContext,
    letters: &[Value],
) -> Result<Vec<ReportResult>, ReportError> {
    let reasons: Vec<Option<String>> = letters
        .iter()
        .map(|l| l["reason"].as_str().map(str::to_owned))
        .collect();
    let shards: Vec<Option<String>> = letters
        .iter()
        .map(|l| l["shard_id"].as_str().map(str::to_owned))
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("reason", DataType::Utf8, true),
        Field::new("shard_id", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(reasons)),
            Arc::new(StringArray::from(shards)),
        ],
    )
    .map_err(|e| ReportError::Query("dead_letters", e.to_string()))?;
    let table = MemTable::try_new(schema, vec![vec![batch]])
        .map_err(|e| ReportError::Query("dead_letters", e.to_string()))?;
    ctx.register_table("dead_letters", Arc::new(table))
        .map_err(|e| ReportError::Query("dead_letters", e.to_string()))?;

    let mut out = Vec::with_capacity(REPORTS.len());
    for def in REPORTS {
        let df = ctx
            .sql(def.sql)
            .await
            .map_err(|e| ReportError::Query(def.name, e.to_string()))?;
        let batches = df
            .collect()
            .await
            .map_err(|e| ReportError::Query(def.name, e.to_string()))?;
        let (columns, rows) = to_rows(&batches).map_err(|e| ReportError::Query(def.name, e))?;
        out.push(ReportResult {
            name: def.name,
            title: def.title,
            sql: def.sql,
            columns,
            rows,
        });
    }
    Ok(out)
}

/// Writes `<out>/<name>.csv`, `<out>/<name>.json` for each report and
/// `<out>/report.html`; returns the HTML path.
pub fn write_reports(results: &[ReportResult], out: &Path) -> Result<PathBuf, ReportError> {
    std::fs::create_dir_all(out).map_err(|e| ReportError::Io(out.to_path_buf(), e))?;
    for r in results {
        let csv = out.join(format!("{}.csv", r.name));
        std::fs::write(&csv, r.to_csv()).map_err(|e| ReportError::Io(csv.clone(), e))?;
        let json = out.join(format!("{}.json", r.name));
        let text = serde_json::to_string_pretty(&r.to_json()).unwrap_or_default();
        std::fs::write(&json, text).map_err(|e| ReportError::Io(json.clone(), e))?;
    }
    let html = out.join("report.html");
    std::fs::write(&html, html::page(results)).map_err(|e| ReportError::Io(html.clone(), e))?;
    Ok(html)
}
