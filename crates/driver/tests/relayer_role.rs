//! The relayer role on real sequencers (two chains in process, precommit messages): deadlines,
//! executions waiting for pool room, duplicates skipped, vanished transactions re-sent.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;

use alloy_primitives::{Address, U256};
use alloy_sol_types::SolCall as _;
use braid_driver::{ChainEffect, ChainRole, LocalChains, NoTree, RelayerEffect, RelayerRole};
use braid_execution::TxSigner;
use braid_operator::{Operator, OperatorConfig};
use braid_primitives::{ChainId, IMessenger, ImportKind, Message, MessageProof, MESSENGER_ADDRESS};
use braid_relayer::{MessageStatus, Relayer, RelayerConfig, RelayerInput};
use braid_sequencer::{Sequencer, SequencerConfig};
use braid_settlement::AggregationConfig;

const A: ChainId = 901;
const B: ChainId = 902;
const ETH: u128 = 1_000_000_000_000_000_000;
const RETRY_MS: u64 = 5_000;

fn relayer_key() -> TxSigner {
    TxSigner::dev(1_000_000)
}

struct World {
    chains: BTreeMap<ChainId, ChainRole>,
    role: RelayerRole,
    now: u64,
    /// Alice's next nonce on A.
    alice: u64,
}

impl World {
    /// Two chains; B's pool takes at most `per_sender` transactions of one sender.
    fn new(per_sender: usize) -> Self {
        let alloc = vec![
            (TxSigner::dev(0).address(), U256::from(100 * ETH)),
            (relayer_key().address(), U256::from(100 * ETH)),
        ];
        let mut core = Relayer::new(RelayerConfig::new(vec![A, B]).without_pipelining());
        let mut chains = BTreeMap::new();
        for id in [A, B] {
            let mut c = SequencerConfig::new(id);
            if id == B {
                c.mempool.max_per_sender = per_sender;
            }
            let (seq, genesis) = Sequencer::genesis(c, &alloc).unwrap();
            core.handle(RelayerInput::SourceBlock {
                block: genesis.block,
                receipts: genesis.receipts,
            });
            let role = ChainRole::new(
                seq,
                Operator::new(OperatorConfig::new(id)),
                AggregationConfig::default(),
            )
            .unwrap();
            chains.insert(id, role);
        }
        Self {
            chains,
            role: RelayerRole::new(core, relayer_key(), RETRY_MS),
            now: 0,
            alice: 0,
        }
    }

    /// Alice sends a precommit message from A to B.
    fn send(&mut self) {
        let raw = TxSigner::dev(0)
            .call(
                A,
                self.alice,
                MESSENGER_ADDRESS,
                U256::from(ETH),
                IMessenger::sendMessageWithModeCall {
                    destChain: U256::from(B),
                    recipient: Address::repeat_byte(0xb0),
                    payload: Default::default(),
                    mode: ImportKind::Precommit as u8,
                }
                .abi_encode()
                .into(),
                200_000,
            )
            .unwrap();
        self.alice += 1;
        let out = self.chains.get_mut(&A).unwrap().submit_tx(raw);
        assert!(format!("{out:?}").contains("TxAccepted"), "{out:?}");
    }

    /// One block of `chain`, fed to the relayer; imports the relayer asks for are queued on
    /// their destination at once. Returns the executions the relayer decided.
    fn block(&mut self, chain: ChainId) -> Vec<(Message, MessageProof)> {
        let node = self.chains.get_mut(&chain).unwrap();
        self.now = self.now.max(node.seq().next_block_at_ms());
        let effects = node.tick(self.now).unwrap();
        let mut decided = vec![];
        for effect in effects {
            let ChainEffect::BlockSealed { block, .. } = effect else {
                continue;
            };
            for r in &block.receipts {
                self.role
                    .tx_included(chain, r.tx_hash, block.block.header.number);
            }
            let input = RelayerInput::SourceBlock {
                block: block.block,
                receipts: block.receipts,
            };
            let out = self.role.handle(self.now, input);
            decided.extend(self.apply(out));
        }
        decided
    }

    /// Applies imports; returns executions.
    fn apply(&mut self, effects: Vec<RelayerEffect>) -> Vec<(Message, MessageProof)> {
        let mut decided = vec![];
        for effect in effects {
            match effect {
                RelayerEffect::Import { dest, root, epoch } => {
                    let out =
                        self.chains
                            .get_mut(&dest)
                            .unwrap()
                            .import(root, Some(epoch), &NoTree);
                    assert!(format!("{out:?}").contains("ImportQueued"), "{out:?}");
                }
                RelayerEffect::Execute {
                    dest: B,
                    message,
                    proof,
                } => decided.push((message, proof)),
                other => panic!("unexpected effect {other:?}"),
            }
        }
        decided
    }

