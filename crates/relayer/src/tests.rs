//! Hand-driven scenarios: two real sequencers, a real SL where needed, and the relayer between.
#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use alloy_primitives::{Address, U256};
use braid_execution::{verify_message_proof, TxSigner};
use braid_proof::ReExecution;
use braid_sequencer::SequencerOutput;
use braid_sequencer::{SealedBatch, SealedBlock, Sequencer, SequencerConfig, SequencerInput};
use braid_settlement::{ChainGenesis, SettlementLayer, SlCall, SlConfig, SlInput, SlTx};

const A: ChainId = 901;
const B: ChainId = 902;
const ETH: u128 = 1_000_000_000_000_000_000;

fn alice() -> TxSigner {
    TxSigner::dev(0)
}

fn relayer_key() -> TxSigner {
    TxSigner::dev(7)
}

fn alloc() -> Vec<(Address, U256)> {
    vec![
        (alice().address(), U256::from(100 * ETH)),
        (relayer_key().address(), U256::from(10 * ETH)),
    ]
}

struct Chain {
    seq: Sequencer,
    now: u64,
}

impl Chain {
    fn new(id: ChainId) -> (Self, SealedBlock) {
        let mut c = SequencerConfig::new(id);
        c.batch_blocks = 2;
        let (seq, genesis) = Sequencer::genesis(c, &alloc()).unwrap();
        (Self { seq, now: 0 }, genesis)
    }

    fn send(&mut self, dest: ChainId, mode: ImportKind) {
        let nonce =
            self.seq.state().account(&alice().address()).nonce + self.seq.mempool().len() as u64;
        let input = IMessenger::sendMessageWithModeCall {
            destChain: U256::from(dest),
            recipient: Address::repeat_byte(0xb0),
            payload: Bytes::from_static(b"hi"),
            mode: mode as u8,
        }
        .abi_encode();
        let raw = alice()
            .call(
                self.seq.config().chain_id,
                nonce,
                MESSENGER_ADDRESS,
                U256::from(ETH),
                input.into(),
                200_000,
            )
            .unwrap();
        self.submit(raw);
    }

    fn submit(&mut self, raw: Bytes) {
        let out = self.seq.handle(SequencerInput::SubmitTx { raw });
        assert!(
            matches!(&out[..], [SequencerOutput::TxAccepted { .. }]),
            "{out:?}"
        );
    }

    fn execute(&mut self, message: &Message, proof: &MessageProof) {
        let nonce = self.seq.state().account(&relayer_key().address()).nonce
            + self.seq.mempool().len() as u64;
        let raw = relayer_key()
            .call(
                self.seq.config().chain_id,
                nonce,
                MESSENGER_ADDRESS,
                U256::ZERO,
                execute_message_calldata(message, proof),
                500_000,
            )
            .unwrap();
        self.submit(raw);
    }

    /// Produces one block; returns it and the batch it sealed, if any.
    fn tick(&mut self) -> (SealedBlock, Option<SealedBatch>) {
        self.now += 1_000;
        let mut block = None;
        let mut batch = None;
        for o in self.seq.handle(SequencerInput::Tick { now_ms: self.now }) {
            match o {
                SequencerOutput::BlockSealed(b) => block = Some(*b),
                SequencerOutput::BatchSealed(b) => batch = Some(*b),
                _ => {}
            }
        }
        (block.unwrap(), batch)
    }
}

fn feed_block(r: &mut Relayer, b: &SealedBlock) -> Vec<RelayerAction> {
    r.handle(RelayerInput::SourceBlock {
        block: b.block.clone(),
        receipts: b.receipts.clone(),
    })
}

fn setup() -> (Chain, Chain, Relayer) {
    let (a, ga) = Chain::new(A);
    let (b, gb) = Chain::new(B);
    let mut r = Relayer::new(RelayerConfig::new(vec![A, B]).without_pipelining());
    assert!(feed_block(&mut r, &ga).is_empty());
    assert!(feed_block(&mut r, &gb).is_empty());
    (a, b, r)
}

fn imports(actions: &[RelayerAction]) -> Vec<ImportedRoot> {
    actions
        .iter()
        .filter_map(|a| match a {
            RelayerAction::Import { root, .. } => Some(root.clone()),
            _ => None,
        })
        .collect()
}

fn executes(actions: &[RelayerAction]) -> Vec<(Message, MessageProof)> {
    actions
        .iter()
        .filter_map(|a| match a {
            RelayerAction::Execute { message, proof, .. } => Some((message.clone(), proof.clone())),
            _ => None,
        })
        .collect()
}

fn id(source_chain: ChainId, nonce: u64) -> MessageId {
    MessageId {
        source_chain,
        nonce,
    }
}

#[test]
fn a_source_lying_about_its_local_root_is_rejected_and_changes_nothing() {
    let (mut a, _b, mut r) = setup();
    a.send(B, ImportKind::Precommit);
    let (block, _) = a.tick();

    let mut lying = block.clone();
    lying.block.header.localRoot = B256::repeat_byte(0x11);
    let out = feed_block(&mut r, &lying);
    assert!(
        matches!(
            &out[..],
            [RelayerAction::Error(RelayerError::LocalRootMismatch {
                chain: A,
                block: 1,
                ..
            })]
        ),
        "{out:?}"
    );
    // receipts that hide the message do not match the header either
    let mut hidden = block.clone();
    hidden.receipts.iter_mut().for_each(|r| r.logs.clear());
    let out = feed_block(&mut r, &hidden);
    assert!(
        matches!(
            &out[..],
            [RelayerAction::Error(RelayerError::LocalRootMismatch {
                mirrored_count: 0,
                claimed_count: 1,
                ..
            })]
        ),
        "{out:?}"
    );
    assert_eq!(r.status(&id(A, 0)), None);
    assert_eq!(r.source_tree(A).unwrap().len(), 0);
    assert_eq!(r.last_block(A), Some(0));

    // the honest block is then accepted: the rejected ones left no trace
    let out = feed_block(&mut r, &block);
    assert_eq!(imports(&out).len(), 1, "{out:?}");
    assert_eq!(
        r.status(&id(A, 0)),
        Some(MessageStatus::Sent { at_block: 1 })
    );
    assert_eq!(
        r.source_tree(A).unwrap().root(),
        block.block.header.localRoot
    );
    // a replayed block is a copy of the one held (a backfill overlapping the feed): ignored
    assert!(feed_block(&mut r, &block).is_empty());
    assert_eq!(
        r.status(&id(A, 0)),
        Some(MessageStatus::Sent { at_block: 1 })
    );
    assert_eq!(r.source_tree(A).unwrap().len(), 1);
    assert_eq!(r.last_block(A), Some(1));
}

