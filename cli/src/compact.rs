//! `pipeline compact`: merge each partition's small files, dropping duplicates.

use std::path::{Path, PathBuf};

use clap::Args;
use pipeline_processors::LocalStore;
use pipeline_processors::lake::compact::{CompactionSizes, compact_table};
use pipeline_schemas::lake::Table;

/// Options of `pipeline compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The main job's output folder (holds `lake/`).
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Memory for a pass's row keys, MB (as the lake-compactor's
    /// `COMPACT_KEYS_MB`): a partition with more rows is compacted in passes
    #[arg(long, default_value_t = CompactionSizes::DEFAULT_KEYS_MB)]
    keys_mb: u64,
}

/// Compacts every table of the lake under `out`; returns (files before, files after).
pub async fn compact_lake(out: &Path, sizes: CompactionSizes) -> anyhow::Result<(usize, usize)> {
    let store = LocalStore::new(out.join("lake"));
    let (mut before, mut after) = (0, 0);
    for table in Table::ALL {
        for c in compact_table(&store, table, sizes).await? {
            before += c.files_in;
            after += c.keys.len();
            println!(
                "compacted {}: {} files, {} rows -> {} file(s), {} rows ({} big enough, kept){}",
                c.partition,
                c.files_in,
                c.rows_in,
                c.keys.len(),
                c.rows_out,
                c.files_kept,
                if c.passes > 1 {
                    format!(", in {} passes", c.passes)
                } else {
                    String::new()
                }
            );
        }
    }
    Ok((before, after))
}

pub fn compact(args: &CompactArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.out.join("lake").exists(),
        "no lake under {}",
        args.out.display()
    );
    anyhow::ensure!(
        CompactionSizes::KEYS_MB.contains(&args.keys_mb),
        "--keys-mb must be within {:?}",
        CompactionSizes::KEYS_MB
    );
    let (before, after) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(compact_lake(
            &args.out,
            CompactionSizes::default().with_keys_mb(args.keys_mb),
        ))?;
    println!("{before} files merged into {after}");
    Ok(())
}
