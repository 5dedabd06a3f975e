//! Aggregated settlement on the SL, driven by hand: two real sequencers under a tree of two
//! chains, root proofs built by the real aggregator from the SL's own checkpoint statements.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use braid_aggregator::{AggregatorState, KeccakHasher, ReexecBackend, ReexecProof};
use braid_execution::TxSigner;
use braid_primitives::{ChainId, ImportKind, ImportedRoot};
use braid_proof::ReExecution;
use braid_sequencer::{SealedBatch, Sequencer, SequencerConfig, SequencerInput, SequencerOutput};

use crate::{
    AggregationConfig, BatchStatus, ChainGenesis, SettlementError, SettlementLayer, SlCall,
    SlConfig, SlEvent, SlInput, SlTx,
};

const A: ChainId = 901;
const B: ChainId = 902;
const K: u64 = 4;
const TIMEOUT_MS: u64 = 10_000;

fn key(tag: &str) -> B256 {
    keccak256(tag.as_bytes())
}
fn addr(k: &B256) -> Address {
    TxSigner::from_secret(*k).unwrap().address()
}
fn alloc() -> Vec<(Address, U256)> {
    vec![(TxSigner::dev(0).address(), U256::from(10u128.pow(21)))]
}

struct Tree {
    sl: SettlementLayer,
    /// Sealed batches per chain (batches of 2 blocks: checkpoint `i` ends batch `2i`).
    batches: Vec<(ChainId, Vec<SealedBatch>)>,
    operator: B256,
    aggregator: B256,
    now: u64,
}

fn sealed(chain: ChainId, n: usize) -> (SealedBlockHeader, Vec<SealedBatch>) {
    let mut cfg = SequencerConfig::new(chain);
    cfg.batch_blocks = 2;
    cfg.checkpoint_blocks = Some(K);
    let (mut seq, g) = Sequencer::genesis(cfg, &alloc()).unwrap();
    let mut out = vec![];
    let mut t = 0;
    while out.len() < n {
        t += 1;
        for o in seq.handle(SequencerInput::Tick { now_ms: t * 1000 }) {
            if let SequencerOutput::BatchSealed(b) = o {
                out.push(*b);
            }
        }
    }
    (g.block.header, out)
}
type SealedBlockHeader = braid_primitives::BlockHeader;

impl Tree {
    fn new(batches: usize) -> Self {
        let council = key("council");
        let operator = key("operator");
        let mut config = SlConfig::new(addr(&council));
        config.sl_block_time_ms = 1000;
        config.aggregation = AggregationConfig {
            chains: vec![A, B],
            checkpoint_blocks: K,
            aggregator_timeout_ms: TIMEOUT_MS,
        };
        let sl = SettlementLayer::new(config, Box::new(ReExecution::new())).unwrap();
        let mut t = Tree {
            sl,
            batches: vec![],
            operator,
            aggregator: key("aggregator"),
            now: 0,
        };
        for chain in [A, B] {
            let (genesis, b) = sealed(chain, batches);
            let g = ChainGenesis {
                chain_id: chain,
                operator: addr(&operator),
                alloc: alloc(),
                genesis_header: genesis,
            };
            let n = t.sl.nonce(&addr(&council));
            let e = t.send(&council, n, SlCall::RegisterChain(g));
            assert!(matches!(e[0], SlEvent::ChainRegistered { .. }), "{e:?}");
            t.batches.push((chain, b));
        }
        t
    }

    fn send(&mut self, k: &B256, nonce: u64, call: SlCall) -> Vec<SlEvent> {
        let tx = SlTx::sign(k, nonce, call).unwrap();
        let mut events = self.sl.handle(SlInput::Submit(Box::new(tx)));
        self.now += 1000;
        events.extend(self.sl.handle(SlInput::Tick { now_ms: self.now }));
        events
    }

    fn by(&mut self, k: B256, call: SlCall) -> Vec<SlEvent> {
        let n = self.sl.nonce(&addr(&k));
        self.send(&k, n, call)
    }

