//! `braid sim` runs a scenario file and writes its report.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;

#[test]
fn braid_sim_writes_a_report_and_fails_on_bad_input() {
    let out = tempfile::tempdir().unwrap();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/basic.toml");
    let run = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(["sim", scenario, "--seed", "3", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("invariants held"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["seed"], 3);
    assert_eq!(report["invariant_violations"], serde_json::json!([]));
    for mode in ["precommit", "commit", "proof"] {
        let m = &report["modes"][mode];
        assert!(
            m["sent"].as_u64().unwrap() > 0 && m["executed"] == m["sent"],
            "{mode}: {m}"
        );
    }
    // a scenario that does not parse is a clear error and a non-zero exit
    let bad = out.path().join("bad.toml");
    std::fs::write(&bad, "duration_ms = \"long\"\n").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_braid"))
        .arg("sim")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("error:"));
}

#[test]
fn braid_sim_swarm_runs_many_seeds() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/basic.toml");
    let run = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(["sim", scenario, "--swarm", "4", "--seed", "100"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("swarm: 4 runs"), "{stdout}");
    assert!(stdout.contains("no invariant violated"), "{stdout}");
}
