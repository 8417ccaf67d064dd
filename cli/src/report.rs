//! `pipeline report`: the SQL reports over a lake on local disk.

use std::path::{Path, PathBuf};

use clap::Args;

/// Options of `pipeline report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The main job's output folder (holds `lake/` and `dead-letters/`);
    /// reports are written to `<out>/reports/`.
    #[arg(long, default_value = "out")]
    out: PathBuf,
}

/// Runs every report and writes CSV, JSON and the HTML page; returns its path.
pub async fn write_all(out: &Path) -> anyhow::Result<PathBuf> {
    let results =
        pipeline_reports::run_reports(&out.join("lake"), &out.join("dead-letters")).await?;
    Ok(pipeline_reports::write_reports(
        &results,
        &out.join("reports"),
    )?)
}

pub fn report(args: &ReportArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.out.join("lake").exists(),
        "no lake under {}: run `pipeline run` first",
        args.out.display()
    );
    let html = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(write_all(&args.out))?;
    println!("reports written; open {}", html.display());
    Ok(())
}
