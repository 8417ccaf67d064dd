//! `pipeline generate`: traffic to files.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use pipeline_generator::kinesis::{self, StreamInfo};
use pipeline_generator::{Body, generate as make};

use crate::TrafficArgs;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// One record per line, as producers wrote them.
    Ndjson,
    /// One Lambda invocation payload per file, as the Lambda runtime receives it.
    Kinesis,
}

/// Options of `pipeline generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    traffic: TrafficArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    format: Format,
    /// Output: a file for NDJSON (`-` for stdout), a folder for Kinesis payloads.
    #[arg(long, default_value = "-")]
    out: PathBuf,
}

pub fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let records = make(args.traffic.config()?);
    match args.format {
        Format::Ndjson => {
            let sink: Box<dyn Write> = if args.out.as_os_str() == "-" {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(
                    File::create(&args.out)
                        .with_context(|| format!("creating {}", args.out.display()))?,
                )
            };
            let mut w = BufWriter::new(sink);
            let mut skipped = 0;
            for r in &records {
                match &r.body {
                    Body::Json(bytes) => {
                        w.write_all(bytes)?;
                        w.write_all(b"\n")?;
                    }
                    Body::RawBase64(_) => skipped += 1,
                }
            }
            w.flush()?;
            if skipped > 0 {
                eprintln!(
                    "{skipped} invalid-base64 records exist only in Kinesis payloads; not written to NDJSON"
                );
            }
        }
        Format::Kinesis => {
            anyhow::ensure!(
                args.out.as_os_str() != "-",
                "--format kinesis needs --out FOLDER"
            );
            fs::create_dir_all(&args.out)
                .with_context(|| format!("creating {}", args.out.display()))?;
            let shards = kinesis::route(&records, args.traffic.shards);
            let payloads =
                kinesis::invocations(&shards, args.traffic.batch_size, &StreamInfo::default());
            for (i, payload) in payloads.iter().enumerate() {
                let path = args.out.join(format!("invocation-{i:05}.json"));
                fs::write(&path, payload).with_context(|| format!("writing {}", path.display()))?;
            }
            eprintln!(
                "wrote {} invocation payloads ({} records, {} shards) to {}",
                payloads.len(),
                records.len(),
                shards.len(),
                args.out.display()
            );
        }
    }
    Ok(())
}
