//! The `report-generator` Lambda (EventBridge schedule): runs the SQL reports
//! over the last `REPORT_DAYS` days of the lake (`LAKE_URI`) and the archived
//! dead letters (`DEAD_LETTERS_URI`, optional), and writes CSV, JSON and HTML to
//! `REPORTS_URI/<date>/`. The date is today's (UTC), or the event's `"date"`
//! (`{"date": "2026-11-25"}`) to rebuild a past day's reports. The lake is read in S3 where it lies (only those
//! days' partitions, only the columns the SQL needs); Lambda's `/tmp` holds
//! the outputs before their upload.

use std::sync::Arc;

use anyhow::Context as _;
use lambda_runtime::{LambdaEvent, service_fn};
use object_store::aws::AmazonS3Builder;
use pipeline_processors::config::{AnyStore, Location};
use pipeline_processors::runtime::now_ms;
use pipeline_processors::settings::number;
use pipeline_reports::remote::LakeSource;
use pipeline_schemas::rules::{format_day, parse_day};
use serde_json::{Value, json};

/// The days to report on (the `days` ending on the report's date, newest
/// first) and the report's date: today, unless the event names another.
fn window_of(event: &Value, days: i64, now: i64) -> Result<(Vec<String>, String), String> {
    let end = match event.get("date") {
        None => now.div_euclid(86_400_000),
        Some(v) => v
            .as_str()
            .and_then(parse_day)
            .ok_or_else(|| format!("\"date\" must be a day as YYYY-MM-DD, got {v}"))?,
    };
    let window = (0..days).map(|i| format_day(end - i)).collect();
    Ok((window, format_day(end)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pipeline_processors::runtime::init_json_logs();
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let lake = Location::parse("LAKE_URI", &var("LAKE_URI").context("LAKE_URI is not set")?)?;
    let reports = Location::parse(
        "REPORTS_URI",
        &var("REPORTS_URI").context("REPORTS_URI is not set")?,
    )?;
    let letters = var("DEAD_LETTERS_URI")
        .map(|v| Location::parse("DEAD_LETTERS_URI", &v))
        .transpose()?;
    let days = number(&var, "REPORT_DAYS", 7i64, 1..=90)?;
    let path_style = var("S3_FORCE_PATH_STYLE").as_deref() == Some("true");
    let lake = match lake {
        Location::Local(dir) => LakeSource::Local(dir),
        Location::S3 { bucket, prefix } => {
            // credentials, region and endpoint from the environment, as the
            // SDK's: Lambda's role credentials, or AWS_ENDPOINT_URL locally
            let local = var("AWS_ENDPOINT_URL").is_some_and(|e| e.starts_with("http://"));
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(&bucket)
                .with_virtual_hosted_style_request(!path_style)
                .with_allow_http(local)
                .build()
                .with_context(|| format!("the lake's S3 client for bucket {bucket}"))?;
            LakeSource::S3 {
                store: Arc::new(store),
                bucket,
                prefix,
            }
        }
    };
    let out = AnyStore::open(&reports, var("KMS_KEY_ID"), path_style).await;
    let letters = match letters {
        Some(l) => Some(AnyStore::open(&l, None, path_style).await),
        None => None,
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (lake, out, letters) = (lake.clone(), out.clone(), letters.clone());
        async move {
            let (window, date) = window_of(&event.payload, days, now_ms())?;
            let run = pipeline_reports::remote::run_remote(
                &lake,
                letters.as_ref(),
                &out,
                &window,
                &date,
                std::path::Path::new("/tmp/report-generator"),
            )
            .await?;
            tracing::info!(letters_in = run.letters_in, objects_out = run.objects_out, html = %run.html_key, "reports written");
            Ok::<_, lambda_runtime::Error>(
                json!({"letters_in": run.letters_in, "objects_out": run.objects_out, "html": run.html_key}),
            )
        }
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_may_name_the_day_to_report_on() {
        let now = 1_795_617_476_123; // 2026-11-25T14:37:56.123Z
        let w = |event: Value| window_of(&event, 3, now);
        let today = (
            vec![
                "2026-11-25".to_owned(),
                "2026-11-24".into(),
                "2026-11-23".into(),
            ],
            "2026-11-25".to_owned(),
        );
        assert_eq!(w(json!({})), Ok(today.clone()));
        assert_eq!(w(json!({"source": "aws.events"})), Ok(today));
        assert_eq!(
            w(json!({"date": "2026-03-01"})),
            Ok((
                vec![
                    "2026-03-01".to_owned(),
                    "2026-02-28".into(),
                    "2026-02-27".into()
                ],
                "2026-03-01".to_owned()
            ))
        );
        for bad in [
            json!({"date": "2026-3-1"}),
            json!({"date": "yesterday"}),
            json!({"date": 20261125}),
        ] {
            assert!(w(bad.clone()).is_err(), "{bad}");
        }
    }
}