    /// Commits batch `n` (1-based) of both chains.
    fn commit(&mut self, n: usize) {
        for i in 0..self.batches.len() {
            let b = self.batches[i].1[n - 1].clone();
            let e = self.by(
                self.operator,
                SlCall::CommitBatch {
                    header: b.header,
                    imports: vec![],
                    blocks: b.blocks,
                },
            );
            assert!(matches!(e[0], SlEvent::BatchCommitted { .. }), "{e:?}");
        }
    }

    /// The root proofs of checkpoints `1..=upto`, built from the SL's statements by an
    /// aggregator starting at the SL's genesis tree.
    fn roots(&self, upto: u64) -> Vec<Arc<ReexecProof>> {
        let agg = self.sl.aggregation();
        let mut state = AggregatorState::resume(
            &KeccakHasher,
            agg.roots().unwrap(),
            agg.snapshot(0).unwrap().clone(),
        )
        .unwrap();
        let backend = ReexecBackend::new(self.sl.config().aggregation.shape().unwrap());
        (1..=upto)
            .map(|c| {
                let leaves = self.sl.checkpoint_statements(c).unwrap();
                let proofs = state.aggregate(&backend, &leaves).unwrap();
                proofs.root_proof().unwrap().clone()
            })
            .collect()
    }

    fn submit_root(&mut self, proof: Arc<ReexecProof>) -> Vec<SlEvent> {
        self.by(self.aggregator, SlCall::SubmitRoot { proof })
    }
}

fn rejection(events: &[SlEvent]) -> Option<String> {
    events.iter().find_map(|e| match e {
        SlEvent::TxRejected { error, .. } => Some(error.to_string()),
        _ => None,
    })
}

#[test]
fn one_root_verification_settles_every_chain_of_the_checkpoint() {
    let mut t = Tree::new(4);
    for n in 1..=4 {
        t.commit(n);
    }
    let roots = t.roots(2);
    // checkpoint 2 cannot come before 1
    let e = t.submit_root(roots[1].clone());
    assert!(
        rejection(&e).is_some_and(|r| r.contains("does not follow")),
        "{e:?}"
    );
    assert_eq!(t.sl.aggregation().root_verifications(), 0);
    for (i, root) in roots.iter().enumerate() {
        let e = t.submit_root(root.clone());
        let accepted = e.iter().find_map(|e| match e {
            SlEvent::RootAccepted {
                checkpoint,
                batches_proven,
                ..
            } => Some((*checkpoint, *batches_proven)),
            _ => None,
        });
        // two batches of two chains per checkpoint
        assert_eq!(accepted, Some((i as u64 + 1, 4)), "{e:?}");
    }
    assert_eq!(t.sl.aggregation().root_verifications(), 2);
    for chain in [A, B] {
        for batch in 1..=4 {
            assert_eq!(
                t.sl.batch(chain, batch).unwrap().status,
                BatchStatus::Proven,
                "chain {chain} batch {batch}"
            );
        }
    }
    // the same root again is refused and changes nothing
    let before = t.sl.aggregation().roots().copied();
    let e = t.submit_root(roots[1].clone());
    assert!(rejection(&e).is_some(), "{e:?}");
    assert_eq!(t.sl.aggregation().roots().copied(), before);
    assert_eq!(t.sl.aggregation().root_verifications(), 2);
}

#[test]
fn a_root_over_uncommitted_blocks_is_refused() {
    let mut t = Tree::new(2);
    t.commit(1);
    // checkpoint 1 ends at block 4, in batch 2, which neither chain committed here
    assert!(t.sl.checkpoint_statements(1).is_err());
    // the same chains (deterministic sequencers) with batch 2 committed elsewhere
    let mut other = Tree::new(2);
    other.commit(1);
    other.commit(2);
    let root = other.roots(1).remove(0);
    let e = t.submit_root(root);
    let error = e.iter().find_map(|e| match e {
        SlEvent::TxRejected { error, .. } => Some(error.clone()),
        _ => None,
    });
    assert!(
        matches!(&error, Some(SettlementError::Aggregation { reason, .. }) if reason.contains("no committed batch ending at block 4")),
        "{e:?}"
    );
    assert_eq!(t.sl.aggregation().roots().unwrap().checkpoint(), 0);
    assert_eq!(t.sl.aggregation().root_verifications(), 0);
}