    /// An execution reaches B: what the role reports back.
    fn arrive(&mut self, message: Message, proof: MessageProof) -> Vec<RelayerEffect> {
        let mut dests = LocalChains {
            chains: &mut self.chains,
            now_ms: self.now,
        };
        self.role
            .execution_arrived(self.now, B, message, proof, &mut dests)
    }

    fn pooled_on_b(&self) -> usize {
        self.chains[&B].seq().mempool().len()
    }

    /// Sends `n` messages and brings them to the point where the relayer decided to execute
    /// them on B.
    fn decided(&mut self, n: usize) -> Vec<(Message, MessageProof)> {
        for _ in 0..n {
            self.send();
        }
        assert!(self.block(A).is_empty(), "imports first");
        let decided = self.block(B); // B imports A's root, the relayer sees it
        assert_eq!(decided.len(), n);
        decided
    }
}

#[test]
fn an_execution_is_included_once_and_a_duplicate_is_not_sent() {
    let mut w = World::new(64);
    let [(message, proof)] = &w.decided(1)[..] else {
        panic!()
    };
    assert!(w.arrive(message.clone(), proof.clone()).is_empty());
    assert_eq!(w.pooled_on_b(), 1);
    w.block(B);
    let id = message.id();
    assert!(matches!(
        w.role.core().status(&id),
        Some(MessageStatus::Executed { .. })
    ));
    // the same execution again (a restarted relayer re-deriving its work): not sent
    assert!(w.arrive(message.clone(), proof.clone()).is_empty());
    assert_eq!(w.pooled_on_b(), 0);
    assert_eq!(w.role.counters().executions_skipped, 1);
}

#[test]
fn an_execution_still_pooled_is_waited_for_and_one_that_vanished_is_sent_again() {
    let mut w = World::new(64);
    let [(message, proof)] = &w.decided(1)[..] else {
        panic!()
    };
    let id = message.id();
    assert!(w.arrive(message.clone(), proof.clone()).is_empty());
    // past the deadline, still in B's pool: waited for, not duplicated
    w.now += RETRY_MS + 1;
    let effects = {
        let dests = LocalChains {
            chains: &mut w.chains,
            now_ms: w.now,
        };
        w.role.tick(w.now, &dests)
    };
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(w.role.core().status(&id), Some(MessageStatus::Submitted));
    // B loses its pool (a crash): after the next deadline the relayer executes it again
    let hash = w.chains[&B].seq().mempool().ready(|_| 0, 0)[0].hash;
    w.chains
        .get_mut(&B)
        .unwrap()
        .seq_mut()
        .evict(&hash)
        .unwrap();
    w.role.dest_restarted(B);
    w.now += RETRY_MS + 1;
    let effects = {
        let dests = LocalChains {
            chains: &mut w.chains,
            now_ms: w.now,
        };
        w.role.tick(w.now, &dests)
    };
    let again = w.apply(effects);
    assert_eq!(again.len(), 1, "executed again");
    assert_eq!(again[0].0.id(), id);
    assert_eq!(w.role.counters().execute_retries, 1);
    let (m, p) = again.into_iter().next().unwrap();
    assert!(w.arrive(m, p).is_empty());
    w.block(B);
    assert!(matches!(
        w.role.core().status(&id),
        Some(MessageStatus::Executed { .. })
    ));
}

#[test]
fn executions_the_pool_refuses_as_full_wait_for_room_in_order() {
    let mut w = World::new(1);
    let decided = w.decided(3);
    for (m, p) in decided.clone() {
        assert!(w.arrive(m, p).is_empty(), "held back, not dropped");
    }
    assert_eq!(w.pooled_on_b(), 1, "one in the pool, two waiting");
    for (m, _) in &decided {
        assert!(w.role.waiting_at_destination(&m.id()) != (m.id() == decided[0].0.id()));
    }
    for _ in 0..3 {
        w.block(B);
        let mut dests = LocalChains {
            chains: &mut w.chains,
            now_ms: w.now,
        };
        assert!(w.role.drain(w.now, B, &mut dests).is_empty());
    }
    for (m, _) in &decided {
        assert!(
            matches!(
                w.role.core().status(&m.id()),
                Some(MessageStatus::Executed { .. })
            ),
            "{} not executed",
            m.id()
        );
    }
    assert_eq!(w.role.counters().executions_dropped, 0);
}

