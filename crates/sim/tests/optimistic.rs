//! Optimistic settlement (seed 004) under the simulator: every wrong end state is defeated by
//! the honest challenger in ceil(log_k n) rounds and its proposer's bond slashed; every griefing
//! challenge is lost; a stalled game is decided by the clock; a censored deposit gets through;
//! optimistic messages execute only once their source batch is final. Each test runs its
//! scenario in `scenarios/` with zero invariant violations (which include "no wrong end state
//! final" and "no optimistic message executed before finality").
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use braid_sim::{render_html, OptimisticReport, Report, Scenario};

fn run_clean(name: &str) -> (Scenario, Report, OptimisticReport) {
    let (s, r) = common::run_clean(name);
    let section = r.optimistic.clone().expect("a optimistic report");
    (s, r, section)
}

#[test]
fn honest_proposals_become_final_after_the_window_and_optimistic_messages_flow() {
    let (s, r, o) = run_clean("optimistic_honest");
    assert!(o.proposals > 0);
    assert_eq!(o.challenges, 0, "nobody disputes a correct root: {o:#?}");
    assert!(o.games.is_empty());
    assert_eq!(o.proposals_defeated, 0);
    assert!(o.proposals_final > 0);
    let window = s.optimistic.as_ref().unwrap().challenge_window_ms;
    assert!(o.time_to_final_ms.p50 >= window, "{:?}", o.time_to_final_ms);
    let m = r.mode("optimistic");
    assert!(m.sent > 0);
    assert_eq!(
        m.executed, m.sent,
        "every optimistic message executed: {m:?}"
    );
    // final after the window: never faster than it
    assert!(m.latency_ms.p50 >= window, "{:?}", m.latency_ms);
    assert!(r.mode("precommit").executed > 0);
    assert!(r.executions.len() > 10, "batches settle through proposals");
}

#[test]
fn every_wrong_root_is_defeated_in_log_k_rounds_and_its_bond_slashed() {
    let (_, r, o) = run_clean("optimistic_wrong_root");
    assert!(!o.games.is_empty(), "{o:#?}");
    for g in &o.games {
        assert_eq!(g.winner, "challenger", "{g:?}");
        assert!(g.loser_agent.starts_with("wrong-root"), "{g:?}");
        assert_eq!(g.decided_by, "single_step", "{g:?}");
        // ceil(log_k n) along the largest parts; a first wrong step in a smaller part can need
        // one round less
        assert!(g.rounds <= g.rounds_needed, "{g:?}");
        assert!(g.rounds + 1 >= g.rounds_needed, "{g:?}");
        assert!(g.step_gas.is_some_and(|gas| gas > 21_000), "{g:?}");
        assert_ne!(g.slashed_wei, "0");
    }
    assert_eq!(o.proposals_defeated as usize, o.games.len());
    assert!(o.bonds_burned_wei != "0");
    assert!(r.mode("optimistic").executed > 0);
    let html = render_html(&r);
    assert!(html.contains("<h2>Optimistic settlement</h2>"));
    assert_eq!(html.matches("single_step").count(), o.games.len());
}

#[test]
fn every_griefing_challenge_is_lost() {
    let (_, r, o) = run_clean("optimistic_griefing");
    assert!(!o.games.is_empty(), "{o:#?}");
    for g in &o.games {
        assert_eq!(g.winner, "proposer", "{g:?}");
        assert!(g.loser_agent.starts_with("griefing"), "{g:?}");
    }
    assert_eq!(o.proposals_defeated, 0);
    let m = r.mode("optimistic");
    assert!(m.sent > 0, "{m:?}");
    assert_eq!(m.executed, m.sent, "{m:?}");
}

#[test]
fn a_party_that_stops_moving_loses_on_its_clock() {
    let (s, _, o) = run_clean("optimistic_clock");
    let clock = s.optimistic.as_ref().unwrap().clock_ms;
    let by_clock: Vec<_> = o.games.iter().filter(|g| g.decided_by == "clock").collect();
    assert!(!by_clock.is_empty(), "{o:#?}");
    for g in &by_clock {
        assert!(g.loser_agent.contains("stalling"), "{g:?}");
        assert!(g.duration_ms >= clock, "{g:?}");
    }
    assert!(o.games.iter().any(|g| g.winner == "challenger"));
    assert!(o.games.iter().any(|g| g.winner == "proposer"));
}

#[test]
fn a_censored_deposit_is_forced_through() {
    let (_, r, _) = run_clean("optimistic_censorship");
    let d = r.deposits.clone().expect("a deposit report");
    assert!(d.queued > 0);
    // the fault happened: chain 901's node held deposits back from its sequencer...
    assert_eq!(r.faults.len(), 1, "{:?}", r.faults);
    assert_eq!(r.faults[0].kind, "censor_deposits");
    assert!(d.censored > 0 && d.censored <= d.queued, "{d:#?}");
    // ...so batches skipping an overdue deposit failed and the council reverted them
    assert!(d.batches_failed_censorship > 0, "{d:#?}");
    assert!(r.reverts.by_council > 0, "{:?}", r.reverts);
    assert!(r.reverts.batches > 0);
    // and every deposit, censored or not, settled in the end
    assert_eq!(d.settled, d.queued, "{d:#?}");
    assert_eq!(d.time_to_settlement_ms.count, d.queued);
}