#[test]
fn tree_chains_prove_alone_only_after_the_aggregator_timed_out() {
    let mut t = Tree::new(2);
    t.commit(1);
    let prove = SlCall::ProveBatch {
        chain_id: A,
        batch: 1,
        proof: Bytes::new(),
    };
    let e = t.by(t.operator, prove.clone());
    assert!(
        rejection(&e).is_some_and(|r| r.contains("aggregation tree")),
        "{e:?}"
    );
    assert_eq!(t.sl.batch(A, 1).unwrap().status, BatchStatus::Committed);
    // no root for longer than the timeout: the emergency exit opens
    for _ in 0..(TIMEOUT_MS / 1000) {
        t.now += 1000;
        t.sl.handle(SlInput::Tick { now_ms: t.now });
    }
    assert!(t.sl.aggregation_exit_open(A, 1));
    let e = t.by(t.operator, prove);
    assert!(
        e.iter().any(|e| matches!(
            e,
            SlEvent::AggregationExit {
                chain: A,
                batch: 1,
                ..
            }
        )),
        "{e:?}"
    );
    assert_eq!(t.sl.batch(A, 1).unwrap().status, BatchStatus::Proven);
}

#[test]
fn imports_an_accepted_root_contradicts_or_a_revert_voids_are_recognised() {
    let mut t = Tree::new(4);
    for n in 1..=2 {
        t.commit(n);
    }
    let root = t.roots(1).remove(0);
    let e = t.submit_root(root);
    assert!(
        e.iter().any(|e| matches!(e, SlEvent::RootAccepted { .. })),
        "{e:?}"
    );
    // chain B claims node (1, 0) at checkpoint 1 had another hash
    let forged = ImportedRoot {
        kind: ImportKind::Aggregated as u8,
        sourceChain: 0,
        sourceHeight: 1,
        root: B256::repeat_byte(0x66),
        messageCount: 1,
    };
    assert!(t.sl.aggregated_import_contradicted(B, &forged));
    assert!(t.sl.aggregated_import_unsettleable(B, &forged));
    let real = t.sl.aggregation().snapshot(1).unwrap().nodes[0][0].hash;
    let honest = ImportedRoot {
        root: real,
        ..forged.clone()
    };
    assert!(!t.sl.aggregated_import_contradicted(B, &honest));
    // a revert of A from block 3 voids node hashes over A from checkpoint 1 on
    let tree = &t.sl.config().aggregation;
    assert!(tree.import_voided_by(B, &honest, A, 3));
    assert!(!tree.import_voided_by(B, &honest, A, 5), "block 4 stays");
}

#[test]
fn aggregation_config_is_validated() {
    let mut config = SlConfig::new(Address::repeat_byte(1));
    config.aggregation = AggregationConfig {
        chains: vec![A, A],
        checkpoint_blocks: K,
        aggregator_timeout_ms: TIMEOUT_MS,
    };
    assert!(SettlementLayer::new(config.clone(), Box::new(ReExecution::new())).is_err());
    config.aggregation.chains = vec![A, 0];
    assert!(SettlementLayer::new(config.clone(), Box::new(ReExecution::new())).is_err());
    config.aggregation.chains = vec![A, B];
    config.aggregation.checkpoint_blocks = 0;
    assert!(SettlementLayer::new(config, Box::new(ReExecution::new())).is_err());
}

// ----- what is never reverted: batches an accepted root settled -----

/// A chain outside the tree.
const C: ChainId = 905;

