//! Regression tests for the reproductions in `scenarios/repro/` (copied from the adversarial
//! reproductions that broke main): each test is named after its file, runs it with the seeds
//! that failed and asserts what failed then holds now — no invariant violation (safety and
//! liveness) and every message whose source batch settled on the SL executed on its
//! destination.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use braid_settlement::ClockRuleError;
use braid_sim::{run, Report, Scenario, SimError};

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

/// Issue 15: a fixed 4.5 s chess clock, k = 4, 1 s SL blocks and 40 msg/s: 174-step batches need
/// 4 rounds, the honest challenger's 4 choices and witness took 5 s and it lost on time
/// (`decided_by: clock`, `wrong_root_final`). Clocks are now sized per game from the step count
/// (reserve + (ceil(log_k n) + 1) one-block moves): the scenario as written is valid and the
/// honest challenger wins every game at the single step.
#[test]
fn opt_clock_steps() {
    let s = repro("opt_clock_steps");
    let spec = s.optimistic.clone().unwrap();
    let r = run_repro("opt_clock_steps", 7);
    assert!(
        !r.invariant_violations
            .iter()
            .any(|v| format!("{v:?}").contains("wrong_root_final")),
        "{:#?}",
        r.invariant_violations
    );
    let o = r.optimistic.clone().expect("an optimistic report");
    assert!(!o.games.is_empty(), "{o:#?}");
    assert!(
        o.games.iter().any(|g| g.rounds_needed >= 4),
        "the large batches that broke the fixed clock are disputed: {:#?}",
        o.games
    );
    for g in &o.games {
        assert_eq!(g.winner, "challenger", "{g:?}");
        assert_eq!(g.winner_agent, "challenger-0", "{g:?}");
        assert!(g.loser_agent.starts_with("wrong-root"), "{g:?}");
        assert_eq!(g.decided_by, "single_step", "{g:?}");
        assert_eq!(
            g.clock_ms,
            spec.clock_ms + (u64::from(g.rounds_needed) + 1) * s.sl_block_time_ms,
            "{g:?}"
        );
        assert!(g.rounds <= g.rounds_needed, "{g:?}");
    }
    assert_eq!(o.proposals_defeated as usize, o.games.len());
    assert!(o.proposals_final > 0);
    let m = r.mode("optimistic");
    assert!(m.executed > 0 && m.executed >= m.settled, "{m:?}");
}

/// The clock rule at load time: an allowance per move below one SL block is refused with a
/// typed error (the honest side of a long game would lose on time).
#[test]
fn opt_clock_steps_with_moves_faster_than_an_sl_block_is_refused() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios/repro/opt_clock_steps.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.replace("clock_ms = 4_500", "clock_ms = 4_500\nmove_ms = 999");
    assert_eq!(
        Scenario::from_toml(&text).err(),
        Some(SimError::DisputeClock(
            ClockRuleError::MoveShorterThanBlock {
                move_ms: 999,
                sl_block_time_ms: 1_000
            }
        ))
    );
    let ok = text.replace("move_ms = 999", "move_ms = 1_000");
    assert!(Scenario::from_toml(&ok).is_ok());
}
