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

/// The tree's accepted roots, the revert log as `(chain, from, to, cause)`, and the last
/// checkpoint with an accepted root.
fn tree_and_reverts(r: &Report) -> (u64, Vec<(u64, u64, u64, String)>) {
    let roots = r.aggregation.as_ref().map_or(0, |a| a.roots_accepted);
    let reverts = r
        .revert_log
        .iter()
        .map(|v| (v.chain, v.from, v.to, v.cause.clone()))
        .collect();
    (roots, reverts)
}

/// Tree chain 901 imports pre-commit LocalRoots of chain 905 (outside the tree); 905's
/// operator reverts. A root accepted over 901's batches would have made them final on roots
/// that 905 could still revert (the cascade then reverted tree-settled blocks). Now the root of
/// a checkpoint waits until the imports of the batches it settles are final, so 905's revert
/// cascades into 901's batches before any root settled them, and no tree block under an
/// accepted root is reverted (invariant `tree_block_reverted`).
#[test]
fn agg_cascade_into_tree() {
    let r = run_repro("agg_cascade_into_tree", 3);
    let (roots, reverts) = tree_and_reverts(&r);
    assert!(roots >= 8, "roots accepted: {roots}");
    // 905's operator reverted all its batches; the cascade reached 901 from its first batch
    // (no root had settled it: the roots waited for 905) and the tree chains importing 901's
    // tree hashes
    assert_eq!(
        reverts[0],
        (905, 1, 7, "operator".to_string()),
        "{reverts:?}"
    );
    assert_eq!(
        reverts[1],
        (901, 1, 7, "cascade from 905/1".to_string()),
        "{reverts:?}"
    );
    // every revert is 905's or a cascade of it: neither operators nor the council had to
    // resolve batches stuck on a tree hash a revert voided
    assert!(
        reverts
            .iter()
            .skip(1)
            .all(|(_, _, _, cause)| cause.starts_with("cascade")),
        "{reverts:?}"
    );
    assert_eq!(r.reverts.by_council, 0);
}

