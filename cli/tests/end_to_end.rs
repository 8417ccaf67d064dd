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

#[test]
fn a_replay_from_a_checkpoint_changes_nothing_a_reader_counts() {
    let out = std::env::temp_dir().join(format!("e2e-replay-{}", std::process::id()));
    let bin = env!("CARGO_BIN_EXE_pipeline");
    let ok = Command::new(bin)
        .args([
            "run",
            "--events",
            "2000",
            "--shards",
            "2",
            "--fault-rate",
            "0",
        ])
        .arg("--out")
        .arg(&out)
        .status()
        .expect("run");
    assert!(ok.success());
    let stream = std::fs::read_to_string(out.join("stream/shardId-000000000001.jsonl"))
        .expect("stream kept");
    let middle = stream.lines().nth(400).expect("a record");
    let seq = serde_json::from_str::<serde_json::Value>(middle).expect("json")["sequence_number"]
        .as_str()
        .expect("seq")
        .to_owned();
    let replay = Command::new(bin)
        .args([
            "replay",
            "--shard",
            "shardId-000000000001",
            "--from",
            &seq,
            "--batch-size",
            "150",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("replay");
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(String::from_utf8_lossy(&replay.stdout).contains("the lake reads the same"));
    let bad = Command::new(bin)
        .args(["replay", "--shard", "shardId-000000000001", "--from", "123"])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("replay");
    assert!(!bad.status.success(), "an unknown checkpoint is refused");
    let _ = std::fs::remove_dir_all(&out);
}
