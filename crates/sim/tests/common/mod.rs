//! Shared by the simulator's integration tests: loading a scenario from `scenarios/` and
//! running it to a report that must have no invariant violation.
#![allow(clippy::unwrap_used, clippy::panic, dead_code)]

use std::path::PathBuf;

use braid_sim::{run, Report, Scenario};

/// `scenarios/<name>.toml`.
pub fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(path).unwrap()
}

/// Runs `name` with its own seed; panics on any invariant violation.
pub fn run_clean(name: &str) -> (Scenario, Report) {
    let s = scenario(name);
    let r = run(&s, s.seed).unwrap();
    assert!(
        r.invariant_violations.is_empty(),
        "violations: {:#?}",
        r.invariant_violations
    );
    (s, r)
}
