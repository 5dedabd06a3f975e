//! The fault kinds beyond the network ones: crash/restart, forced settlement after an operator
//! stall, an operator revert cascading to importers, a batch with a wrong state root, an
//! equivocating sequencer, replayed and forged messages. Each runs its scenario in `scenarios/`
//! and asserts the expected outcome and zero invariant violations.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use braid_sim::{run, Fault, Report, Scenario, SimError};

fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(path).unwrap()
}

fn no_violations(r: &Report) {
    assert!(
        r.invariant_violations.is_empty(),
        "violations: {:#?}",
        r.invariant_violations
    );
    assert!(r.virtual_duration_ms > 0);
}

/// Every message seen in a source block was executed and settled.
fn all_delivered(r: &Report) {
    for (mode, m) in &r.modes {
        assert!(m.sent > 0, "{mode}: nothing sent");
        assert_eq!(m.executed, m.sent, "{mode}: not every message executed");
        assert_eq!(m.settled, m.sent, "{mode}: not every message settled");
    }
}

fn relayer_clean(r: &Report) {
    assert_eq!(
        r.relayer.errors, 0,
        "relayer errors: {:?}",
        r.relayer.error_samples
    );
}

#[test]
fn a_crashed_node_restarts_from_its_blocks_and_everything_is_delivered() {
    let s = scenario("crash");
    let Fault::Crash {
        chain, duration_ms, ..
    } = s.faults[0]
    else {
        panic!("crash.toml starts with a crash");
    };
    let mut baseline = s.clone();
    baseline.faults.clear();
    let a = run(&baseline, s.seed).unwrap();
    let r = run(&s, s.seed).unwrap();
    no_violations(&a);
    no_violations(&r);
    relayer_clean(&r);
    all_delivered(&r);
    let c = &r.chains[&chain];
    assert_eq!(c.crashes, 1);
    assert_eq!(c.downtime_ms, duration_ms);
    // requests sent to the dead node were lost; the relayer shell retried them
    assert!(c.requests_lost_while_down > 0, "{c:?}");
    assert!(
        r.relayer.execute_retries + r.relayer.import_retries > 0,
        "{:?}",
        r.relayer
    );
    // no blocks while down, and the chain's settlement is delayed
    assert!(c.blocks < a.chains[&chain].blocks, "{c:?}");
    let max = |r: &Report| r.modes.values().map(|m| m.settle_latency_ms.max).max();
    assert!(
        max(&r).unwrap() >= max(&a).unwrap() + duration_ms / 2,
        "settle max {:?} -> {:?}",
        max(&a),
        max(&r)
    );
    assert_eq!(r.faults[0].kind, "crash");
    assert!(r.faults[0].detail.is_some());
}

#[test]
fn a_stalled_operator_is_replaced_by_the_council_forced_settlement() {
    let s = scenario("forced_settlement");
    let Fault::OperatorStall {
        at_ms,
        chain,
        duration_ms,
    } = s.faults[0]
    else {
        panic!("forced_settlement.toml starts with an operator stall");
    };
    assert!(duration_ms > 2 * s.timeout_operator_ms);
    // stop when the operator comes back: the council settled the chain meanwhile
    let mut during = s.clone();
    during.duration_ms = at_ms + duration_ms;
    let r = run(&during, s.seed).unwrap();
    no_violations(&r);
    relayer_clean(&r);
    let c = &r.chains[&chain];
    assert!(r.forced_settlements > 0, "{:?}", r.council);
    assert!(c.batches_forced >= 3, "{c:?}");
    assert_eq!(c.batches_forced, r.forced_settlements);
    assert!(
        r.council.commits > 0 && r.council.proofs > 0 && r.council.execution_requests > 0,
        "{:?}",
        r.council
    );
    // the importers of the stalled chain's commit roots settle too
    for (id, other) in &r.chains {
        assert!(other.batches_executed >= 5, "chain {id}: {other:?}");
    }
    // the whole run: the operator takes over again and everything is delivered
    let r = run(&s, s.seed).unwrap();
    no_violations(&r);
    relayer_clean(&r);
    all_delivered(&r);
    // with the SL's default timeouts (60 s) the same stall forces nothing
    let mut patient = s.clone();
    patient.timeout_operator_ms = 60_000;
    patient.timeout_council_ms = 300_000;
    let p = run(&patient, s.seed).unwrap();
    no_violations(&p);
    assert_eq!(p.forced_settlements, 0);
    assert_eq!(p.council.commits, 0);
}

