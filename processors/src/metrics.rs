//! Operational metrics as CloudWatch Embedded Metric Format (EMF) log lines:
//! CloudWatch extracts them from the logs, so they cost no API call and add
//! no latency to the invocation.

use serde_json::{Map, Value, json};

use crate::batch::InvocationStats;

/// The EMF document for one invocation of `function` (one JSON line).
pub fn emf_line(namespace: &str, function: &str, stats: &InvocationStats, now_ms: i64) -> String {
    let mut metrics = vec![
        ("RecordsIn", stats.records_in as f64, "Count"),
        ("ValidEvents", stats.valid as f64, "Count"),
        (
            "DeadLettered",
            stats.dead_lettered.values().sum::<usize>() as f64,
            "Count",
        ),
        ("FailedRecords", stats.failed as f64, "Count"),
        ("Retries", f64::from(stats.retries), "Count"),
        ("ObjectsWritten", stats.objects.0 as f64, "Count"),
        ("BytesWritten", stats.bytes as f64, "Bytes"),
        (
            "DurationMs",
            stats.duration.as_secs_f64() * 1000.0,
            "Milliseconds",
        ),
    ];
    let table_names: Vec<String> = stats.rows.keys().map(|t| format!("Rows_{t}")).collect();
    for (name, rows) in table_names.iter().zip(stats.rows.values()) {
        metrics.push((name.as_str(), *rows as f64, "Count"));
    }
    let reason_names: Vec<String> = stats
        .dead_lettered
        .keys()
        .map(|r| format!("DeadLettered_{r}"))
        .collect();
    for (name, n) in reason_names.iter().zip(stats.dead_lettered.values()) {
        metrics.push((name.as_str(), *n as f64, "Count"));
    }
    emf_document(namespace, function, &metrics, now_ms)
}

/// One EMF line with `FunctionName` as its only dimension: every function of
/// the pipeline writes its metrics through this, so that the template's alarms
/// and dashboard find each of them under the same namespace and dimension.
/// `metrics` are (name, value, CloudWatch unit); each is declared in the
/// `_aws` directive and carried as a top-level member, as EMF requires.
pub fn emf_document(
    namespace: &str,
    function: &str,
    metrics: &[(&str, f64, &str)],
    now_ms: i64,
) -> String {
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["FunctionName"]],
                "Metrics": metrics.iter().map(|(n, _, u)| json!({"Name": n, "Unit": u})).collect::<Vec<_>>(),
            }],
        }),
    );
    doc.insert("FunctionName".into(), Value::from(function));
    for (name, value, _) in metrics {
        doc.insert((*name).to_owned(), json!(value));
    }
    Value::Object(doc).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_declares_every_metric_it_carries() {
        let mut stats = InvocationStats {
            records_in: 10,
            valid: 8,
            ..Default::default()
        };
        stats.dead_lettered.insert("malformed_json", 2);
        stats.rows.insert("order_events", 5);
        let line = emf_line(
            "EventPipeline",
            "event-processor",
            &stats,
            1_795_617_476_123,
        );
        let v: Value = serde_json::from_str(&line).expect("json");
        let declared = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .expect("metrics");
        for m in declared {
            let name = m["Name"].as_str().expect("name");
            assert!(
                v.get(name).is_some_and(Value::is_number),
                "{name} declared but not present"
            );
        }
        assert_eq!(v["RecordsIn"], 10.0);
        assert_eq!(v["DeadLettered_malformed_json"], 2.0);
        assert_eq!(v["Rows_order_events"], 5.0);
        assert_eq!(v["FunctionName"], "event-processor");
        assert!(!line.contains('\n'));
    }
}
