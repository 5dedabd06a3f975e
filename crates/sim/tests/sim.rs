//! End-to-end simulator tests: determinism, delivery in every mode, lossy links, operator
//! stall, partition, and typed errors for malformed scenarios.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use braid_sim::{run, run_until, Fault, FeedDelivery, Report, Scenario, SimError};

fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(path).unwrap()
}

fn clean(r: &Report) {
    assert!(
        r.invariant_violations.is_empty(),
        "violations: {:#?}",
        r.invariant_violations
    );
    assert_eq!(
        r.relayer.errors, 0,
        "relayer errors: {:?}",
        r.relayer.error_samples
    );
}

/// Every message sent was executed and settled.
fn all_delivered(r: &Report) {
    for (mode, m) in &r.modes {
        assert!(m.sent > 0, "{mode}: nothing sent");
        assert_eq!(m.executed, m.sent, "{mode}: not every message executed");
        assert_eq!(m.settled, m.sent, "{mode}: not every message settled");
    }
}

fn without_wall_time(r: &Report) -> Report {
    let mut r = r.clone();
    r.wall_time_ms = 0;
    r
}

#[test]
fn same_seed_same_report_and_state_hash() {
    let s = scenario("basic");
    let a = run(&s, 11).unwrap();
    let b = run(&s, 11).unwrap();
    assert_eq!(a.final_state_hash, b.final_state_hash);
    assert_eq!(without_wall_time(&a), without_wall_time(&b));
    // the JSON too (modulo wall time)
    assert_eq!(
        without_wall_time(&a).to_json(),
        without_wall_time(&b).to_json()
    );
}

#[test]
fn different_seed_changes_the_run_under_jitter() {
    let s = scenario("basic");
    assert!(s.link.jitter_ms > 0);
    let a = run(&s, 1).unwrap();
    let b = run(&s, 2).unwrap();
    clean(&a);
    clean(&b);
    assert_ne!(a.final_state_hash, b.final_state_hash);
}

#[test]
fn basic_delivers_every_message_in_every_mode() {
    let s = scenario("basic");
    let r = run(&s, s.seed).unwrap();
    clean(&r);
    all_delivered(&r);
    assert_eq!(r.modes.len(), 3);
    // precommit beats commit beats proof
    let p50 = |m: &str| r.mode(m).latency_ms.p50;
    assert!(p50("precommit") < p50("commit"), "{:?}", r.modes);
    assert!(p50("commit") < p50("proof"), "{:?}", r.modes);
    assert_eq!(r.network.dropped, 0);
    // the run lasts to the end of the liveness drain window after traffic stops
    assert_eq!(r.virtual_duration_ms, s.run_end_ms());
    assert!(s.run_end_ms() > s.duration_ms);
    for c in r.chains.values() {
        assert!(c.batches_executed > 0 && c.batches_reverted == 0, "{c:?}");
    }
}

#[test]
fn lossy_links_still_deliver_through_retries() {
    let s = scenario("lossy_links");
    let r = run(&s, s.seed).unwrap();
    clean(&r);
    all_delivered(&r);
    assert!(r.network.dropped > 0, "{:?}", r.network);
    assert!(r.network.retransmitted > 0, "{:?}", r.network);
    assert!(
        r.relayer.execute_retries + r.relayer.import_retries > 0,
        "{:?}",
        r.relayer
    );
}

/// Without an ordered, retransmitting feed the relayer core sees gaps in the chains' blocks and
/// the SL's blocks (and loses batch headers); it asks for them again (`Backfill`,
/// `BackfillSl`), the answers may be lost too and are asked for again, and every message is
/// delivered.
#[test]
fn lossy_feeds_recover_by_backfill() {
    let mut s = scenario("lossy_links");
    s.link.feeds = FeedDelivery::Lossy;
    let r = run(&s, s.seed).unwrap();
    assert!(
        r.invariant_violations.is_empty(),
        "violations: {:#?}",
        r.invariant_violations
    );
    assert_eq!(r.liveness.stuck_count, 0, "{:?}", r.liveness);
    all_delivered(&r);
    // gaps were seen and backfilled
    assert!(
        r.relayer.error_kinds.contains_key("BlockOutOfOrder"),
        "{:?}",
        r.relayer.error_kinds
    );
    assert!(r.relayer.backfills > 0, "{:?}", r.relayer);
    assert!(r.relayer.backfill_blocks > 0, "{:?}", r.relayer);
    assert!(r.relayer.sl_backfills > 0, "{:?}", r.relayer);
    assert!(
        !r.relayer.error_kinds.contains_key("MessageRootMismatch"),
        "{:?}",
        r.relayer.error_kinds
    );
    // the reliable feed needs no backfill
    let reliable = run(&scenario("lossy_links"), s.seed).unwrap();
    assert_eq!(reliable.relayer.backfills, 0, "{:?}", reliable.relayer);
    assert_eq!(reliable.relayer.sl_backfills, 0, "{:?}", reliable.relayer);
}