/// The operator of tree chain 901 reverts its unexecuted batches: the SL refuses to revert the
/// batches accepted roots settled (`FinalBatch`), so the operator reverts from its first batch
/// no root settled, and the roots go on.
#[test]
fn agg_operator_reverts_tree() {
    let r = run_repro("agg_operator_reverts_tree", 5);
    let (roots, reverts) = tree_and_reverts(&r);
    assert!(roots >= 10, "roots accepted: {roots}");
    // checkpoints 1 and 2 (blocks 1..=8: batches 1..=4) were settled by roots when it reverted
    let fault = r.faults.iter().find(|f| f.kind == "revert_batch").unwrap();
    assert_eq!(
        fault.detail.as_deref(),
        Some("operator reverts from batch 5"),
        "{fault:?}"
    );
    assert!(
        reverts.contains(&(901, 5, 7, "operator".to_string())),
        "{reverts:?}"
    );
    assert!(
        reverts
            .iter()
            .all(|(c, from, _, _)| *c != 901 || *from >= 5),
        "{reverts:?}"
    );
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
    // the re-pooled executions were withdrawn at once instead of failing one per block; the
    // other drops (timeouts, refusals, void imports refused after the revert) are two orders
    // of magnitude below the 8 221 before (116 at this seed)
    assert!(
        r.relayer.void_executions_replaced > 100,
        "{}",
        r.relayer.void_executions_replaced
    );
    assert!(
        r.relayer.executions_dropped - r.relayer.void_executions_replaced < 200,
        "{} dropped, {} of them withdrawn",
        r.relayer.executions_dropped,
        r.relayer.void_executions_replaced
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

/// Imports of `chain` refused because a revert of their source that the relayer had not seen
/// yet voided them.
fn voided_imports_refused(r: &Report) -> u64 {
    r.chains
        .values()
        .map(|c| {
            c.imports_rejected
                .get("VoidedBySourceRevert")
                .copied()
                .unwrap_or(0)
        })
        .sum()
}

/// Four chains, every pair precommit, one operator revert (cascading through the mesh). An
/// import the relayer built from a source block just before the SL reverted it arrived at its
/// destination after the revert; the destination had already dropped the void imports it held,
/// so it queued this one, included it after its own roll-back and executed a message that no
/// longer existed (`executed_message_exists`, 8 of 10 seeds). Imports now carry the source
/// epoch the relayer was at (reverts of the source it had seen), and a chain node refuses one
/// that a later revert voided (`ImportRefusal::VoidedBySourceRevert`). A void import waiting in
/// the import queue is dropped too (it was kept when no block held one yet).
#[test]
fn mesh4_precommit_revert() {
    let mut refused = 0;
    for seed in 1..=4 {
        let r = run_repro("mesh4_precommit_revert", seed);
        assert_eq!(r.reverts.by_operator, 1, "seed {seed}: {:?}", r.revert_log);
        assert!(r.reverts.cascade >= 1, "seed {seed}: {:?}", r.revert_log);
        let m = r.mode("precommit");
        assert_eq!(m.executed, m.settled, "seed {seed}: {m:?}");
        refused += voided_imports_refused(&r);
    }
    assert!(refused > 0, "no void import reached a destination late");
}

/// A three-chain precommit cycle under load and one revert: no invariant fired, but no chain
/// executed another batch for the last ~70 s (a destination batch held an import the revert
/// voided and waited for an extension proof that could never exist). Now caught by the
/// liveness check, and fixed with the import epochs of `mesh4_precommit_revert`.
#[test]
fn cyc3_heavy() {
    let s = repro("cyc3_heavy");
    let r = run_repro("cyc3_heavy", s.seed);
    assert!(r.liveness.stalled_chains.is_empty(), "{:?}", r.liveness);
    assert_eq!(r.liveness.stuck_count, 0, "{:?}", r.liveness);
    assert!(r.reverts.by_operator >= 1, "{:?}", r.revert_log);
    for (id, c) in &r.chains {
        assert!(
            c.batches_executed + 3 >= c.batches_committed - c.batches_reverted,
            "chain {id} settles to the end: {c:?}"
        );
    }
}

/// `v_noloss_onerevert` at the seeds where, after the relayer fix, delivery still stalled on
/// void precommit imports (`chain_settles` at seeds 1–3 and 7).
#[test]
fn v_noloss_onerevert_other_seeds() {
    for seed in [1, 2, 3, 7] {
        let r = run_repro("v_noloss_onerevert", seed);
        assert!(
            r.reverts.by_operator >= 1,
            "seed {seed}: {:?}",
            r.revert_log
        );
        let m = r.mode("precommit");
        assert_eq!(m.executed, m.settled, "seed {seed}: {m:?}");
    }
}

/// Chain 901's sequencer equivocates at one height: the relayer sees block h, the chain's
/// batches hold h'. Precommit messages of h executed on their destination though no batch of
/// the source holds them (`executed_message_exists`, 4 of 4 seeds). Now the SL reverts a batch
/// holding a block-root import its source's committed batch contradicts
/// (`RevertCause::Contradicted`), the destination's operator drops that import, and the
/// relayer resynchronises its mirror of the source (backfill); the phantom executions are
/// undone before anything settles, and every message of the canonical chain is delivered.
#[test]
fn equivocation_precommit() {
    for seed in 1..=4 {
        let r = run_repro("equivocation_precommit", seed);
        let fault = r.faults.iter().find(|f| f.kind == "equivocation").unwrap();
        assert!(fault.detail.is_some(), "seed {seed}: {fault:?}");
        assert!(r.relayer.backfills >= 1, "seed {seed}: {:?}", r.relayer);
        assert_eq!(r.liveness.stuck_count, 0, "seed {seed}: {:?}", r.liveness);
        let m = r.mode("precommit");
        assert!(m.sent > 0, "seed {seed}: {m:?}");
        assert_eq!(m.executed, m.settled, "seed {seed}: {m:?}");
    }
}

/// Generated seed 1082: a destination reverted, crashed and was flooded with executions; one of
/// the relayer's executions failed in a block whose drop the relayer did not connect to it, and
/// 144 executions waited behind its nonce until the end (241 settled messages never executed,
/// 2 799 executions refused as "too far ahead"). The relayer role now fills any nonce gap of
/// its own in a destination's pool after each of that destination's blocks.
#[test]
fn relayer_nonce_gap_1082() {
    let r = run_repro("relayer_nonce_gap_1082", 1082);
    assert!(r.faults.iter().any(|f| f.kind == "crash"));
    // since operators commit in windows (item 18 of docs/simulator.md) seed 1082 no longer
    // leaves a gap; seed 10 of the same scenario does (60 filled), and must deliver everything
    let r = run_repro("relayer_nonce_gap_1082", 10);
    assert!(r.relayer.nonce_gaps_filled > 0, "{:?}", r.relayer);
    assert!(r.faults.iter().any(|f| f.kind == "crash"));
}

/// Generated seed 348: chain 903 equivocated; the MessageRoot imports of proof-mode messages to
/// it had landed in a block the equivocation discarded, and the relayer still counted them as
/// asked for: 5 settled messages were never executed. Imports of discarded destination blocks
/// are now asked for again.
#[test]
fn proof_to_equivocator_348() {
    let r = run_repro("proof_to_equivocator_348", 348);
    assert!(r.faults.iter().any(|f| f.kind == "equivocation"));
    assert!(r.modes["proof"].executed > 0);
}

/// Generated seed 136: chain 902 rolled back while 64 of the relayer's executions waited in its
/// pool against roots the roll-back voided; each failed in a block of its own behind a no-op
/// and 124 messages were never executed. The relayer role now withdraws pooled executions whose
/// root a roll-back of their destination voided.
#[test]
fn void_pooled_executions_136() {
    let r = run_repro("void_pooled_executions_136", 136);
    assert!(r.relayer.void_executions_replaced > 0, "{:?}", r.relayer);
}

/// Generated seed 139: a revert cascade gave the ids of 16 executed messages of chains 902 and
/// 905 to new messages to other destinations; a later roll-back of chain 901, which had executed
/// the old ones, made the simulator count the new ones (executed, never reverted) as stuck. So
/// did generated seeds 148, 181, 388, 849 and 928. The simulator now credits and undoes an
/// execution only for the message with that id to that destination.
#[test]
fn reused_message_id_139() {
    let r = run_repro("reused_message_id_139", 139);
    assert!(r.revert_log.iter().any(|x| x.cause.starts_with("cascade")));
    // the roll-back of 901 that undid the old executions (since operators commit in windows
    // it comes with the cascade's SL block at 36 s, no longer after it)
    assert!(r
        .revert_log
        .iter()
        .any(|x| x.chain == 901 && x.at_ms >= 36_000));
    assert_eq!(r.liveness.stuck_count, 0, "{:?}", r.liveness);
}

/// Generated seed 436: chain 902 reverted, and its re-sequenced block 1 with 76 re-pooled
/// transactions went to the relayer only (an equivocation; the committed twin was empty). The
/// simulator counted those messages, never sent on the canonical chain, as settled once a batch
/// covered their old block numbers: 69 reported stuck. So did generated seed 835 (re-pooled
/// transactions lost in a crash). A message a roll-back of its source discarded now counts as
/// sent again only when its transaction is included again.
#[test]
fn lost_resent_messages_436() {
    let r = run_repro("lost_resent_messages_436", 436);
    assert!(r.faults.iter().any(|f| f.kind == "equivocation"));
    assert!(r.revert_log.iter().any(|x| x.chain == 902));
    let m = r.mode("precommit");
    assert!(m.settled < m.sent, "{m:?}");
    assert_eq!(r.liveness.stuck_count, 0, "{:?}", r.liveness);
}

/// Generated seed 463: chain 902 crashed, and the relayer role forgot its executions included
/// there with its pool; a council revert of 902 then re-pooled ~185 of them against voided
/// roots, none withdrawn: each failed in a block of its own and the relayer's new executions
/// waited behind them (1 226 settled messages never executed). So did generated seeds 876 and
/// 925. The role now keeps the executions included on a destination across its restart.
#[test]
fn restart_then_rollback_463() {
    let r = run_repro("restart_then_rollback_463", 463);
    assert!(r.faults.iter().any(|f| f.kind == "crash"));
    assert!(r.revert_log.iter().any(|x| x.chain == 902));
    assert!(r.relayer.void_executions_replaced > 100, "{:?}", r.relayer);
    assert_eq!(r.liveness.stuck_count, 0, "{:?}", r.liveness);
}

/// Generated seed 558: three council reverts of chain 902 each put back ~116 of the relayer's
/// executions into its pool, over the per-sender limit; each no-op withdrawing one displaced
/// another, which was then never reported dropped: 10 settled messages were never executed.
/// So did generated seed 455. Every withdrawn execution is now reported dropped, and one a
/// no-op displaced likewise.
#[test]
fn displaced_withdrawals_558() {
    let r = run_repro("displaced_withdrawals_558", 558);
    assert!(
        r.revert_log
            .iter()
            .filter(|x| x.chain == 902 && x.cause == "council")
            .count()
            >= 3
    );
    assert!(r.relayer.void_executions_replaced > 64, "{:?}", r.relayer);
    assert_eq!(r.liveness.stuck_count, 0, "{:?}", r.liveness);
}

/// Generated seed 300: chain 901 sealed a batch every second under 2 s SL blocks; its operator
/// committed one batch per SL block, fell behind for good, and its one re-sequenced batch after
/// a contradicted import waited on sources that fell behind the same way: no batch of 901
/// executed for the last 24 s (16 of 105 sealed). Operators now commit up to
/// `max_commits_ahead` batches past the SL's view at once (and 901 keeps up well enough that
/// the contradicted import no longer happens).
#[test]
fn fast_batches_outrun_commits_300() {
    let r = run_repro("fast_batches_outrun_commits_300", 300);
    let c = &r.chains[&901];
    assert!(
        c.batches_executed * 2 > c.batches_sealed,
        "chain 901 executed {} of {} sealed batches",
        c.batches_executed,
        c.batches_sealed
    );
    assert!(r.liveness.stalled_chains.is_empty(), "{:?}", r.liveness);
}

/// Generated seed 934: the aggregator withheld chain 903's proofs, the SL gave up on the
/// checkpoints no root settled, and the council reverted chain 902's batches holding `aggregated`
/// imports of them — after which the relayer imported the same checkpoints again, the
/// re-sequenced batch could never execute, and 902 stopped settling. A chain node now refuses an
/// import its SL node says can never settle (`ImportRefusal::UnsettleableAggregated`).
#[test]
fn unsettleable_aggregated_reimport_934() {
    let r = run_repro("unsettleable_aggregated_reimport_934", 934);
    assert!(r
        .revert_log
        .iter()
        .any(|x| x.chain == 902 && x.cause == "council"));
    let refused: u64 = r
        .chains
        .values()
        .filter_map(|c| c.imports_rejected.get("UnsettleableAggregated"))
        .sum();
    assert!(refused > 0, "{:?}", r.chains);
    assert!(r.liveness.stalled_chains.is_empty(), "{:?}", r.liveness);
}

/// Generated seed 765 (and 352): chain 904's operator committed a batch with a wrong state root;
/// the SL refused the operator's proof of it (re-execution found the invalid block), but the
/// council reverted only when its own proof of the batch was refused, which a closed
/// aggregation exit delayed past the end of the run: 904 settled nothing for 41 s. The council
/// now reverts on the SL's refusal of anyone's proof for an invalid block.
#[test]
fn invalid_block_evidence_765() {
    let r = run_repro("invalid_block_evidence_765", 765);
    assert!(r.faults.iter().any(|f| f.kind == "wrong_state_root"));
    assert!(r
        .revert_log
        .iter()
        .any(|x| x.chain == 904 && x.cause == "council" && x.at_ms < 50_000));
    assert!(r.liveness.stalled_chains.is_empty(), "{:?}", r.liveness);
}

/// Generated seed 364: the aggregator stalled, and two council reverts of chain 902 (its
/// batches held `aggregated` imports the SL gave up on) each withdrew the relayer's execution
/// of two `aggregated` messages from 901; each withdrawal counted as a refusal, so the backoff
/// after a lost datagram put the next attempt past the end of the run. An execution a
/// roll-back undid is now retried at once (`RelayerInput::ExecuteUndone`), and the relayer
/// stops choosing checkpoints once the aggregator timed out (`AggregationView::
/// aggregator_timeout_ms`; with it, one council revert is left instead of two).
#[test]
fn undone_executions_backoff_364() {
    let r = run_repro("undone_executions_backoff_364", 364);
    assert!(
        r.revert_log
            .iter()
            .any(|x| x.chain == 902 && x.cause == "council"),
        "{:?}",
        r.revert_log
    );
    assert!(r.relayer.void_executions_replaced > 0, "{:?}", r.relayer);
    assert_eq!(r.liveness.stuck_count, 0, "{:?}", r.liveness);
    assert_eq!(r.modes["aggregated"].executed, r.modes["aggregated"].sent);
}