/// `chain`'s first `n` batches, its block `b` importing `imports[b]` where given.
fn sealed_importing(chain: ChainId, n: usize, imports: &[(u64, ImportedRoot)]) -> Vec<SealedBatch> {
    let mut cfg = SequencerConfig::new(chain);
    cfg.batch_blocks = 2;
    cfg.checkpoint_blocks = Some(K);
    let (mut seq, _) = Sequencer::genesis(cfg, &alloc()).unwrap();
    let mut out = vec![];
    let mut t = 0;
    let mut queued = 0;
    while out.len() < n {
        t += 1;
        let next = seq.head().number + 1;
        if queued < next {
            queued = next;
            for (_, i) in imports.iter().filter(|(b, _)| *b == next) {
                let o = seq.handle(SequencerInput::Import(i.clone()));
                assert!(matches!(o[..], [SequencerOutput::ImportQueued(_)]), "{o:?}");
            }
        }
        for o in seq.handle(SequencerInput::Tick { now_ms: t * 1000 }) {
            if let SequencerOutput::BatchSealed(b) = o {
                out.push(*b);
            }
        }
    }
    out
}

fn commit_call(b: &SealedBatch) -> SlCall {
    SlCall::CommitBatch {
        header: b.header.clone(),
        imports: b.blocks.iter().flat_map(|b| b.imports.clone()).collect(),
        blocks: b.blocks.clone(),
    }
}

/// A pre-commit import of `c`'s block `height`.
fn precommit_of(c: &[SealedBatch], height: u64) -> ImportedRoot {
    let h = &c
        .iter()
        .flat_map(|b| b.blocks.iter())
        .find(|b| b.header.number == height)
        .unwrap()
        .header;
    ImportedRoot {
        kind: ImportKind::Precommit as u8,
        sourceChain: C,
        sourceHeight: height,
        root: h.localRoot,
        messageCount: h.messageCount,
    }
}

