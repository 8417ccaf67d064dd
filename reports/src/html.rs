//! One self-contained HTML page: every report as a table and an inline SVG
//! chart (no script, no network needed to view it).

use serde_json::Value;

use crate::ReportResult;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A horizontal bar chart as SVG.
pub fn bar_chart(id: &str, labels: &[String], values: &[f64], unit: &str) -> String {
    let max = values.iter().copied().fold(0.0_f64, f64::max).max(1e-9);
    let row = 24.0;
    let height = 20.0 + row * labels.len() as f64;
    let mut svg = format!(
        r#"<svg class="chart" id="{}" xmlns="http://www.w3.org/2000/svg" width="720" height="{height}" viewBox="0 0 720 {height}" role="img">"#,
        esc(id)
    );
    for (i, (label, value)) in labels.iter().zip(values).enumerate() {
        let y = 10.0 + row * i as f64;
        let w = 440.0 * value / max;
        svg.push_str(&format!(
            r##"<text x="190" y="{ty}" text-anchor="end" font-size="12">{label}</text><rect class="bar" x="200" y="{y}" width="{w:.1}" height="18" fill="#4a7bd0"/><text x="{tx:.1}" y="{ty}" font-size="12">{value}{unit}</text>"##,
            ty = y + 13.0,
            label = esc(label),
            tx = 206.0 + w,
            value = if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.3}") },
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn chart_for(r: &ReportResult) -> String {
    let (labels, values, unit): (Vec<String>, Vec<f64>, &str) = match r.name {
        "revenue_by_hour_country" => {
            // revenue per country over all hours
            let mut by: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
            for (c, v) in r.column("country").iter().zip(r.column("revenue_cents")) {
                *by.entry(text(c)).or_insert(0.0) += num(&v) / 100.0;
            }
            let mut pairs: Vec<(String, f64)> = by.into_iter().collect();
            pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
            (
                pairs.iter().map(|p| p.0.clone()).collect(),
                pairs.iter().map(|p| p.1).collect(),
                "",
            )
        }
        "funnel" => (
            r.column("step").iter().map(text).collect(),
            r.column("users").iter().map(num).collect(),
            " users",
        ),
        "payment_failure_rate" => (
            r.column("payment_method").iter().map(text).collect(),
            r.column("failure_rate").iter().map(num).collect(),
            "",
        ),
        "payment_failure_reasons" => (
            r.rows
                .iter()
                .map(|row| format!("{} / {}", text(&row[0]), text(&row[1])))
                .collect(),
            r.column("failures").iter().map(num).collect(),
            "",
        ),
        "top_skus" => (
            r.column("sku").iter().map(text).collect(),
            r.column("units").iter().map(num).collect(),
            " units",
        ),
        "dlq_by_reason" => (
            r.column("reason").iter().map(text).collect(),
            r.column("records").iter().map(num).collect(),
            "",
        ),
        _ => return String::new(),
    };
    bar_chart(&format!("chart-{}", r.name), &labels, &values, unit)
}

/// The page.
pub fn page(results: &[ReportResult]) -> String {
    let mut html = String::from(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Event pipeline reports</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;margin:.5rem 0 2rem}
td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
pre{background:#f7f7f7;padding:.5rem;overflow:auto}section{margin-bottom:2rem}</style></head><body>
<h1>Event pipeline reports</h1><p>From the Parquet lake, de-duplicated by <code>event_id</code>. The same SQL runs in Athena.</p>"#,
    );
    for r in results {
        html.push_str(&format!(
            r#"<section id="{}"><h2>{}</h2>"#,
            esc(r.name),
            esc(r.title)
        ));
        html.push_str(&chart_for(r));
        html.push_str("<table><tr>");
        for c in &r.columns {
            html.push_str(&format!("<th>{}</th>", esc(c)));
        }
        html.push_str("</tr>");
        for row in r.rows.iter().take(200) {
            html.push_str("<tr>");
            for v in row {
                html.push_str(&format!("<td>{}</td>", esc(&text(v))));
            }
            html.push_str("</tr>");
        }
        html.push_str("</table>");
        html.push_str(&format!(
            "<details><summary>SQL</summary><pre>{}</pre></details></section>",
            esc(r.sql)
        ));
    }
    html.push_str("</body></html>\n");
    html
}