#[test]
fn a_reverted_source_batch_reverts_its_importers_in_cascade_and_both_resettle() {
    let s = scenario("revert_cascade");
    let Fault::RevertBatch { chain, .. } = s.faults[0] else {
        panic!("revert_cascade.toml starts with a revert_batch");
    };
    let r = run(&s, s.seed).unwrap();
    no_violations(&r);
    assert_eq!(r.reverts.by_operator, 1, "{:?}", r.revert_log);
    // 902 imported 901's LocalRoots, 903 imported 902's batch roots: two cascades, in order
    assert_eq!(r.reverts.cascade, 2, "{:?}", r.revert_log);
    let causes: Vec<(u64, &str)> = r
        .revert_log
        .iter()
        .map(|e| (e.chain, e.cause.as_str()))
        .collect();
    assert_eq!(
        causes,
        [
            (901, "operator"),
            (902, "cascade from 901/1"),
            (903, "cascade from 902/1")
        ]
    );
    let importer = s
        .traffic
        .iter()
        .find(|t| t.from == chain && t.mode == braid_sim::Mode::Precommit)
        .unwrap()
        .to;
    assert!(
        r.revert_log
            .iter()
            .any(|e| e.chain == importer && e.cause.starts_with(&format!("cascade from {chain}/"))),
        "{:?}",
        r.revert_log
    );
    assert!(r
        .revert_log
        .iter()
        .any(|e| e.chain == chain && e.cause == "operator"));
    // both chains re-sequenced (re-sequenced blocks count again) and settled afterwards
    for id in [chain, importer] {
        let c = &r.chains[&id];
        assert!(c.batches_reverted > 0, "{id}: {c:?}");
        assert!(c.blocks > c.head, "{id} did not re-sequence: {c:?}");
        assert!(c.batches_executed > 0, "{id}: {c:?}");
    }
    all_delivered(&r);
    // the only relayer complaints: blocks of the void branch still in flight when the revert
    // reached it (refused as out of order, harmless)
    assert!(
        r.relayer.error_kinds.keys().all(|k| k == "BlockOutOfOrder"),
        "{:?}",
        r.relayer.error_samples
    );
}