#[test]
fn operator_stall_delays_settlement_without_violations() {
    let stalled = scenario("operator_stall");
    let mut baseline = stalled.clone();
    baseline.faults.clear();
    let a = run(&baseline, stalled.seed).unwrap();
    let b = run(&stalled, stalled.seed).unwrap();
    clean(&a);
    clean(&b);
    all_delivered(&b);
    let Fault::OperatorStall { duration_ms, .. } = stalled.faults[0] else {
        panic!("operator_stall.toml starts with an operator stall");
    };
    assert_eq!(b.chains[&901].operator_stalled_ms, duration_ms);
    let (before, after) = (
        a.mode("commit").settle_latency_ms.max,
        b.mode("commit").settle_latency_ms.max,
    );
    assert!(
        after >= before + duration_ms / 2,
        "settle max {before} -> {after}"
    );
    // commit-mode messages from 901 wait for the commit too
    assert!(b.mode("commit").latency_ms.max > a.mode("commit").latency_ms.max + duration_ms / 2);
    // the other chains' proof traffic is not affected
    assert!(b.mode("proof").latency_ms.max <= a.mode("proof").latency_ms.max + 2_000);
}

#[test]
fn partition_of_one_chain_lets_the_others_settle() {
    let s = scenario("partition");
    let Fault::Partition {
        at_ms,
        duration_ms,
        chain,
    } = s.faults[0]
    else {
        panic!("partition.toml starts with a partition");
    };
    assert_eq!(chain, 903);
    // stop right when the partition heals
    let r = run_until(&s, s.seed, at_ms + duration_ms).unwrap();
    clean(&r);
    let executed = |c: u64| r.chains[&c].batches_executed;
    assert!(executed(901) >= executed(903) + 3, "{:?}", r.chains);
    assert!(executed(902) >= executed(903) + 3, "{:?}", r.chains);
    assert!(r.network.dropped > 0 && r.network.held_by_partition > 0);
    // after healing, everything catches up
    let r = run(&s, s.seed).unwrap();
    clean(&r);
    all_delivered(&r);
}

/// Finding, kept as a test: a chain that imported another chain's precommit roots cannot settle
/// while that chain is partitioned (its batches wait for the source's settlement).
#[test]
fn partition_stalls_settlement_of_precommit_importers() {
    let mut s = scenario("partition");
    for t in &mut s.traffic {
        if t.from == 903 {
            t.mode = braid_sim::Mode::Precommit;
        }
    }
    let Fault::Partition {
        at_ms, duration_ms, ..
    } = s.faults[0]
    else {
        panic!("partition.toml starts with a partition");
    };
    let r = run_until(&s, s.seed, at_ms + duration_ms).unwrap();
    clean(&r);
    // 901 imports 903's LocalRoots: it settles no further than 903 (plus what was in flight)
    assert!(
        r.chains[&901].batches_executed <= r.chains[&903].batches_executed + 1,
        "{:?}",
        r.chains
    );
    assert!(
        r.chains[&902].batches_executed >= r.chains[&903].batches_executed + 3,
        "{:?}",
        r.chains
    );
}

fn parse(body: &str) -> Result<Scenario, SimError> {
    Scenario::from_toml(&format!(
        "name = \"t\"\nduration_ms = 1000\nchains = [1, 2]\n{body}"
    ))
}

