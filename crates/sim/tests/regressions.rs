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

/// No loss, one operator revert of 901 from its first batch (cascading to 902 and 903) under
/// heavy precommit load. Each reverted destination re-pooled 64 of the relayer's executions
/// (its per-sender limit), nearly all against imports the revert voided: they failed one per
/// block (each left a nonce gap its later transactions waited behind), and meanwhile every new
/// execution was refused (`SenderFull`) and retried at once, so the relayer core gave up on 468
/// messages after 16 drops each (`AttemptsExhausted`; 171 of 524 settled precommit messages
/// executed, 8 221 executions dropped). Now the core retries without a limit, with backoff, and
/// the shell replaces the void re-pooled executions by no-ops at once.
#[test]
fn v_noloss_onerevert() {
    let r = run_repro("v_noloss_onerevert", 11);
    // the revert happened, and cascaded
    assert_eq!(r.reverts.by_operator, 1, "{:?}", r.revert_log);
    assert!(r.reverts.cascade >= 1, "{:?}", r.revert_log);
    assert!(r
        .revert_log
        .iter()
        .any(|x| x.chain == 901 && x.cause == "operator"));
    // the void re-pooled executions were replaced instead of failing one per block
    assert!(
        r.relayer.void_executions_replaced > 100,
        "{}",
        r.relayer.void_executions_replaced
    );
    assert!(
        r.relayer.executions_dropped < 100,
        "{}",
        r.relayer.executions_dropped
    );
    // every message whose source settled executed, in every mode; none given up
    for (mode, m) in &r.modes {
        assert_eq!(
            m.settled, m.sent,
            "{mode}: sent {} settled {}",
            m.sent, m.settled
        );
        assert_eq!(
            m.executed, m.settled,
            "{mode}: settled {} executed {}",
            m.settled, m.executed
        );
    }
    let precommit = &r.modes["precommit"];
    assert!(precommit.settled > 400, "{}", precommit.settled);
    assert_eq!(r.relayer.undeliverable_sender_fault, 0);
    assert_eq!(r.relayer.undeliverable_system, 0);
    // the only core errors: void blocks in flight when the revert arrived (harmless)
    assert!(
        r.relayer.error_kinds.keys().all(|k| k == "BlockOutOfOrder"),
        "{:?}",
        r.relayer.error_kinds
    );
}

/// The same with other seeds: there the cascade leaves 901, 902 or 903 unable to execute its
/// batches after the revert (few messages settle), and everything that settled still executes.
#[test]
fn v_noloss_onerevert_other_seeds() {
    for seed in [1, 2, 3] {
        let r = run_repro("v_noloss_onerevert", seed);
        assert_eq!(r.relayer.undeliverable_system, 0, "seed {seed}");
        assert!(r.relayer.void_executions_replaced > 0, "seed {seed}");
    }
}
