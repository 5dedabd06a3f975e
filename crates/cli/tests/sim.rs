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
    // every seed injects one to three faults
    let injected: usize = stdout
        .split("runs, ")
        .nth(1)
        .and_then(|s| s.split(" faults injected").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no fault count: {stdout}"));
    assert!((4..=12).contains(&injected), "{stdout}");
    assert!(stdout.contains("no invariant violated"), "{stdout}");
}

/// Loads `path` in headless Chromium and returns the DOM, if Chromium is installed.
fn chromium_dom(path: &std::path::Path) -> Option<String> {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(browser) = browser else {
        assert!(
            std::env::var_os("BRAID_REQUIRE_CHROMIUM").is_none(),
            "BRAID_REQUIRE_CHROMIUM is set but no Chromium is installed"
        );
        eprintln!("Chromium not installed: checked the HTML file only (CI installs it)");
        return None;
    };
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", path.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn the_html_report_shows_latency_cdfs_and_a_timeline_with_reverts() {
    let out = tempfile::tempdir().unwrap();
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/revert_cascade.toml"
    );
    let run = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(["sim", scenario, "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let path = out.path().join("report.html");
    let file = std::fs::read_to_string(&path).unwrap();
    let dom = chromium_dom(&path).unwrap_or(file);
    assert!(dom.contains("All invariants held."), "{dom}");
    let cdf = dom
        .split("id=\"cdf\"")
        .nth(1)
        .unwrap()
        .split("</svg>")
        .next()
        .unwrap();
    for mode in ["precommit", "commit", "proof"] {
        assert!(
            cdf.contains(&format!("data-mode=\"{mode}\"")),
            "no CDF for {mode}"
        );
    }
    let timeline = dom
        .split("id=\"timeline\"")
        .nth(1)
        .unwrap()
        .split("</svg>")
        .next()
        .unwrap();
    assert!(
        timeline.matches("class=\"executed\"").count() >= 10,
        "{timeline}"
    );
    assert!(
        timeline.contains("class=\"revert\""),
        "the cascade shows on the timeline"
    );
    assert!(timeline.contains("class=\"fault\""));
}

#[test]
fn braid_sim_generate_runs_seeds_replays_one_and_refuses_bad_options() {
    let out = tempfile::tempdir().unwrap();
    let braid = || Command::new(env!("CARGO_BIN_EXE_braid"));
    let run = braid()
        .args([
            "sim",
            "--generate",
            "3",
            "--seed",
            "50",
            "--faults",
            "none",
            "--modes",
            "commit,proof",
            "--max-chains",
            "3",
            "--jobs",
            "2",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("generated: 3 runs"), "{stdout}");
    assert!(
        stdout.contains("all invariants held (safety and liveness)"),
        "{stdout}"
    );
    // one seed is a replay: its scenario, report and page are written
    let run = braid()
        .args(["sim", "--generate", "1", "--seed", "51", "--faults", "none"])
        .args(["--modes", "commit,proof", "--max-chains", "3", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let toml_path = out.path().join("generated-51.toml");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("generated-51.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["seed"], 51);
    assert!(out.path().join("generated-51.html").exists());
    // the written scenario runs as a file, to the same final state
    let again = out.path().join("again");
    let run = braid()
        .arg("sim")
        .arg(&toml_path)
        .args(["--out"])
        .arg(&again)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let replayed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(again.join("report.json")).unwrap()).unwrap();
    assert_eq!(replayed["final_state_hash"], report["final_state_hash"]);
    // bad options are clear errors
    for (flag, value, expected) in [
        ("--faults", "meteor", "unknown fault kind \"meteor\""),
        ("--modes", "telepathy", "unknown mode \"telepathy\""),
        ("--max-chains", "9", "--max-chains must be between 2 and 8"),
    ] {
        let run = braid()
            .args(["sim", "--generate", "1", flag, value])
            .output()
            .unwrap();
        assert!(!run.status.success());
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(expected), "{flag}: {stderr}");
    }
}