#[test]
fn each_root_is_imported_into_a_destination_at_most_once() {
    let (mut a, _b, mut r) = setup();
    a.send(B, ImportKind::Precommit);
    a.send(B, ImportKind::Precommit);
    a.send(B, ImportKind::Commit);
    let (b1, _) = a.tick();
    a.send(B, ImportKind::Commit);
    let (b2, batch) = a.tick();
    let batch = batch.unwrap();

    let mut all = vec![];
    all.extend(feed_block(&mut r, &b1));
    all.extend(feed_block(&mut r, &b2));
    all.extend(r.handle(RelayerInput::BatchSealed {
        header: batch.header.clone(),
    }));
    let committed = SlFact::BatchCommitted { chain: A, batch: 1 };
    all.extend(r.handle(RelayerInput::Sl(committed.clone())));
    all.extend(r.handle(RelayerInput::Sl(committed)));
    let roots = imports(&all);
    // precommit: one LocalRoot per block that sent precommit messages; commit: one batch root
    assert_eq!(
        roots,
        vec![
            ImportedRoot {
                kind: ImportKind::Precommit as u8,
                sourceChain: A,
                sourceHeight: 1,
                root: b1.block.header.localRoot,
                messageCount: 3,
            },
            ImportedRoot {
                kind: ImportKind::Commit as u8,
                sourceChain: A,
                sourceHeight: 1,
                root: batch.header.chainBatchRoot,
                messageCount: 4,
            },
        ]
    );
    assert_eq!(r.messages().count(), 4);
}

