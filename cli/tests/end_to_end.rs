//! The main job end to end, as a user runs it: the `pipeline run` binary,
//! with transient faults injected, several seeds and event-source-mapping
//! settings. Each run must reconcile (exit 0, `summary.json` says so).

use std::process::Command;

fn run(seed: u64, extra: &[&str]) -> serde_json::Value {
    let out =
        std::env::temp_dir().join(format!("e2e-{}-{seed}-{}", std::process::id(), extra.len()));
    let status = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args([
            "run",
            "--events",
            "3000",
            "--shards",
            "3",
            "--seed",
            &seed.to_string(),
        ])
        .args([
            "--fault-rate",
            "0.3",
            "--poison-rate",
            "0.05",
            "--batch-size",
            "200",
        ])
        .args(extra)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("the pipeline binary runs");
    assert!(
        status.status.success(),
        "seed {seed} {extra:?} did not reconcile:\n{}\n{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    let summary = std::fs::read(out.join("summary.json")).expect("summary.json");
    let _ = std::fs::remove_dir_all(&out);
    serde_json::from_slice(&summary).expect("summary is JSON")
}

#[test]
fn the_main_job_reconciles_under_faults_for_many_seeds() {
    for seed in [1, 2, 3, 4, 5] {
        let s = run(seed, &[]);
        assert_eq!(s["reconciled"], true, "seed {seed}");
        assert_eq!(s["records_produced"], 3000);
        assert!(
            s["faults_injected"].as_u64().unwrap_or(0) > 0,
            "faults were injected"
        );
        let dead: u64 = s["dead_letters"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum());
        assert!(dead > 0, "poison reached the dead-letter folder");
    }
}

#[test]
fn parallelization_batching_windows_and_the_generator_source_reconcile_too() {
    let s = run(
        9,
        &[
            "--parallelization-factor",
            "4",
            "--batching-window-ms",
            "1500",
        ],
    );
    assert_eq!(s["reconciled"], true);
    let s = run(10, &["--source", "generator"]);
    assert_eq!(s["reconciled"], true);
    assert!(
        s["expected"]["event:user.profile_updated"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
}