#[test]
fn a_batch_with_a_wrong_state_root_is_refused_reverted_and_resequenced() {
    let s = scenario("wrong_state_root");
    let Fault::WrongStateRoot { chain, .. } = s.faults[0] else {
        panic!("wrong_state_root.toml starts with a wrong_state_root");
    };
    let r = run(&s, s.seed).unwrap();
    no_violations(&r);
    relayer_clean(&r);
    // the operator's proveBatch refused (re-execution found the invalid block): that public
    // refusal is the council's evidence, it needs no refused proof of its own
    assert_eq!(
        r.sl_rejections.get("proveBatch: ProofRejected"),
        Some(&1),
        "{:?}",
        r.sl_rejections
    );
    assert_eq!(r.council.proofs_refused, 0, "{:?}", r.council);
    // the council reverted it, from the tampered batch
    assert_eq!(r.reverts.by_council, 1, "{:?}", r.revert_log);
    let detail = r.faults[0].detail.clone().unwrap();
    let tampered: u64 = detail
        .strip_prefix("batch ")
        .and_then(|d| d.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let revert = &r.revert_log[0];
    assert_eq!((revert.chain, revert.from), (chain, tampered), "{revert:?}");
    assert!(revert.at_ms >= s.faults[0].at_ms() + s.timeout_operator_ms);
    // the tampered batch never executed; the chain re-sequenced and settled past it
    let c = &r.chains[&chain];
    assert!(c.blocks > c.head, "{c:?}");
    assert!(c.batches_executed >= tampered + 3, "{c:?}");
    all_delivered(&r);
}

#[test]
fn an_equivocating_sequencer_is_detected_by_the_relayer() {
    let s = scenario("equivocation");
    let Fault::Equivocation { chain, .. } = s.faults[0] else {
        panic!("equivocation.toml starts with an equivocation");
    };
    let r = run(&s, s.seed).unwrap();
    no_violations(&r);
    // detected: the block after h does not extend the h the relayer saw; the relayer rolls its
    // mirror of the chain back (h and its messages are forgotten), asks the sequencer for the
    // canonical blocks from h's height (`Backfill`), and follows h' and its batches
    let kinds = &r.relayer.error_kinds;
    assert_eq!(kinds.get("ParentMismatch"), Some(&1), "{kinds:?}");
    assert!(r.relayer.backfills >= 1, "{:?}", r.relayer);
    assert!(r.relayer.backfill_blocks >= 1, "{:?}", r.relayer);
    // nothing stops: no block of the chain refused for good, no MessageRoot mirror stop
    assert!(!kinds.contains_key("MissingBatchHeader"), "{kinds:?}");
    assert!(!kinds.contains_key("MessageRootMismatch"), "{kinds:?}");
    // every message of the chain's canonical blocks (and of the others) is delivered, in
    // every mode
    all_delivered(&r);
    assert_eq!(r.liveness.stuck_count, 0, "{:?}", r.liveness);
    // the SL settles the branch the equivocator committed (h'); every execution on the other
    // chains is in its source's canonical history (the invariants held)
    let c = &r.chains[&chain];
    assert!(c.batches_executed + 1 >= c.batches_committed, "{c:?}");
    assert!(r.faults[0].detail.as_deref().unwrap().contains("committed"));
}

#[test]
fn replayed_and_forged_messages_are_dropped_by_the_destination() {
    let s = scenario("replay_forgery");
    let r = run(&s, s.seed).unwrap();
    no_violations(&r);
    relayer_clean(&r);
    all_delivered(&r);
    let a = &r.adversary;
    assert_eq!(a.skipped, 0, "{a:?}");
    assert_eq!(a.replays_submitted, 2, "{a:?}");
    assert_eq!(a.replays_rejected, 2, "{a:?}");
    assert_eq!(a.forgeries_submitted, 2, "{a:?}");
    assert_eq!(a.forgeries_rejected, 2, "{a:?}");
    assert_eq!(a.accepted, 0);
    assert_eq!(a.rejections.get("replay: AlreadyExecuted"), Some(&2));
    assert_eq!(a.rejections.get("forgery: BadProof"), Some(&2));
    for c in r.chains.values() {
        assert_eq!(c.txs_dropped.get("AlreadyExecuted"), Some(&1), "{c:?}");
        assert_eq!(c.txs_dropped.get("BadProof"), Some(&1), "{c:?}");
    }
    // before anything executed there is nothing to replay: recorded, not an error
    let mut early = s.clone();
    for f in &mut early.faults {
        if let Fault::Replay { at_ms, .. } | Fault::Forgery { at_ms, .. } = f {
            *at_ms = 1;
        }
    }
    let e = run(&early, s.seed).unwrap();
    no_violations(&e);
    assert_eq!(e.adversary.skipped, 4, "{:?}", e.adversary);
}

#[test]
fn fault_runs_are_deterministic() {
    for name in ["crash", "revert_cascade", "equivocation"] {
        let s = scenario(name);
        let a = run(&s, 21).unwrap();
        let b = run(&s, 21).unwrap();
        assert_eq!(a.final_state_hash, b.final_state_hash, "{name}");
        assert_eq!(a.revert_log, b.revert_log, "{name}");
        assert_eq!(a.relayer, b.relayer, "{name}");
    }
}

#[test]
fn new_fault_kinds_parse_and_validate() {
    let parse = |body: &str| {
        Scenario::from_toml(&format!(
            "name = \"t\"\nduration_ms = 1000\nchains = [1, 2]\n{body}"
        ))
    };
    for kind in ["wrong_state_root", "equivocation", "replay", "forgery"] {
        let s = parse(&format!(
            "[[faults]]\nat_ms = 5\nkind = \"{kind}\"\nchain = 1"
        ))
        .unwrap();
        assert_eq!(s.faults[0].kind(), kind);
        assert_eq!(s.faults[0].duration_ms(), 0);
    }
    for kind in ["crash", "revert_batch"] {
        assert!(matches!(
            parse(&format!(
                "[[faults]]\nat_ms = 5\nkind = \"{kind}\"\nchain = 1\nduration_ms = 0"
            )),
            Err(SimError::ZeroParameter(_))
        ));
        assert!(matches!(
            parse(&format!(
                "[[faults]]\nat_ms = 5\nkind = \"{kind}\"\nchain = 7\nduration_ms = 5"
            )),
            Err(SimError::UnknownChain { chain: 7, .. })
        ));
    }
    assert!(matches!(
        parse("[[faults]]\nat_ms = 5\nkind = \"replay\"\nchain = 1\nduration_ms = 5"),
        Err(SimError::Parse(_))
    ));
    assert!(matches!(
        parse("timeout_operator_ms = 10_000\ntimeout_council_ms = 5_000"),
        Err(SimError::Parse(_))
    ));
    assert!(matches!(
        parse("timeout_operator_ms = 0"),
        Err(SimError::ZeroParameter("timeout_operator_ms"))
    ));
}
