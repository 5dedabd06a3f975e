//! Fast-finality settlement (seed 002) under the simulator: honest validators finalize within a
//! few block times; Byzantine stake below a third never certifies an invalid block and is
//! slashed with evidence; a third or more withholding halts finality but never safety. Each
//! test runs its scenario in `scenarios/` with zero invariant violations (which include "no
//! invalid block certified" and "no two QCs at one height").
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use braid_sim::{run, FinalityReport, Report, Scenario};

fn run_clean(name: &str) -> (Scenario, Report, FinalityReport) {
    let (s, r) = common::run_clean(name);
    let section = r.finality.clone().expect("a finality report");
    (s, r, section)
}

#[test]
fn honest_validators_make_blocks_l2_final_within_a_block_time_and_qc_messages_flow() {
    let (s, r, f) = run_clean("finality_honest");
    assert!(f.blocks_seen > 0);
    // every block is certified and L2-final but at most the last of each chain (still
    // collecting votes when the run ends)
    assert_eq!(f.blocks_certified, f.blocks_final, "{f:#?}");
    assert!(
        f.blocks_seen - f.blocks_final <= r.chains.len() as u64,
        "{f:#?}"
    );
    assert!(
        f.time_to_l2_final_ms.max < s.block_time_ms,
        "L2-final after {} ms",
        f.time_to_l2_final_ms.max
    );
    assert!(f.time_to_qc_ms.p50 <= f.time_to_l2_final_ms.p50);
    assert!(f.postconfirmations > 0, "{f:#?}");
    assert!(f.slashes.is_empty());
    let qc = r.mode("qc");
    assert!(qc.sent > 0);
    assert_eq!(qc.executed, qc.sent, "every qc message executed");
    assert_eq!(qc.settled, qc.sent, "and settled on the SL");
    // a block time for the QC plus the destination's next block
    assert!(
        qc.latency_ms.p99 <= 2 * s.block_time_ms,
        "{:?}",
        qc.latency_ms
    );
}

#[test]
fn a_byzantine_minority_never_certifies_an_invalid_block_and_is_slashed() {
    let (_, _, f) = run_clean("finality_byzantine_minority");
    assert_eq!(
        f.invalid_blocks_proposed, 1,
        "the fault showed validators one invalid block"
    );
    assert!(f.equivocations_detected > 0);
    let slashed: Vec<(u32, &str)> = f
        .slashes
        .iter()
        .map(|s| (s.validator, s.reason.as_str()))
        .collect();
    assert!(slashed.contains(&(5, "equivocation")), "{slashed:?}");
    assert!(slashed.contains(&(6, "invalid_accept")), "{slashed:?}");
    assert!(f.blocks_final > 0, "honest blocks stay L2-final: {f:#?}");
    assert!(
        f.epochs >= 2,
        "the slashed validators left at a later epoch"
    );
}

#[test]
fn a_third_withholding_halts_finality_but_not_safety_or_other_modes() {
    let (_, r, f) = run_clean("finality_withhold");
    assert_eq!(f.blocks_certified, 0, "{f:#?}");
    assert_eq!(f.postconfirmations, 0);
    let qc = r.mode("qc");
    assert!(qc.sent > 0);
    // no QC root ever exists: a qc message is delivered only against the SL MessageRoot, once
    // its source batch executed (a `proof` root satisfies every mode), and every settled one is
    assert!(qc.settled > 0, "{qc:?}");
    assert_eq!(
        qc.executed, qc.settled,
        "every settled qc message via the SL root"
    );
    assert!(
        qc.latency_ms.p50 >= qc.settle_latency_ms.p50,
        "not before its source settled: {qc:?}"
    );
    let pre = r.mode("precommit");
    assert!(pre.sent > 0);
    assert_eq!(pre.executed, pre.sent, "other modes are unaffected");
    // the fault happened: the withholding third never voted
    assert!(f.votes_withheld > 0, "{f:#?}");
}

#[test]
fn leader_free_aggregation_finalizes_with_a_withholding_minority() {
    let (_, r, f) = run_clean("finality_leader_free");
    assert_eq!(f.aggregation, "leader_free");
    assert_eq!(f.byzantine, vec![(2, "withhold".to_string())]);
    // the fault happened: the withholding validator kept back its vote on every block it got
    assert!(
        f.votes_withheld > 0 && f.votes_withheld <= f.blocks_seen,
        "{f:#?}"
    );
    // every block is certified and L2-final but at most the last of each chain (still
    // collecting votes when the run ends)
    assert_eq!(f.blocks_certified, f.blocks_final, "{f:#?}");
    assert!(
        f.blocks_seen - f.blocks_final <= r.chains.len() as u64,
        "{f:#?}"
    );
    let qc = r.mode("qc");
    assert!(qc.sent > 0, "{qc:?}");
    assert_eq!(qc.executed, qc.sent);
}

#[test]
fn finality_runs_are_deterministic() {
    let s = common::scenario("finality_byzantine_minority");
    let a = run(&s, s.seed).unwrap();
    let b = run(&s, s.seed).unwrap();
    assert_eq!(a.final_state_hash, b.final_state_hash);
    assert_eq!(a.finality, b.finality);
}

#[test]
fn byzantine_stake_above_a_third_cannot_certify_an_invalid_block_and_is_slashed() {
    let (_, r, f) = run_clean("finality_byzantine_third");
    assert_eq!(
        f.invalid_blocks_proposed, 1,
        "the fault made one invalid block"
    );
    let mut slashed: Vec<u32> = f.slashes.iter().map(|s| s.validator).collect();
    slashed.sort_unstable();
    assert_eq!(slashed, vec![3, 4], "{:?}", f.slashes);
    assert!(f.slashes.iter().all(|s| s.reason == "invalid_accept"));
    assert!(f.blocks_final > 0, "valid blocks still finalize: {f:#?}");
    let qc = r.mode("qc");
    assert!(qc.sent > 0, "{qc:?}");
    assert_eq!(qc.executed, qc.sent);
}
