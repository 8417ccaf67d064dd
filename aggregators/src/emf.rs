//! The aggregator's operational metrics as CloudWatch Embedded Metric Format
//! lines, under the same namespace and `FunctionName` dimension as the
//! archiver's (`pipeline_processors::metrics`): the template's alarms and
//! dashboard read them by these names.

use pipeline_processors::metrics::emf_document;

use crate::window::WindowStats;

/// The EMF line for one invocation of `function`. Sink figures are zero on
/// the invocations before a window's last, which write nothing.
pub fn emf_line(namespace: &str, function: &str, stats: &WindowStats, now_ms: i64) -> String {
    let sink = stats.sink.clone().unwrap_or_default();
    let count = |n: usize| n as f64;
    emf_document(
        namespace,
        function,
        &[
            ("RecordsIn", count(stats.records_in), "Count"),
            ("EventsCounted", count(stats.counted), "Count"),
            ("DuplicatesSkipped", count(stats.duplicates), "Count"),
            ("PoisonSkipped", count(stats.poison), "Count"),
            ("MetricRecordsWritten", count(sink.written), "Count"),
            ("MetricWriteRequests", count(sink.requests), "Count"),
            ("MetricWriteRetries", f64::from(sink.retries), "Count"),
            ("MetricRecordsRejected", count(sink.dropped), "Count"),
            ("WindowStateBytes", count(stats.state_bytes), "Bytes"),
            (
                "DedupDigestsForgotten",
                count(stats.digests_forgotten),
                "Count",
            ),
            (
                "MetricWriteFailed",
                f64::from(u8::from(stats.error.is_some())),
                "Count",
            ),
        ],
        now_ms,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::sink::SinkReport;

    fn parsed(stats: &WindowStats) -> Value {
        let line = emf_line(
            "EventPipeline",
            "metrics-aggregator",
            stats,
            1_795_617_476_123,
        );
        assert!(!line.contains('\n'), "one log line");
        serde_json::from_str(&line).expect("an EMF line is JSON")
    }

    #[test]
    fn a_final_invocation_reports_what_the_sink_did_and_declares_every_member() {
        let stats = WindowStats {
            records_in: 500,
            counted: 480,
            duplicates: 5,
            poison: 15,
            sink: Some(SinkReport {
                written: 230,
                requests: 4,
                retries: 1,
                dropped: 2,
            }),
            error: Some("throttled".into()),
            state_bytes: 2,
            digests_forgotten: 0,
        };
        let v = parsed(&stats);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "EventPipeline");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["FunctionName"]])
        );
        assert_eq!(v["FunctionName"], "metrics-aggregator");
        let declared = directive["Metrics"].as_array().expect("metrics");
        assert_eq!(declared.len(), 11);
        for m in declared {
            let name = m["Name"].as_str().expect("name");
            assert!(v[name].is_number(), "{name} declared but not carried");
        }
        for (name, value) in [
            ("RecordsIn", 500.0),
            ("EventsCounted", 480.0),
            ("DuplicatesSkipped", 5.0),
            ("PoisonSkipped", 15.0),
            ("MetricRecordsWritten", 230.0),
            ("MetricWriteRequests", 4.0),
            ("MetricWriteRetries", 1.0),
            ("MetricRecordsRejected", 2.0),
            ("MetricWriteFailed", 1.0),
        ] {
            assert_eq!(v[name], value, "{name}");
        }
    }

    #[test]
    fn a_window_s_earlier_invocation_reports_its_state_and_no_writes() {
        let v = parsed(&WindowStats {
            records_in: 100,
            counted: 100,
            state_bytes: 4_096,
            digests_forgotten: 7,
            ..Default::default()
        });
        assert_eq!(v["MetricRecordsWritten"], 0.0);
        assert_eq!(v["MetricWriteFailed"], 0.0);
        assert_eq!(v["WindowStateBytes"], 4_096.0);
        assert_eq!(v["DedupDigestsForgotten"], 7.0);
    }
}