#[test]
fn execution_is_retried_only_after_the_shell_reports_it_dropped() {
    let (mut a, mut b, mut r) = setup();
    a.send(B, ImportKind::Precommit);
    let (a1, _) = a.tick();
    let out = feed_block(&mut r, &a1);
    let [root] = &imports(&out)[..] else {
        panic!("{out:?}")
    };
    b.seq.handle(SequencerInput::Import(root.clone()));
    let (b1, _) = b.tick();
    assert_eq!(b1.block.imports, vec![root.clone()]);
    let out = feed_block(&mut r, &b1);
    let [(message, proof)] = &executes(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(message.id(), id(A, 0));
    assert_eq!(r.status(&id(A, 0)), Some(MessageStatus::Submitted));
    verify_message_proof(b.seq.state(), message, proof).unwrap();

    // nothing new happens until the shell reports the transaction dropped
    let (b2, _) = b.tick();
    assert!(executes(&feed_block(&mut r, &b2)).is_empty());
    let (a2, _) = a.tick();
    assert!(executes(&feed_block(&mut r, &a2)).is_empty());
    let out = r.handle(RelayerInput::ExecuteDropped { id: id(A, 0) });
    let [(again, proof2)] = &executes(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!((again, proof2), (message, proof));
    assert_eq!(r.message(&id(A, 0)).unwrap().attempts, 2);

    // executed: a late drop report changes nothing
    b.execute(message, proof);
    let (b3, _) = b.tick();
    assert_eq!(b3.receipts[0].message_executed, Some(id(A, 0)));
    assert!(feed_block(&mut r, &b3).is_empty());
    assert_eq!(
        r.status(&id(A, 0)),
        Some(MessageStatus::Executed { dest_block: 3 })
    );
    assert!(r
        .handle(RelayerInput::ExecuteDropped { id: id(A, 0) })
        .is_empty());
    assert_eq!(r.pending_messages().count(), 0);
}

/// Generated seed 364: two council reverts of the destination each withdrew a message's
/// execution, each counted as a refusal, and the backoff pushed the next attempt past the end
/// of the run. An execution a roll-back undid is retried at once, however often it happened;
/// a refusal still backs off.
#[test]
fn an_execution_a_rollback_undid_is_retried_at_once_and_a_refusal_backs_off() {
    let (mut a, mut b, mut r) = setup();
    r.handle(RelayerInput::Tick { now_ms: 1_000 });
    a.send(B, ImportKind::Precommit);
    let (a1, _) = a.tick();
    let out = feed_block(&mut r, &a1);
    let [root] = &imports(&out)[..] else {
        panic!("{out:?}")
    };
    b.seq.handle(SequencerInput::Import(root.clone()));
    let (b1, _) = b.tick();
    let out = feed_block(&mut r, &b1);
    assert_eq!(executes(&out).len(), 1, "{out:?}");
    // undone three times: each time the execution goes out again at once
    for attempt in 2..=4 {
        let out = r.handle(RelayerInput::ExecuteUndone { id: id(A, 0) });
        assert_eq!(executes(&out).len(), 1, "attempt {attempt}: {out:?}");
        assert_eq!(r.message(&id(A, 0)).unwrap().attempts, attempt);
    }
    // a refusal after those waits for its backoff
    let out = r.handle(RelayerInput::ExecuteDropped { id: id(A, 0) });
    assert!(executes(&out).is_empty(), "{out:?}");
    assert_ne!(r.status(&id(A, 0)), Some(MessageStatus::Submitted));
}

fn secret(tag: &str) -> B256 {
    alloy_primitives::keccak256(tag.as_bytes())
}

fn addr(secret: &B256) -> Address {
    TxSigner::from_secret(*secret).unwrap().address()
}

/// An SL with A and B registered, and the events of its first block.
fn sl_with(genesis: &[(ChainId, &SealedBlock)]) -> (SettlementLayer, Vec<SlEvent>) {
    let council = secret("council");
    let mut config = SlConfig::new(addr(&council));
    config.sl_block_time_ms = 1_000;
    let mut sl = SettlementLayer::new(config, Box::new(ReExecution::new())).unwrap();
    for (i, (id, g)) in genesis.iter().enumerate() {
        let call = SlCall::RegisterChain(ChainGenesis {
            chain_id: *id,
            operator: addr(&secret("operator")),
            alloc: alloc(),
            genesis_header: g.block.header.clone(),
        });
        let tx = SlTx::sign(&council, i as u64, call).unwrap();
        assert!(sl.handle(SlInput::Submit(Box::new(tx))).is_empty());
    }
    let events = sl.handle(SlInput::Tick { now_ms: 0 });
    (sl, events)
}

/// Submits `call` as the operator and produces an SL block; returns its events.
fn sl_step(sl: &mut SettlementLayer, now: u64, call: SlCall) -> Vec<SlEvent> {
    let key = secret("operator");
    let tx = SlTx::sign(&key, sl.nonce(&addr(&key)), call).unwrap();
    assert!(sl.handle(SlInput::Submit(Box::new(tx))).is_empty());
    sl.handle(SlInput::Tick { now_ms: now })
}

#[test]
fn proof_mode_proofs_verify_against_the_imported_message_root() {
    let (mut a, ga) = Chain::new(A);
    let (mut b, gb) = Chain::new(B);
    let (mut sl, events) = sl_with(&[(A, &ga), (B, &gb)]);
    let mut r = Relayer::new(RelayerConfig::new(vec![A, B]).without_pipelining());
    feed_block(&mut r, &ga);
    feed_block(&mut r, &gb);
    for e in &events {
        assert!(r.observe_sl(e).is_empty());
    }
    a.send(B, ImportKind::Proof);
    let (a1, _) = a.tick();
    let (a2, batch) = a.tick();
    let batch = batch.unwrap();
    let mut out = feed_block(&mut r, &a1);
    out.extend(feed_block(&mut r, &a2));
    out.extend(r.handle(RelayerInput::BatchSealed {
        header: batch.header.clone(),
    }));
    let calls = [
        SlCall::CommitBatch {
            header: batch.header.clone(),
            imports: vec![],
            blocks: batch.blocks.clone(),
        },
        SlCall::ProveBatch {
            chain_id: A,
            batch: 1,
            proof: Bytes::new(),
        },
        SlCall::ExecuteBatch {
            chain_id: A,
            batch: 1,
            extension_proofs: vec![],
        },
    ];
    let mut t = 1_000;
    for call in calls {
        // no import before the batch executed
        assert!(imports(&out).is_empty(), "{out:?}");
        let events = sl_step(&mut sl, t, call);
        t += 1_000;
        out = events.iter().flat_map(|e| r.observe_sl(e)).collect();
    }
    assert!(r.message_root_in_sync());
    assert_eq!(r.message_root_tree().root(), sl.message_tree().root());
    let [root] = &imports(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(root.sourceChain, SETTLEMENT_LAYER_CHAIN_ID);
    assert_eq!(root.root, sl.message_tree().root());
    assert_eq!((root.sourceHeight, root.messageCount), (sl.height(), 1));

    b.seq.handle(SequencerInput::Import(root.clone()));
    let (b1, _) = b.tick();
    let out = feed_block(&mut r, &b1);
    let [(message, proof)] = &executes(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(proof.kind, ImportKind::Proof as u8);
    assert_eq!(proof.chainBatchRoot, batch.header.chainBatchRoot);
    verify_message_proof(b.seq.state(), message, proof).unwrap();
    // the proof is checked, not trusted: a wrong batch root fails
    let mut bad = proof.clone();
    bad.chainBatchRoot = B256::repeat_byte(3);
    assert!(verify_message_proof(b.seq.state(), message, &bad).is_err());
    b.execute(message, proof);
    let (b2, _) = b.tick();
    assert_eq!(b2.receipts[0].message_executed, Some(message.id()));
    feed_block(&mut r, &b2);
    assert_eq!(
        r.status(&message.id()),
        Some(MessageStatus::Executed { dest_block: 2 })
    );
}

#[test]
fn a_settlement_layer_root_that_differs_from_the_mirror_is_reported() {
    let (mut a, _b, mut r) = setup();
    a.send(B, ImportKind::Proof);
    let (a1, _) = a.tick();
    let (a2, batch) = a.tick();
    feed_block(&mut r, &a1);
    feed_block(&mut r, &a2);
    r.handle(RelayerInput::BatchSealed {
        header: batch.unwrap().header,
    });
    let out = r.handle(RelayerInput::Sl(SlFact::BatchExecuted {
        chain: A,
        batch: 1,
        leaf_index: 0,
        message_root: B256::repeat_byte(9),
        header: None,
    }));
    // the proof-mode message can no longer be proven: reported undeliverable, the system's fault
    let reason = Undeliverable::MessageRootDiverged;
    assert!(
        matches!(
            &out[..],
            [
                RelayerAction::Error(RelayerError::MessageRootMismatch { .. }),
                RelayerAction::Error(RelayerError::Undeliverable { id: i, reason: r })
            ] if *i == id(A, 0) && *r == reason
        ),
        "{out:?}"
    );
    assert_eq!(reason.fault(), Fault::System);
    assert_eq!(
        r.delivery(&id(A, 0)),
        Some(DeliveryState::Undeliverable(reason))
    );
    assert!(!r.message_root_in_sync());
    assert_eq!(r.message_root_tree().len(), 0);
    // no proof-mode import is ever built on a diverged mirror
    let out = r.handle(RelayerInput::Sl(SlFact::SlBlock {
        height: 5,
        message_root: B256::repeat_byte(9),
        message_root_size: 1,
    }));
    assert!(imports(&out).is_empty());
}

#[test]
fn a_reverted_source_is_forgotten_and_its_resequenced_blocks_are_followed() {
    let (mut a, _b, mut r) = setup();
    let (a1, _) = a.tick();
    a.send(B, ImportKind::Precommit);
    let (a2, batch1) = a.tick();
    a.send(B, ImportKind::Commit);
    let (a3, _) = a.tick();
    feed_block(&mut r, &a1);
    feed_block(&mut r, &a2);
    r.handle(RelayerInput::BatchSealed {
        header: batch1.unwrap().header,
    });
    feed_block(&mut r, &a3);
    assert_eq!(r.messages().count(), 2);
    // batch 2 (blocks 3..) reverted: message 1 is forgotten, message 0 kept
    r.handle(RelayerInput::Sl(SlFact::BatchesReverted {
        chain: A,
        from: 2,
        first_block: 3,
    }));
    assert_eq!(r.status(&id(A, 1)), None);
    assert!(r.status(&id(A, 0)).is_some());
    assert_eq!(r.source_tree(A).unwrap().len(), 1);
    assert_eq!(r.last_block(A), Some(2));
    // the re-sequenced chain's block 3 is accepted and re-sends the message
    a.seq.revert_to(1, |_| false).unwrap();
    let (a3b, _) = a.tick();
    assert_eq!(a3b.block.header.number, 3);
    assert!(feed_block(&mut r, &a3b)
        .iter()
        .all(|x| !matches!(x, RelayerAction::Error(_))));
    assert_eq!(
        r.status(&id(A, 1)),
        Some(MessageStatus::Sent { at_block: 3 })
    );
}

#[test]
fn pipelined_execution_lands_in_the_same_block_as_its_import() {
    let (mut a, mut b, _) = setup();
    let mut r = Relayer::new(RelayerConfig::new(vec![A, B]));
    // a pipelining relayer, fed the same genesis blocks
    let (_, ga) = Chain::new(A);
    let (_, gb) = Chain::new(B);
    feed_block(&mut r, &ga);
    feed_block(&mut r, &gb);
    a.send(B, ImportKind::Precommit);
    let (a1, _) = a.tick();
    let out = feed_block(&mut r, &a1);
    let [root] = &imports(&out)[..] else {
        panic!("{out:?}")
    };
    let [(message, proof)] = &executes(&out)[..] else {
        panic!("{out:?}")
    };
    // the shell applies the import, then submits the execution: one destination block holds both
    b.seq.handle(SequencerInput::Import(root.clone()));
    b.execute(message, proof);
    let (b1, _) = b.tick();
    assert_eq!(b1.block.imports, vec![root.clone()]);
    assert_eq!(b1.receipts[0].message_executed, Some(id(A, 0)));
    feed_block(&mut r, &b1);
    assert_eq!(
        r.status(&id(A, 0)),
        Some(MessageStatus::Executed { dest_block: 1 })
    );

    // if the import did not make it, the retry waits until the import is seen landed
    a.send(B, ImportKind::Precommit);
    let (a2, _) = a.tick();
    let out = feed_block(&mut r, &a2);
    let [root2] = &imports(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(executes(&out).len(), 1);
    let out = r.handle(RelayerInput::ExecuteDropped { id: id(A, 1) });
    assert!(executes(&out).is_empty(), "no blind retry: {out:?}");
    b.seq.handle(SequencerInput::Import(root2.clone()));
    let (b2, _) = b.tick();
    let out = feed_block(&mut r, &b2);
    assert_eq!(executes(&out).len(), 1, "retried once the import landed");
}

#[test]
fn qc_mode_waits_for_a_certified_block_then_imports_its_local_root_and_asks_for_postconfirmation() {
    let (mut a, mut b, mut r) = setup();
    a.send(B, ImportKind::Qc);
    let (a1, _) = a.tick();
    let out = feed_block(&mut r, &a1);
    assert!(imports(&out).is_empty(), "no QC yet: {out:?}");
    // an earlier block being certified does not cover a message of block 1
    let genesis_hash = Chain::new(A).1.block.header.hash();
    let out = r.handle(RelayerInput::Certified {
        chain: A,
        height: 0,
        block_hash: genesis_hash,
    });
    assert!(imports(&out).is_empty(), "{out:?}");
    // a certificate for another block at height 1 (one a revert replaced) is ignored
    let out = r.handle(RelayerInput::Certified {
        chain: A,
        height: 1,
        block_hash: B256::repeat_byte(1),
    });
    assert!(imports(&out).is_empty(), "{out:?}");
    let out = r.handle(RelayerInput::Certified {
        chain: A,
        height: 1,
        block_hash: a1.block.header.hash(),
    });
    let [root] = &imports(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(root.kind, ImportKind::Qc as u8);
    assert_eq!(
        (root.sourceChain, root.sourceHeight, root.root),
        (A, 1, a1.block.header.localRoot)
    );
    assert!(
        out.contains(&RelayerAction::Postconfirm {
            chain: A,
            height: 1
        }),
        "{out:?}"
    );
    // the destination imports it; the proof verifies there; a precommit proof would be too weak
    b.seq.handle(SequencerInput::Import(root.clone()));
    let (b1, _) = b.tick();
    let out = feed_block(&mut r, &b1);
    let [(message, proof)] = &executes(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(proof.kind, ImportKind::Qc as u8);
    verify_message_proof(b.seq.state(), message, proof).unwrap();
    let mut weaker = proof.clone();
    weaker.kind = ImportKind::Precommit as u8;
    assert!(verify_message_proof(b.seq.state(), message, &weaker).is_err());
    b.execute(message, proof);
    let (b2, _) = b.tick();
    assert_eq!(b2.receipts[0].message_executed, Some(id(A, 0)));
    // a second message of the same block asks for no second postconfirmation
    let out = feed_block(&mut r, &b2);
    assert!(
        !out.iter()
            .any(|a| matches!(a, RelayerAction::Postconfirm { .. })),
        "{out:?}"
    );
}

mod aggregated {
    //! `aggregated` mode: a real aggregator (re-execution backend) proves checkpoint 1 of a
    //! tree over A and B; the relayer imports the node above both and executes against it.
    use super::*;
    use braid_aggregator::{AggregatorState, LeafInput, ReexecBackend, TreeShape};

    const K: u64 = 2;

    fn tree_chain(id: ChainId) -> (Chain, SealedBlock) {
        let mut c = SequencerConfig::new(id);
        c.batch_blocks = 2;
        c.checkpoint_blocks = Some(K);
        let (seq, genesis) = Sequencer::genesis(c, &alloc()).unwrap();
        (Chain { seq, now: 0 }, genesis)
    }

    /// Checkpoint 1 of the tree: the chains' genesis hashes, then `at_1` (A's and B's block
    /// hashes at block 2).
    fn checkpoint_one(genesis: [B256; 2], at_1: [B256; 2]) -> Arc<TreeSnapshot> {
        let shape = TreeShape::new(2).unwrap();
        let mut state = AggregatorState::genesis(&KeccakHasher, shape, &genesis).unwrap();
        let leaves: Vec<LeafInput> = (0..2)
            .map(|i| LeafInput {
                chain: i as u32,
                checkpoint: 1,
                prev_block_hash: genesis[i],
                block_hash: at_1[i],
                imports: vec![],
            })
            .collect();
        state
            .aggregate(&ReexecBackend::new(shape), &leaves)
            .unwrap();
        Arc::new(state.snapshot().clone())
    }

    #[test]
    fn a_message_executes_against_the_tree_node_above_both_chains() {
        let (mut a, ga) = tree_chain(A);
        let (mut b, gb) = tree_chain(B);
        let view = AggregationView {
            chains: vec![A, B],
            checkpoint_blocks: K,
            aggregator_timeout_ms: None,
        };
        let mut r = Relayer::new(
            RelayerConfig::new(vec![A, B])
                .with_aggregation(view)
                .without_pipelining(),
        );
        feed_block(&mut r, &ga);
        feed_block(&mut r, &gb);
        a.send(B, ImportKind::Aggregated);
        let mut last = [B256::ZERO; 2];
        for _ in 0..2 {
            let (blk, _) = a.tick();
            last[0] = blk.hash;
            assert!(imports(&feed_block(&mut r, &blk)).is_empty());
            let (blk, _) = b.tick();
            last[1] = blk.hash;
            feed_block(&mut r, &blk);
        }
        let id = r.pending_messages().next().unwrap().message.id();
        let genesis = [ga.hash, gb.hash];

        // a snapshot whose node hash does not follow from its children is ignored
        let honest = checkpoint_one(genesis, last);
        let mut tampered = (*honest).clone();
        tampered.nodes[0][0].hash = B256::repeat_byte(0x66);
        let tree_level = |snapshot| RelayerInput::TreeLevelProven {
            checkpoint: 1,
            level: 1,
            snapshot,
        };
        assert!(imports(&r.handle(tree_level(Arc::new(tampered)))).is_empty());
        // so is a consistent one that kept A at its genesis block (its statement withheld)
        let withheld = checkpoint_one(genesis, [ga.hash, last[1]]);
        assert!(imports(&r.handle(tree_level(withheld))).is_empty());
        assert_eq!(r.status(&id), Some(MessageStatus::Sent { at_block: 1 }));

        // the honest tree: import node (1, 0) at checkpoint 1
        let got = imports(&r.handle(tree_level(honest.clone())));
        let node = honest.nodes[0][0].hash;
        assert_eq!(
            got,
            vec![ImportedRoot {
                kind: ImportKind::Aggregated as u8,
                sourceChain: 0,
                sourceHeight: 1,
                root: node,
                messageCount: 1,
            }]
        );
        let out = b.seq.handle(SequencerInput::Import(got[0].clone()));
        assert!(
            !out.iter()
                .any(|o| matches!(o, SequencerOutput::ImportRejected { .. })),
            "{out:?}"
        );
        // B's block 3 (checkpoint 2) applies it; the relayer then executes with a path
        let (blk, _) = b.tick();
        assert_eq!(blk.block.imports, got);
        let actions = feed_block(&mut r, &blk);
        let ex = executes(&actions);
        assert_eq!(ex.len(), 1, "{actions:?}");
        let (message, proof) = &ex[0];
        assert_eq!(proof.kind, ImportKind::Aggregated as u8);
        verify_message_proof(b.seq.state(), message, proof).unwrap();
        // a path to another node hash does not verify
        let mut wrong = proof.clone();
        wrong.root = B256::repeat_byte(0x77);
        assert!(verify_message_proof(b.seq.state(), message, &wrong).is_err());
        b.execute(message, proof);
        let (blk, _) = b.tick();
        feed_block(&mut r, &blk);
        assert!(matches!(
            r.status(&id),
            Some(MessageStatus::Executed { dest_block: 4 })
        ));
    }
}

/// Commits, proves and executes `batch` of A on `sl` (from SL time `t`), feeding the relayer
/// every SL event; returns the relayer's actions.
fn settle_on_sl(
    sl: &mut SettlementLayer,
    r: &mut Relayer,
    t: u64,
    batch: &SealedBatch,
) -> Vec<RelayerAction> {
    let calls = [
        SlCall::CommitBatch {
            header: batch.header.clone(),
            imports: vec![],
            blocks: batch.blocks.clone(),
        },
        SlCall::ProveBatch {
            chain_id: batch.header.chainId,
            batch: batch.header.number,
            proof: Bytes::new(),
        },
        SlCall::ExecuteBatch {
            chain_id: batch.header.chainId,
            batch: batch.header.number,
            extension_proofs: vec![],
        },
    ];
    let mut out = vec![];
    for (call, i) in calls.into_iter().zip(0u64..) {
        let events = sl_step(sl, t + i * 1_000, call);
        out.extend(r.observe_sl_block(&events));
    }
    out
}

#[test]
fn a_dropped_execution_is_retried_past_the_old_limit_and_delivered_once_the_sl_root_appears() {
    let (mut a, ga) = Chain::new(A);
    let (mut b, gb) = Chain::new(B);
    let (mut sl, events) = sl_with(&[(A, &ga), (B, &gb)]);
    let mut r = Relayer::new(
        RelayerConfig::new(vec![A, B])
            .without_pipelining()
            .with_retry_backoff(100, 1_000),
    );
    feed_block(&mut r, &ga);
    feed_block(&mut r, &gb);
    r.observe_sl_block(&events);
    a.send(B, ImportKind::Precommit);
    let (a1, _) = a.tick();
    let (a2, batch) = a.tick();
    let batch = batch.unwrap();
    let out = feed_block(&mut r, &a1);
    let [root] = &imports(&out)[..] else {
        panic!("{out:?}")
    };
    feed_block(&mut r, &a2);
    r.handle(RelayerInput::BatchSealed {
        header: batch.header.clone(),
    });
    b.seq.handle(SequencerInput::Import(root.clone()));
    let (b1, _) = b.tick();
    let out = feed_block(&mut r, &b1);
    assert_eq!(executes(&out).len(), 1, "{out:?}");
    let m = id(A, 0);

    // the destination keeps dropping the execution: it is retried without a limit, the first
    // retry at once, later ones after a doubling, capped delay, against the precommit root
    assert_eq!(
        (1..=7)
            .map(|d| r.config().retry_delay_ms(d))
            .collect::<Vec<_>>(),
        vec![0, 100, 200, 400, 800, 1_000, 1_000]
    );
    let mut now = 0;
    for drop in 1..=24u32 {
        let out = r.handle(RelayerInput::ExecuteDropped { id: m });
        let delay = r.config().retry_delay_ms(drop);
        let out = if delay == 0 {
            out
        } else {
            assert!(
                executes(&out).is_empty(),
                "drop {drop}: no retry before the backoff"
            );
            assert_eq!(
                r.delivery(&m),
                Some(DeliveryState::Waiting(WaitReason::Backoff {
                    retry_at_ms: now + delay,
                    drops: drop
                }))
            );
            let early = r.handle(RelayerInput::Tick {
                now_ms: now + delay - 1,
            });
            assert!(executes(&early).is_empty(), "drop {drop}: {early:?}");
            now += delay;
            r.handle(RelayerInput::Tick { now_ms: now })
        };
        let [(_, proof)] = &executes(&out)[..] else {
            panic!("drop {drop}: {out:?}")
        };
        assert_eq!(proof.kind, ImportKind::Precommit as u8);
        assert_eq!(r.message(&m).unwrap().attempts, drop + 1);
        assert_eq!(
            r.delivery(&m),
            Some(DeliveryState::Waiting(WaitReason::ExecutionInFlight))
        );
    }
    assert!(!out_has_error(
        &r.handle(RelayerInput::Tick { now_ms: now })
    ));

    // the source batch executes on the SL: the next retry moves to the SL MessageRoot
    let out = settle_on_sl(&mut sl, &mut r, 1_000, &batch);
    assert!(
        imports(&out).is_empty() && executes(&out).is_empty(),
        "{out:?}"
    );
    let out = r.handle(RelayerInput::ExecuteDropped { id: m });
    assert!(executes(&out).is_empty());
    now += r.config().retry_delay_ms(25);
    let out = r.handle(RelayerInput::Tick { now_ms: now });
    let [sl_root] = &imports(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(sl_root.kind, ImportKind::Proof as u8);
    assert_eq!(sl_root.root, sl.message_tree().root());
    assert!(executes(&out).is_empty(), "the retry waits for the import");
    assert_eq!(
        r.delivery(&m),
        Some(DeliveryState::Waiting(WaitReason::ImportPending))
    );
    b.seq.handle(SequencerInput::Import(sl_root.clone()));
    let (b2, _) = b.tick();
    let out = feed_block(&mut r, &b2);
    let [(message, proof)] = &executes(&out)[..] else {
        panic!("{out:?}")
    };
    // a precommit message proven against the SL MessageRoot: the destination accepts it
    assert_eq!(proof.kind, ImportKind::Proof as u8);
    verify_message_proof(b.seq.state(), message, proof).unwrap();
    b.execute(message, proof);
    let (b3, _) = b.tick();
    assert_eq!(b3.receipts[0].message_executed, Some(m));
    feed_block(&mut r, &b3);
    assert_eq!(
        r.delivery(&m),
        Some(DeliveryState::Executed { dest_block: 3 })
    );
    assert_eq!(r.pending_messages().count(), 0);
}

fn out_has_error(out: &[RelayerAction]) -> bool {
    out.iter().any(|a| matches!(a, RelayerAction::Error(_)))
}

#[test]
fn a_qc_message_whose_block_is_never_certified_is_delivered_against_the_sl_root() {
    let (mut a, ga) = Chain::new(A);
    let (mut b, gb) = Chain::new(B);
    let (mut sl, events) = sl_with(&[(A, &ga), (B, &gb)]);
    let mut r = Relayer::new(RelayerConfig::new(vec![A, B]));
    feed_block(&mut r, &ga);
    feed_block(&mut r, &gb);
    r.observe_sl_block(&events);
    a.send(B, ImportKind::Qc);
    let (a1, _) = a.tick();
    let (a2, batch) = a.tick();
    let batch = batch.unwrap();
    let mut out = feed_block(&mut r, &a1);
    out.extend(feed_block(&mut r, &a2));
    out.extend(r.handle(RelayerInput::BatchSealed {
        header: batch.header.clone(),
    }));
    assert!(out.is_empty(), "{out:?}");
    let m = id(A, 0);
    assert_eq!(
        r.delivery(&m),
        Some(DeliveryState::Waiting(WaitReason::BlockNotCertified))
    );
    // no certificate ever comes; the batch settles on the SL
    let out = settle_on_sl(&mut sl, &mut r, 1_000, &batch);
    let [root] = &imports(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(root.kind, ImportKind::Proof as u8);
    // pipelined with its import, as for any first attempt
    let [(message, proof)] = &executes(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(proof.kind, ImportKind::Proof as u8);
    b.seq.handle(SequencerInput::Import(root.clone()));
    b.execute(message, proof);
    let (b1, _) = b.tick();
    assert_eq!(b1.receipts[0].message_executed, Some(m));
    feed_block(&mut r, &b1);
    assert_eq!(
        r.delivery(&m),
        Some(DeliveryState::Executed { dest_block: 1 })
    );
}

#[test]
fn a_message_to_an_unknown_chain_is_reported_undeliverable_once_and_a_withdrawal_is_left_to_the_sl()
{
    let (mut a, _b, mut r) = setup();
    a.send(777, ImportKind::Precommit);
    a.send(SETTLEMENT_LAYER_CHAIN_ID, ImportKind::Proof);
    let (a1, _) = a.tick();
    let out = feed_block(&mut r, &a1);
    let reason = Undeliverable::UnknownDestination { dest: 777 };
    assert_eq!(
        out,
        vec![RelayerAction::Error(RelayerError::Undeliverable {
            id: id(A, 0),
            reason
        })]
    );
    assert_eq!(reason.fault(), Fault::Sender);
    assert_eq!(
        r.delivery(&id(A, 0)),
        Some(DeliveryState::Undeliverable(reason))
    );
    assert_eq!(
        r.delivery(&id(A, 1)),
        Some(DeliveryState::Waiting(WaitReason::ClaimedOnSettlementLayer))
    );
    assert_eq!(r.undeliverable_messages().count(), 1);
    // reported once
    let (a2, _) = a.tick();
    assert!(!out_has_error(&feed_block(&mut r, &a2)));
    assert!(!out_has_error(
        &r.handle(RelayerInput::Tick { now_ms: 60_000 })
    ));
}

#[test]
fn an_execution_undone_by_a_destination_revert_that_does_not_come_back_is_retried() {
    let (mut a, mut b, mut r) = setup();
    a.send(B, ImportKind::Precommit);
    let (a1, _) = a.tick();
    let out = feed_block(&mut r, &a1);
    let [root] = &imports(&out)[..] else {
        panic!("{out:?}")
    };
    b.seq.handle(SequencerInput::Import(root.clone()));
    let (b1, _) = b.tick();
    let out = feed_block(&mut r, &b1);
    let [(message, proof)] = &executes(&out)[..] else {
        panic!("{out:?}")
    };
    b.execute(message, proof);
    let (b2, _) = b.tick();
    feed_block(&mut r, &b2);
    let m = id(A, 0);
    assert_eq!(
        r.delivery(&m),
        Some(DeliveryState::Executed { dest_block: 2 })
    );
    // B reverts its blocks from 1 on: the execution is undone; the relayer expects the
    // re-sequenced chain to include it again, for a while
    r.handle(RelayerInput::Tick { now_ms: 1_000 });
    let out = r.handle(RelayerInput::Sl(SlFact::BatchesReverted {
        chain: B,
        from: 1,
        first_block: 1,
    }));
    assert!(executes(&out).is_empty(), "{out:?}");
    assert_eq!(
        r.delivery(&m),
        Some(DeliveryState::Waiting(WaitReason::ExecutionInFlight))
    );
    let max = r.config().retry_max_ms;
    assert!(executes(&r.handle(RelayerInput::Tick {
        now_ms: 1_000 + max - 1
    }))
    .is_empty());
    // not seen again: it counts as dropped, and waits for its import to land again — asked
    // for again, since the block that held it is gone (the old request was answered by it)
    let out = r.handle(RelayerInput::Tick {
        now_ms: 1_000 + max,
    });
    assert!(executes(&out).is_empty(), "{out:?}");
    assert_eq!(imports(&out), vec![root.clone()], "{out:?}");
    assert_eq!(
        r.delivery(&m),
        Some(DeliveryState::Waiting(WaitReason::ImportPending))
    );
    // the re-sequenced B re-imports the root without the old transaction: executed again
    let (mut b_again, _) = Chain::new(B);
    b_again.seq.handle(SequencerInput::Import(root.clone()));
    let (b1_again, _) = b_again.tick();
    let out = feed_block(&mut r, &b1_again);
    let [(again, proof2)] = &executes(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(again.id(), m);
    verify_message_proof(b_again.seq.state(), again, proof2).unwrap();
    assert_eq!(r.message(&m).unwrap().attempts, 2);
}

fn backfills(actions: &[RelayerAction]) -> Vec<(ChainId, BlockNumber)> {
    actions
        .iter()
        .filter_map(|a| match a {
            RelayerAction::Backfill { chain, from } => Some((*chain, *from)),
            _ => None,
        })
        .collect()
}

fn errors(actions: &[RelayerAction]) -> Vec<RelayerError> {
    actions
        .iter()
        .filter_map(|a| match a {
            RelayerAction::Error(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_gap_is_backfilled_and_the_chain_recovers() {
    let (mut a, _b, mut r) = setup();
    let (a1, _) = a.tick();
    a.send(B, ImportKind::Precommit);
    let (a2, batch1) = a.tick();
    let (a3, _) = a.tick();
    let header = batch1.unwrap().header;
    feed_block(&mut r, &a1);
    // block 2 lost: block 3 is a gap, not accepted; the blocks from 2 are asked for
    let out = feed_block(&mut r, &a3);
    assert_eq!(backfills(&out), vec![(A, 2)], "{out:?}");
    assert!(matches!(
        &errors(&out)[..],
        [RelayerError::BlockOutOfOrder {
            expected: 2,
            got: 3,
            ..
        }]
    ));
    assert_eq!(r.last_block(A), Some(1));
    assert_eq!(r.status(&id(A, 0)), None);
    // the batch header of blocks 1..=2 waits for block 2
    let out = r.handle(RelayerInput::BatchSealed {
        header: header.clone(),
    });
    assert!(errors(&out).is_empty(), "{out:?}");
    assert!(r.batch_of_block(A, 1).is_none());
    // asked again only once the retry interval passed (by the shell's clock)
    assert!(backfills(&feed_block(&mut r, &a3)).is_empty());
    assert!(backfills(&r.handle(RelayerInput::Tick { now_ms: 500 })).is_empty());
    let out = r.handle(RelayerInput::Tick { now_ms: 1_000 });
    assert_eq!(backfills(&out), vec![(A, 2)], "{out:?}");
    // the answer: blocks 2 and 3 (and the header again)
    let out = feed_block(&mut r, &a2);
    assert!(errors(&out).is_empty(), "{out:?}");
    assert_eq!(imports(&out).len(), 1, "{out:?}");
    assert_eq!(
        r.status(&id(A, 0)),
        Some(MessageStatus::Sent { at_block: 2 })
    );
    // the held header was accepted with its last block
    assert_eq!(r.batch_of_block(A, 1), Some(&header));
    assert!(r
        .handle(RelayerInput::BatchSealed { header })
        .iter()
        .all(|x| !matches!(x, RelayerAction::Error(_))));
    assert!(errors(&feed_block(&mut r, &a3)).is_empty());
    assert_eq!(r.last_block(A), Some(3));
    // resynchronised: nothing is asked any more
    assert!(backfills(&r.handle(RelayerInput::Tick { now_ms: 10_000 })).is_empty());
    let (a4, _) = a.tick();
    assert!(feed_block(&mut r, &a4).is_empty());
}

#[test]
fn a_block_on_another_branch_rolls_the_mirror_back_and_the_canonical_blocks_are_followed() {
    let (mut a, _b, mut r) = setup();
    let (a1, _) = a.tick();
    feed_block(&mut r, &a1);
    // the sequencer equivocates at block 2: h (with a message) to the relayer, h' (empty)
    // continued, which closes batch 1
    let mut twin = Chain {
        seq: a.seq.clone(),
        now: a.now,
    };
    a.send(B, ImportKind::Precommit);
    let (h, _) = a.tick();
    let (h2, batch1) = twin.tick();
    let (h3, _) = twin.tick();
    assert_eq!(h.block.header.number, 2);
    assert_eq!(h2.block.header.number, 2);
    assert_ne!(h.block.header.hash(), h2.block.header.hash());
    let header = batch1.unwrap().header;
    assert_eq!(header.lastBlock, 2);
    feed_block(&mut r, &h);
    assert!(r.status(&id(A, 0)).is_some());
    assert_eq!(r.source_tree(A).unwrap().len(), 1);
    // the header of h' contradicts h: reported and held; a header alone rolls nothing back
    let out = r.handle(RelayerInput::BatchSealed {
        header: header.clone(),
    });
    assert!(matches!(
        &errors(&out)[..],
        [RelayerError::BadBatchHeader { batch: 1, .. }]
    ));
    assert!(backfills(&out).is_empty(), "{out:?}");
    assert_eq!(r.last_block(A), Some(2));
    assert!(r.batch_of_block(A, 2).is_none());
    // block 3 of the other branch: parent mismatch, h forgotten with its message, and the
    // canonical blocks from 2 asked for
    let out = feed_block(&mut r, &h3);
    assert!(matches!(
        &errors(&out)[..],
        [RelayerError::ParentMismatch { block: 3, .. }]
    ));
    assert_eq!(backfills(&out), vec![(A, 2)], "{out:?}");
    assert_eq!(r.last_block(A), Some(1));
    assert_eq!(r.status(&id(A, 0)), None);
    assert_eq!(r.source_tree(A).unwrap().len(), 0);
    // block 3 again before the answer: a gap now, not accepted, not asked for again yet
    let out = feed_block(&mut r, &h3);
    assert!(!errors(&out).is_empty(), "{out:?}");
    assert!(backfills(&out).is_empty(), "{out:?}");
    assert_eq!(r.last_block(A), Some(1));
    // the answer: h', block 3; the held header is accepted with h'
    assert!(errors(&feed_block(&mut r, &h2)).is_empty());
    assert_eq!(r.batch_of_block(A, 2), Some(&header));
    assert!(errors(&feed_block(&mut r, &h3)).is_empty());
    assert_eq!(r.last_block(A), Some(3));
    assert_eq!(r.messages().count(), 0);
    // the canonical chain's first message (nonce 0 again) is learned as its own
    twin.send(B, ImportKind::Precommit);
    let (c4, _) = twin.tick();
    let out = feed_block(&mut r, &c4);
    assert!(errors(&out).is_empty(), "{out:?}");
    assert_eq!(
        r.status(&id(A, 0)),
        Some(MessageStatus::Sent { at_block: 4 })
    );
    assert_eq!(imports(&out).len(), 1, "{out:?}");
    assert_eq!(imports(&out)[0].root, c4.block.header.localRoot);
    // resynchronised: nothing is asked any more
    assert!(backfills(&r.handle(RelayerInput::Tick { now_ms: 10_000 })).is_empty());
}

#[test]
fn a_header_is_held_until_its_blocks_arrive_and_the_message_root_mirror_resumes() {
    let (mut a, _b, mut r) = setup();
    a.send(B, ImportKind::Proof);
    let (a1, _) = a.tick();
    let (a2, batch1) = a.tick();
    let header = batch1.unwrap().header;
    feed_block(&mut r, &a1);
    // the header arrives before its last block (lost on the way): held, block 2 asked for
    let out = r.handle(RelayerInput::BatchSealed {
        header: header.clone(),
    });
    assert!(errors(&out).is_empty(), "{out:?}");
    assert_eq!(backfills(&out), vec![(A, 2)], "{out:?}");
    assert!(r.batch_of_block(A, 1).is_none());
    // the batch executes on the SL meanwhile: the global mirror waits for the header instead
    // of stopping
    let mut global = MessageTree::new();
    global
        .append(message_root_leaf(
            A,
            1,
            header.chainBatchRoot,
            header.messageCount,
        ))
        .unwrap();
    let out = r.observe_sl_block(&[
        SlEvent::BatchExecuted {
            chain: A,
            batch: 1,
            leaf_index: 0,
            message_root: global.root(),
        },
        SlEvent::SlBlock {
            height: 1,
            timestamp_ms: 1_000,
            message_root: global.root(),
            message_root_size: 1,
        },
    ]);
    assert!(matches!(
        &errors(&out)[..],
        [RelayerError::MissingBatchHeader { batch: 1, .. }]
    ));
    assert!(r.message_root_in_sync());
    assert_eq!(r.message_root_tree().len(), 0);
    // block 2 arrives: the header is accepted and the leaf appended
    let out = feed_block(&mut r, &a2);
    assert!(errors(&out).is_empty(), "{out:?}");
    assert_eq!(r.batch_of_block(A, 2), Some(&header));
    assert!(r.message_root_in_sync());
    assert_eq!(r.message_root_tree().root(), global.root());
    // the next SL block matches the mirror: the message gets its proof-mode import
    let out = r.observe_sl_block(&[SlEvent::SlBlock {
        height: 2,
        timestamp_ms: 2_000,
        message_root: global.root(),
        message_root_size: 1,
    }]);
    assert!(errors(&out).is_empty(), "{out:?}");
    assert_eq!(imports(&out).len(), 1, "{out:?}");
    assert_eq!(imports(&out)[0].kind, ImportKind::Proof as u8);
}

#[test]
fn missed_sl_blocks_are_asked_for_again_and_applied_once() {
    let (_a, _b, mut r) = setup();
    let empty = MessageTree::new().root();
    let sl_block = |height: u64| SlEvent::SlBlock {
        height,
        timestamp_ms: height * 1_000,
        message_root: empty,
        message_root_size: 0,
    };
    let committed = |batch: u64| SlEvent::BatchCommitted {
        chain: A,
        batch,
        by: braid_settlement::Authority::Operator,
    };
    assert!(r.observe_sl_block(&[sl_block(1)]).is_empty());
    // block 2 lost: block 3 reveals the gap
    let out = r.observe_sl_block(&[committed(2), sl_block(3)]);
    assert!(
        out.contains(&RelayerAction::BackfillSl {
            from_height: 2,
            to_height: 2
        }),
        "{out:?}"
    );
    // not asked again before the retry interval
    assert!(r.observe_sl_block(&[sl_block(4)]).is_empty());
    let out = r.handle(RelayerInput::Tick { now_ms: 1_000 });
    assert_eq!(
        out,
        vec![RelayerAction::BackfillSl {
            from_height: 2,
            to_height: 2
        }]
    );
    // the missed block is applied; a copy of a block seen is ignored
    r.observe_sl_block(&[committed(1), sl_block(2)]);
    assert!(r.observe_sl_block(&[sl_block(3)]).is_empty());
    assert!(r.handle(RelayerInput::Tick { now_ms: 5_000 }).is_empty());
}