#[test]
fn an_execution_pooled_again_after_a_restart_is_adopted_not_sent_twice() {
    let mut w = World::new(64);
    let [(message, proof)] = &w.decided(1)[..] else {
        panic!()
    };
    let id = message.id();
    assert!(w.arrive(message.clone(), proof.clone()).is_empty());
    let hash = w.chains[&B].seq().mempool().ready(|_| 0, 0)[0].hash;
    // B restarted and its journal put the execution back in its pool: the role, which forgot
    // what it had there, is told
    w.role.dest_restarted(B);
    w.role.adopt_pooled(B, hash, message);
    assert!(w.role.resume(w.now).is_empty(), "sent again");
    w.now += RETRY_MS + 1;
    let effects = {
        let dests = LocalChains {
            chains: &mut w.chains,
            now_ms: w.now,
        };
        w.role.tick(w.now, &dests)
    };
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(w.pooled_on_b(), 1);
    w.block(B);
    assert!(matches!(
        w.role.core().status(&id),
        Some(MessageStatus::Executed { .. })
    ));
    assert_eq!(w.role.counters().execute_retries, 0);

    // without the adoption, resume sends it again (the pool was taken as lost)
    let mut w = World::new(64);
    let [(message, proof)] = &w.decided(1)[..] else {
        panic!()
    };
    assert!(w.arrive(message.clone(), proof.clone()).is_empty());
    w.role.dest_restarted(B);
    let again = w.role.resume(w.now);
    assert_eq!(again.len(), 1, "{again:?}");
}

#[test]
fn an_execution_included_before_a_restart_is_withdrawn_when_a_roll_back_repools_it() {
    let mut w = World::new(64);
    let [(message, proof)] = &w.decided(1)[..] else {
        panic!()
    };
    let id = message.id();
    assert!(w.arrive(message.clone(), proof.clone()).is_empty());
    w.block(B);
    assert!(matches!(
        w.role.core().status(&id),
        Some(MessageStatus::Executed { .. })
    ));
    // B crashes and restarts from its blocks with an empty pool
    let b = w.chains.get_mut(&B).unwrap();
    *b.seq_mut() = b.seq().restarted();
    w.role.dest_restarted(B);
    // then rolls back to its first batch, dropping the import of A's root: the execution is
    // back in its pool, against a root B no longer holds (it would fail in B's next block and
    // leave a nonce gap)
    let outcome = b.seq_mut().revert_to(0, |_| true).unwrap();
    assert_eq!(outcome.txs_repooled, 1, "{outcome:?}");
    let effects = {
        let mut dests = LocalChains {
            chains: &mut w.chains,
            now_ms: w.now,
        };
        w.role.dest_rolled_back(B, &mut dests)
    };
    assert!(
        matches!(effects[..], [RelayerEffect::ExecuteDropped { dest: B, id: i }] if i == id),
        "{effects:?}"
    );
    assert_eq!(w.role.counters().void_executions_replaced, 1);
    let pooled = w.chains[&B].seq().mempool().ready(|_| 0, 0);
    assert_eq!(pooled.len(), 1, "the no-op at its nonce");
    assert_eq!(pooled[0].to(), Some(relayer_key().address()));
}

#[test]
fn every_execution_a_roll_back_repools_is_reported_even_one_a_no_op_displaced() {
    // B's pool takes one transaction of a sender; a roll-back puts back all four executions
    // of its discarded blocks regardless. A no-op withdrawing one below the highest displaces
    // the highest, which is then no longer there to withdraw: it is gone all the same
    let mut w = World::new(1);
    let decided = w.decided(4);
    for (m, p) in decided.clone() {
        assert!(w.arrive(m, p).is_empty());
    }
    for _ in 0..4 {
        w.block(B);
        let mut dests = LocalChains {
            chains: &mut w.chains,
            now_ms: w.now,
        };
        assert!(w.role.drain(w.now, B, &mut dests).is_empty());
    }
    for (m, _) in &decided {
        assert!(matches!(
            w.role.core().status(&m.id()),
            Some(MessageStatus::Executed { .. })
        ));
    }
    let b = w.chains.get_mut(&B).unwrap();
    let outcome = b.seq_mut().revert_to(0, |_| true).unwrap();
    assert_eq!(outcome.txs_repooled, 4, "{outcome:?}");
    let effects = {
        let mut dests = LocalChains {
            chains: &mut w.chains,
            now_ms: w.now,
        };
        w.role.dest_rolled_back(B, &mut dests)
    };
    let mut dropped: Vec<_> = effects
        .iter()
        .map(|e| match e {
            RelayerEffect::ExecuteDropped { dest: B, id } => *id,
            other => panic!("unexpected effect {other:?}"),
        })
        .collect();
    dropped.sort();
    let mut ids: Vec<_> = decided.iter().map(|(m, _)| m.id()).collect();
    ids.sort();
    assert_eq!(dropped, ids);
    // no execution is left in B's pool, only no-ops
    for tx in w.chains[&B].seq().mempool().ready(|_| 0, 0) {
        assert_eq!(tx.to(), Some(relayer_key().address()));
    }
}
