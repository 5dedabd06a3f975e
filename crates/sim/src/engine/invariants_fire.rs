//! The invariants checked inside the engine, each shown to fire on a doctored run: a real
//! scenario runs to a point, one fact is broken by hand (a message relabelled, an execution
//! invented, a sequencer's revert snapshots dropped), and the run goes on until the checker
//! reports exactly that invariant. These properties cannot be broken by a scenario without a
//! bug in a core; `tests/invariants_fire.rs` lists where every invariant is shown to fire.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use braid_primitives::MessageId;

use super::Sim;
use crate::invariants::Execution;
use crate::report::Violation;
use crate::scenario::{Mode, Scenario};

/// Two chains, `mode` messages from 901 to 902.
fn two_chains(mode: &str, extra: &str) -> Scenario {
    Scenario::from_toml(&format!(
        r#"
        name = "invariants-fire"
        seed = 3
        duration_ms = 30_000
        traffic_stop_ms = 20_000
        chains = 2
        block_time_ms = 1_000
        batch_blocks = 2
        sl_block_time_ms = 1_000
        {extra}
        [[traffic]]
        from = 901
        to = 902
        mode = "{mode}"
        rate_per_s = 3.0
        "#
    ))
    .unwrap()
}

fn run_to(sim: &mut Sim<'_>, until_ms: u64) {
    sim.run_loop(until_ms, &mut |_, _| {});
}

/// The violation that stopped the run.
fn stopped(sim: &Sim<'_>) -> Violation {
    sim.violation
        .clone()
        .unwrap_or_else(|| panic!("no violation by {} ms", sim.now))
}

/// The last block of `chain`'s last batch the SL executed.
fn settled_block(sim: &Sim<'_>, chain: u64) -> Option<u64> {
    sim.sl
        .chain(chain)
        .and_then(|c| c.batches.get(&c.last_executed))
        .map(|b| b.header.lastBlock)
}

#[test]
fn settled_execution_has_settled_source_fires_for_an_execution_settled_before_its_source() {
    let s = two_chains("proof", "");
    let mut sim = Sim::new(&s, s.seed).unwrap();
    run_to(&mut sim, 12_000);
    assert!(sim.violation.is_none(), "{:?}", sim.violation);
    let dest_settled = settled_block(&sim, 902).expect("chain 902 settled a batch");
    let source = sim.chains[&901].role.seq();
    let settled_count = sim
        .sl
        .chain(901)
        .and_then(|c| c.batches.get(&c.last_executed))
        .map_or(0, |b| b.header.messageCount);
    let sent = source.state().outbox().len();
    assert!(sent > settled_count, "901 has unsettled messages");
    // the newest message of 901 (in its tree, its batch not executed) "executed" in a block
    // of 902 the SL already settled
    let id = MessageId {
        source_chain: 901,
        nonce: sent - 1,
    };
    sim.invariants.executed(
        902,
        id,
        Execution {
            block: dest_settled,
            leaf: None,
        },
    );
    run_to(&mut sim, 13_000);
    let v = stopped(&sim);
    assert_eq!(v.invariant, "settled_execution_has_settled_source");
    assert_eq!(
        v.detail,
        format!(
            "message {id} executed in settled block {dest_settled} of chain 902, but its source \
             batch is not executed on the SL"
        )
    );
}

#[test]
fn optimistic_before_final_fires_for_an_optimistic_message_executed_before_finality() {
    // precommit messages execute a block or so after they are sent, long before their source
    // batch is even committed: relabelled optimistic, they execute far too early
    let s = two_chains("precommit", "");
    let mut sim = Sim::new(&s, s.seed).unwrap();
    run_to(&mut sim, 5_000);
    assert!(sim.violation.is_none(), "{:?}", sim.violation);
    let mut relabelled = 0;
    for t in sim.messages.values_mut() {
        if t.executed_at.is_none() {
            t.mode = Mode::Optimistic;
            relabelled += 1;
        }
    }
    assert!(relabelled > 0, "messages in flight at 5 s");
    run_to(&mut sim, 10_000);
    let v = stopped(&sim);
    assert_eq!(v.invariant, "optimistic_before_final");
    assert!(
        v.detail.starts_with("message 901:")
            && v.detail.ends_with(
                "(optimistic mode) executed on chain 902 before its source batch's end state \
                 was final"
            ),
        "{}",
        v.detail
    );
}

#[test]
fn tree_block_reverted_fires_for_a_revert_of_blocks_an_accepted_root_settled() {
    let s = Scenario::from_toml(
        r#"
        name = "invariants-fire-tree"
        seed = 71
        duration_ms = 40_000
        traffic_stop_ms = 30_000
        chains = 2
        block_time_ms = 1_000
        batch_blocks = 2
        sl_block_time_ms = 1_000
        [aggregation]
        checkpoint_blocks = 4
        leaf_prove_ms = 100
        node_prove_ms = 500
        [[traffic]]
        from = 901
        to = 902
        mode = "aggregated"
        rate_per_s = 1.0
        "#,
    )
    .unwrap();
    let mut sim = Sim::new(&s, s.seed).unwrap();
    run_to(&mut sim, 20_000);
    assert!(sim.violation.is_none(), "{:?}", sim.violation);
    let accepted = sim.sl.aggregation().roots().map_or(0, |r| r.checkpoint());
    assert!(accepted > 0, "a root was accepted by 20 s");
    let settled_through = accepted * 4;
    // a revert from the block after the settled ones is fine
    sim.tree_revert_check(901, settled_through + 1);
    assert!(sim.invariants.pending.is_none());
    // one from a block the root settled is not
    sim.tree_revert_check(901, settled_through);
    let (name, detail) = sim.invariants.pending.clone().unwrap();
    assert_eq!(name, "tree_block_reverted");
    assert_eq!(
        detail,
        format!(
            "chain 901 reverted blocks from {settled_through}, but the tree's accepted root at \
             checkpoint {accepted} settled it through block {settled_through}"
        )
    );
    // and the run reports it after the next event
    run_to(&mut sim, 21_000);
    let v = stopped(&sim);
    assert_eq!((v.invariant.as_str(), v.detail), (name, detail));
}

#[test]
fn core_error_stops_the_run_when_a_core_refuses_what_the_sl_demands() {
    // 901's operator commits without executing from 3 s and reverts its unexecuted batches at
    // 12 s; its sequencer, doctored to have finalized (dropped the snapshots of) every sealed
    // batch, cannot roll back to the last executed one when the SL reverts the rest
    let s = two_chains(
        "precommit",
        r#"
        [[faults]]
        at_ms = 3_000
        kind = "revert_batch"
        chain = 901
        duration_ms = 9_000
        "#,
    );
    let mut sim = Sim::new(&s, s.seed).unwrap();
    run_to(&mut sim, 11_900);
    assert!(sim.violation.is_none(), "{:?}", sim.violation);
    let seq = sim.chains.get_mut(&901).unwrap().role.seq_mut();
    seq.finalize_through(seq.last_batch());
    run_to(&mut sim, 20_000);
    let v = stopped(&sim);
    assert_eq!(v.invariant, "core_error");
    assert!(
        v.detail.starts_with("chain 901: revert_to("),
        "{}",
        v.detail
    );
    assert!(
        v.detail.contains("cannot revert to batch"),
        "RevertTooOld: {}",
        v.detail
    );
}
