//! Regression tests for the reproductions in `scenarios/repro/` (copied from the adversarial
//! reproductions that broke main): each test is named after its file, runs it with the seeds
//! that failed and asserts what failed then holds now — no invariant violation (safety and
//! liveness) and every message whose source batch settled on the SL executed on its
//! destination.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use braid_sim::{run, Report, Scenario};

/// `scenarios/repro/<name>.toml`.
fn repro(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios/repro")
        .join(format!("{name}.toml"));
    Scenario::load(path).unwrap()
}

/// Runs `name` with `seed`; panics on any invariant violation or a settled message that did
/// not execute.
fn run_repro(name: &str, seed: u64) -> Report {
    let s = repro(name);
    let r = run(&s, seed).unwrap();
    assert!(
        r.invariant_violations.is_empty(),
        "{name} seed {seed}: violations: {:#?}",
        r.invariant_violations
    );
    for (mode, m) in &r.modes {
        assert!(m.sent > 0, "{name} seed {seed}: no {mode} traffic flowed");
        assert!(
            m.executed >= m.settled,
            "{name} seed {seed}: {mode}: {} settled at the source, {} executed",
            m.settled,
            m.executed
        );
    }
    r
}