#[test]
fn malformed_scenarios_give_typed_errors() {
    assert!(parse("").is_ok());
    assert!(matches!(
        parse("[[traffic]]\nfrom = 1\nto = 3\nmode = \"proof\"\nrate_per_s = 1.0"),
        Err(SimError::UnknownChain { chain: 3, .. })
    ));
    assert!(matches!(
        parse("[[traffic]]\nfrom = 1\nto = 2\nmode = \"proof\"\nrate_per_s = 0.0"),
        Err(SimError::BadRate { index: 0, .. })
    ));
    assert!(matches!(
        parse("[[traffic]]\nfrom = 1\nto = 1\nmode = \"proof\"\nrate_per_s = 1.0"),
        Err(SimError::SelfTraffic { chain: 1, .. })
    ));
    assert!(matches!(
        parse("[link]\nloss = 1.5"),
        Err(SimError::LossOutOfRange(_))
    ));
    assert!(matches!(
        parse("[[faults]]\nat_ms = 0\nkind = \"drop_messages\"\nfraction = 2.0\nduration_ms = 5"),
        Err(SimError::FractionOutOfRange { index: 0, .. })
    ));
    assert!(matches!(
        parse("[[faults]]\nat_ms = 0\nkind = \"partition\"\nchain = 9\nduration_ms = 5"),
        Err(SimError::UnknownChain { chain: 9, .. })
    ));
    assert!(matches!(
        parse("[[faults]]\nat_ms = 0\nkind = \"meteor\"\nduration_ms = 5"),
        Err(SimError::Parse(_))
    ));
    assert!(matches!(
        parse("colour = \"blue\""),
        Err(SimError::Parse(_))
    ));
    assert!(matches!(
        parse("[[traffic]]\nfrom = 1\nto = 2\nmode = \"teleport\"\nrate_per_s = 1.0"),
        Err(SimError::Parse(_))
    ));
    assert!(matches!(
        parse("batch_blocks = 0"),
        Err(SimError::ZeroParameter("batch_blocks"))
    ));
    assert!(matches!(
        Scenario::from_toml("name = \"t\"\nduration_ms = 1000\nchains = [1, 1]"),
        Err(SimError::DuplicateChain(1))
    ));
    assert!(matches!(
        Scenario::from_toml("name = \"t\"\nduration_ms = 1000\nchains = [0]"),
        Err(SimError::ReservedChainId(0))
    ));
    assert!(matches!(
        Scenario::from_toml("name = \"t\"\nduration_ms = 1000\nchains = 0"),
        Err(SimError::ChainCount(0))
    ));
    assert!(matches!(
        Scenario::load("/nonexistent/scenario.toml"),
        Err(SimError::Io { .. })
    ));
}

#[test]
fn replay_command_names_the_file_and_seed() {
    let s = scenario("basic");
    let cmd = s.replay_command(42);
    assert!(
        cmd.starts_with("braid sim ") && cmd.ends_with("basic.toml --seed 42"),
        "{cmd}"
    );
    assert_eq!(run(&s, 42).unwrap().replay, cmd);
}

#[test]
fn every_example_scenario_parses() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Scenario::load(&path).unwrap();
            n += 1;
        }
    }
    assert!(n >= 4);
}

#[test]
fn a_modelled_proving_delay_slows_proof_mode_and_settlement_only() {
    let base = braid_sim::Scenario::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/basic.toml"
    ))
    .unwrap();
    let mut slow = base.clone();
    slow.proof_time_ms = 5_000;
    let fast = braid_sim::run(&base, 1).unwrap();
    let slowed = braid_sim::run(&slow, 1).unwrap();
    assert!(
        slowed.invariant_violations.is_empty(),
        "{:?}",
        slowed.invariant_violations
    );
    let p50 = |r: &braid_sim::Report, m: &str| r.modes[m].latency_ms.p50;
    let settle = |r: &braid_sim::Report, m: &str| r.modes[m].settle_latency_ms.p50;
    assert!(
        p50(&slowed, "proof") >= p50(&fast, "proof") + 4_000,
        "{} vs {}",
        p50(&slowed, "proof"),
        p50(&fast, "proof")
    );
    assert!(settle(&slowed, "commit") >= settle(&fast, "commit") + 4_000);
    // early modes do not wait for proofs
    assert_eq!(p50(&slowed, "precommit"), p50(&fast, "precommit"));
    assert!(slowed.modes["proof"].sent > 0);
    assert_eq!(slowed.modes["proof"].executed, slowed.modes["proof"].sent);
}

/// The council registers every chain in the SL's first block: with more chains than the SL's
/// default per-sender admission limit (64), the simulator raises the limit so registration is
/// not refused (`SenderQueueFull`).
#[test]
fn more_chains_than_the_per_sender_admission_limit_all_register() {
    let mut s = scenario("bench_100_chains");
    s.duration_ms = 3_000;
    let r = run(&s, 1).unwrap();
    assert_eq!(r.chains.len(), 100);
    assert!(
        !r.sl_rejections
            .keys()
            .any(|k| k.contains("SenderQueueFull")),
        "{:?}",
        r.sl_rejections
    );
}