#[test]
fn a_root_settles_only_batches_whose_imports_are_final_and_they_are_never_reverted() {
    let mut t = Tree::new(3);
    let c_batches = sealed(C, 2).1;
    // tree chain A imports C's block 1 (pre-commit) in its block 2 (batch 1), and C's batch 2
    // (commit) in its block 5 (batch 3, checkpoint 2)
    let commit_of_c2 = ImportedRoot {
        kind: ImportKind::Commit as u8,
        sourceChain: C,
        sourceHeight: 2,
        root: c_batches[1].header.chainBatchRoot,
        messageCount: c_batches[1].header.messageCount,
    };
    let imports = [(2, precommit_of(&c_batches, 1)), (5, commit_of_c2)];
    let a_batches = sealed_importing(A, 3, &imports);
    assert_eq!(a_batches[0].blocks[1].imports.len(), 1);
    assert_eq!(a_batches[2].blocks[0].imports.len(), 1);
    t.batches[0].1 = a_batches.clone();
    let c_genesis = sealed(C, 0).0;
    let council = key("council");
    let e = t.by(
        council,
        SlCall::RegisterChain(ChainGenesis {
            chain_id: C,
            operator: addr(&t.operator),
            alloc: alloc(),
            genesis_header: c_genesis,
        }),
    );
    assert!(
        matches!(e[0], SlEvent::ChainRegistered { chain: C }),
        "{e:?}"
    );
    let op = t.operator;
    let b_batches = t.batches[1].1.clone();
    for (a, b) in a_batches.iter().zip(&b_batches).take(2) {
        for call in [commit_call(a), commit_call(b)] {
            let e = t.by(op, call);
            assert!(rejection(&e).is_none(), "{e:?}");
        }
    }

    // C's block 1 is not even committed: the root would settle A's batch 1 on a root that can
    // still be reverted, so it is refused with a typed error and changes nothing
    let root = t.roots(1).remove(0);
    let e = t.submit_root(Arc::clone(&root));
    let refused = e.iter().find_map(|e| match e {
        SlEvent::TxRejected { error, .. } => Some(error.clone()),
        _ => None,
    });
    assert!(
        matches!(
            refused,
            Some(SettlementError::UnsettledImport {
                chain: A,
                batch: 1,
                ..
            })
        ),
        "{e:?}"
    );
    assert!(!e.iter().any(|e| matches!(e, SlEvent::RootAccepted { .. })));
    assert_eq!(t.sl.aggregation().roots().unwrap().checkpoint(), 0);
    assert_eq!(t.sl.batch(A, 1).unwrap().status, BatchStatus::Committed);
    assert!(t.sl.checkpoint_imports_settled(1).is_err());

    // C commits and proves batch 1: still revertible, the root still waits
    let e = t.by(op, commit_call(&c_batches[0]));
    assert!(rejection(&e).is_none(), "{e:?}");
    let prove = SlCall::ProveBatch {
        chain_id: C,
        batch: 1,
        proof: Bytes::new(),
    };
    let e = t.by(op, prove);
    assert!(rejection(&e).is_none(), "{e:?}");
    assert!(matches!(
        t.sl.checkpoint_imports_settled(1),
        Err(SettlementError::UnsettledImport {
            chain: A,
            batch: 1,
            ..
        })
    ));
    // C's batch 1 executes: the import is final and the root is accepted
    let execute = SlCall::ExecuteBatch {
        chain_id: C,
        batch: 1,
        extension_proofs: vec![],
    };
    let e = t.by(op, execute);
    assert!(
        e.iter().any(|e| matches!(
            e,
            SlEvent::BatchExecuted {
                chain: C,
                batch: 1,
                ..
            }
        )),
        "{e:?}"
    );
    t.sl.checkpoint_imports_settled(1).unwrap();
    let e = t.submit_root(root);
    assert!(
        e.iter()
            .any(|e| matches!(e, SlEvent::RootAccepted { checkpoint: 1, .. })),
        "{e:?}"
    );
    let by_root = crate::Finality::Root { checkpoint: 1 };
    for chain in [A, B] {
        for n in 1..=2 {
            assert_eq!(t.sl.finality(chain, n), Some(by_root));
        }
    }

    // neither the operator nor the council may revert a root-settled batch; nothing changes
    let before = (
        t.sl.chain(A).unwrap().last_committed,
        t.sl.chain(B).unwrap().last_committed,
        t.sl.total_value(),
    );
    for k in [op, council] {
        let e = t.by(
            k,
            SlCall::RevertBatches {
                chain_id: A,
                from: 1,
            },
        );
        let refused = e.iter().find_map(|e| match e {
            SlEvent::TxRejected { error, .. } => Some(error.clone()),
            _ => None,
        });
        assert_eq!(
            refused,
            Some(SettlementError::FinalBatch {
                chain: A,
                batch: 1,
                by: by_root
            }),
            "{e:?}"
        );
        assert!(!e
            .iter()
            .any(|e| matches!(e, SlEvent::BatchesReverted { .. })));
        let after = (
            t.sl.chain(A).unwrap().last_committed,
            t.sl.chain(B).unwrap().last_committed,
            t.sl.total_value(),
        );
        assert_eq!(after, before);
        assert_eq!(t.sl.batch(A, 2).unwrap().status, BatchStatus::Proven);
    }

    // A's batch 3 imports C's batch 2 (not executed); C reverts it: the cascade
    // reaches A's batch 3 and stops before the root-settled batches 1 and 2
    for call in [
        commit_call(&c_batches[1]),
        commit_call(&a_batches[2]),
        commit_call(&b_batches[2]),
    ] {
        let e = t.by(op, call);
        assert!(rejection(&e).is_none(), "{e:?}");
    }
    let e = t.by(
        op,
        SlCall::RevertBatches {
            chain_id: C,
            from: 2,
        },
    );
    let reverts: Vec<_> = e
        .iter()
        .filter_map(|e| match e {
            SlEvent::BatchesReverted {
                chain, from, to, ..
            } => Some((*chain, *from, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(reverts, vec![(C, 2, 2), (A, 3, 3)], "{e:?}");
    let a = t.sl.chain(A).unwrap();
    assert_eq!(a.last_committed, 2);
    for n in 1..=2 {
        assert_eq!(t.sl.finality(A, n), Some(by_root));
    }
    assert_eq!(t.sl.chain(B).unwrap().last_committed, 3);
}
