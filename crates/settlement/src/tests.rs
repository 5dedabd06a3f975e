#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use alloy_primitives::{keccak256, Bytes};
use braid_execution::TxSigner;
use braid_proof::ReExecution;
use braid_sequencer::{SealedBatch, Sequencer, SequencerConfig, SequencerInput, SequencerOutput};

const CHAIN: ChainId = 901;

fn key(tag: &str) -> B256 {
    keccak256(tag.as_bytes())
}
fn addr(k: &B256) -> Address {
    TxSigner::from_secret(*k).unwrap().address()
}

struct Setup {
    sl: SettlementLayer,
    council: B256,
    operator: B256,
    batches: Vec<SealedBatch>,
    genesis: ChainGenesis,
    now: u64,
}

fn alloc() -> Vec<(Address, U256)> {
    vec![(TxSigner::dev(0).address(), U256::from(10u128.pow(21)))]
}

fn setup(batches: usize) -> Setup {
    let council = key("council");
    let operator = key("operator");
    let mut cfg = SequencerConfig::new(CHAIN);
    cfg.batch_blocks = 2;
    let (mut seq, g) = Sequencer::genesis(cfg, &alloc()).unwrap();
    let mut sealed = vec![];
    let mut t = 0;
    while sealed.len() < batches {
        t += 1;
        for o in seq.handle(SequencerInput::Tick { now_ms: t * 1000 }) {
            if let SequencerOutput::BatchSealed(b) = o {
                sealed.push(*b);
            }
        }
    }
    let mut config = SlConfig::new(addr(&council));
    config.sl_block_time_ms = 1000;
    let sl = SettlementLayer::new(config, Box::new(ReExecution::new())).unwrap();
    let genesis = ChainGenesis {
        chain_id: CHAIN,
        operator: addr(&operator),
        alloc: alloc(),
        genesis_header: g.block.header,
    };
    let mut s = Setup {
        sl,
        council,
        operator,
        batches: sealed,
        genesis,
        now: 0,
    };
    let events = s.send(&council, 0, SlCall::RegisterChain(s.genesis.clone()));
    assert!(
        matches!(events[0], SlEvent::ChainRegistered { chain: CHAIN }),
        "{events:?}"
    );
    s
}

impl Setup {
    /// Submits one transaction and produces an SL block; returns the block's events.
    fn send(&mut self, k: &B256, nonce: u64, call: SlCall) -> Vec<SlEvent> {
        let tx = SlTx::sign(k, nonce, call).unwrap();
        let mut events = self.sl.handle(SlInput::Submit(Box::new(tx)));
        self.now += 1000;
        events.extend(self.sl.handle(SlInput::Tick { now_ms: self.now }));
        events
    }
    fn op(&mut self, call: SlCall) -> Vec<SlEvent> {
        let k = self.operator;
        let n = self.sl.nonce(&addr(&k));
        self.send(&k, n, call)
    }
    fn commit(&self, i: usize) -> SlCall {
        let b = &self.batches[i];
        SlCall::CommitBatch {
            header: b.header.clone(),
            imports: vec![],
            blocks: b.blocks.clone(),
        }
    }
}

fn rejected(events: &[SlEvent]) -> Option<&SettlementError> {
    events.iter().find_map(|e| match e {
        SlEvent::TxRejected { error, .. } => Some(error),
        _ => None,
    })
}

#[test]
fn honest_lifecycle_appends_to_the_message_root() {
    let mut s = setup(2);
    let root0 = s.sl.message_tree().root();
    assert!(s.sl.is_historical_root(&root0));
    for (i, n) in [(0usize, 1u64), (1, 2)] {
        let c = s.commit(i);
        assert!(
            matches!(s.op(c)[0], SlEvent::BatchCommitted { batch, by: Authority::Operator, .. } if batch == n)
        );
        let e = s.op(SlCall::ProveBatch {
            chain_id: CHAIN,
            batch: n,
            proof: Bytes::new(),
        });
        assert!(matches!(e[0], SlEvent::BatchProven { .. }), "{e:?}");
        let e = s.op(SlCall::ExecuteBatch {
            chain_id: CHAIN,
            batch: n,
            extension_proofs: vec![],
        });
        assert!(
            e.iter()
                .any(|e| matches!(e, SlEvent::BatchExecuted { batch, .. } if *batch == n)),
            "{e:?}"
        );
    }
    assert_eq!(s.sl.message_tree().len(), 2);
    let h = &s.batches[1].header;
    let leaf = message_root_leaf(CHAIN, 2, h.chainBatchRoot, h.messageCount);
    assert_eq!(s.sl.message_tree().leaf(1), Some(leaf));
    assert!(s.sl.is_historical_root(&root0), "old roots stay historical");
    assert!(s.sl.is_historical_root(&s.sl.message_tree().root()));
    let (root, proof) = s.sl.batch_leaf_proof(CHAIN, 2, 2).unwrap();
    braid_merkle::verify_inclusion(root, leaf, &proof).unwrap();
    assert!(
        s.sl.batch(CHAIN, 1).unwrap().blocks.is_empty(),
        "DA data dropped after execution"
    );
}

#[test]
fn signatures_nonces_and_roles_are_enforced() {
    let mut s = setup(1);
    // forged signature: claims to be the operator
    let mut tx = SlTx::sign(&key("mallory"), 0, s.commit(0)).unwrap();
    tx.from = addr(&s.operator);
    let e = s.sl.handle(SlInput::Submit(Box::new(tx)));
    assert!(matches!(
        rejected(&e),
        Some(SettlementError::BadSignature { .. })
    ));
    // wrong nonce
    let k = s.operator;
    let e = s.send(&k, 5, s.commit(0));
    assert!(matches!(
        rejected(&e),
        Some(SettlementError::BadNonce {
            expected: 0,
            got: 5,
            ..
        })
    ));
    // not the operator
    let e = s.send(&key("mallory"), 0, s.commit(0));
    assert!(matches!(
        rejected(&e),
        Some(SettlementError::NotAuthorized { .. })
    ));
    // registration by someone else
    let mut g = s.genesis.clone();
    g.chain_id = 902;
    let e = s.send(&key("mallory"), 1, SlCall::RegisterChain(g.clone()));
    assert!(matches!(
        rejected(&e),
        Some(SettlementError::NotAuthorized { .. })
    ));
    // registration with a genesis that does not match its alloc
    g.alloc.push((Address::repeat_byte(1), U256::from(1u64)));
    let council = s.council;
    let e = s.send(&council, 1, SlCall::RegisterChain(g));
    assert!(matches!(
        rejected(&e),
        Some(SettlementError::InvalidGenesis { .. })
    ));
    let e = s.send(&council, 2, SlCall::RegisterChain(s.genesis.clone()));
    assert!(matches!(
        rejected(&e),
        Some(SettlementError::ChainExists(CHAIN))
    ));
    assert_eq!(
        s.sl.chain(CHAIN).unwrap().last_committed,
        0,
        "nothing was committed"
    );
    assert_eq!(
        s.sl.nonce(&addr(&s.operator)),
        0,
        "a bad nonce uses no nonce"
    );
    assert_eq!(
        s.sl.nonce(&addr(&key("mallory"))),
        2,
        "refused calls in a block use their nonce"
    );
    assert_eq!(s.sl.nonce(&addr(&s.council)), 3);
}

#[test]
fn malformed_commits_are_rejected() {
    let mut s = setup(2);
    let e = s.op(s.commit(1));
    assert!(
        matches!(rejected(&e), Some(SettlementError::BadCommit { .. })),
        "batch 2 before 1"
    );
    let mut bad_da = s.batches[0].clone();
    bad_da.blocks[0].transactions.push(Bytes::from_static(b"x"));
    let e = s.op(SlCall::CommitBatch {
        header: bad_da.header,
        imports: vec![],
        blocks: bad_da.blocks,
    });
    assert!(
        matches!(rejected(&e), Some(SettlementError::BadCommit { reason, .. }) if reason.contains("DA body"))
    );
    let mut bad_hash = s.batches[0].clone();
    bad_hash.header.daCommitment = B256::repeat_byte(3);
    let e = s.op(SlCall::CommitBatch {
        header: bad_hash.header,
        imports: vec![],
        blocks: bad_hash.blocks,
    });
    assert!(
        matches!(rejected(&e), Some(SettlementError::BadCommit { reason, .. }) if reason.contains("DA commitment"))
    );
    let b = s.batches[0].clone();
    let extra = ImportedRoot {
        kind: 0,
        sourceChain: 902,
        sourceHeight: 1,
        root: B256::repeat_byte(1),
        messageCount: 1,
    };
    let e = s.op(SlCall::CommitBatch {
        header: b.header.clone(),
        imports: vec![extra],
        blocks: b.blocks.clone(),
    });
    assert!(
        matches!(rejected(&e), Some(SettlementError::BadCommit { reason, .. }) if reason.contains("imports"))
    );
    let mut unknown = b.header.clone();
    unknown.chainId = 999;
    let e = s.op(SlCall::CommitBatch {
        header: unknown,
        imports: vec![],
        blocks: b.blocks,
    });
    assert!(matches!(
        rejected(&e),
        Some(SettlementError::UnknownChain(999))
    ));
    assert_eq!(s.sl.chain(CHAIN).unwrap().last_committed, 0);
}

#[test]
fn lifecycle_order_is_enforced() {
    let mut s = setup(2);
    let c0 = s.commit(0);
    s.op(c0);
    let c1 = s.commit(1);
    s.op(c1);
    let e = s.op(SlCall::ProveBatch {
        chain_id: CHAIN,
        batch: 2,
        proof: Bytes::new(),
    });
    assert!(
        matches!(rejected(&e), Some(SettlementError::WrongStatus { .. })),
        "prove 2 before 1"
    );
    let e = s.op(SlCall::ExecuteBatch {
        chain_id: CHAIN,
        batch: 1,
        extension_proofs: vec![],
    });
    assert!(
        matches!(rejected(&e), Some(SettlementError::WrongStatus { .. })),
        "execute before prove"
    );
    let e = s.op(SlCall::ProveBatch {
        chain_id: CHAIN,
        batch: 1,
        proof: Bytes::from_static(&[1]),
    });
    assert!(matches!(
        rejected(&e),
        Some(SettlementError::ProofRejected { error, .. })
            if matches!(**error, ProofError::MalformedProof { .. })
    ));
    s.op(SlCall::ProveBatch {
        chain_id: CHAIN,
        batch: 1,
        proof: Bytes::new(),
    });
    let dummy = braid_merkle::ExtensionProof {
        old_size: 0,
        new_size: 0,
        hashes: vec![],
    };
    let e = s.op(SlCall::ExecuteBatch {
        chain_id: CHAIN,
        batch: 1,
        extension_proofs: vec![dummy],
    });
    assert!(
        matches!(rejected(&e), Some(SettlementError::WrongStatus { .. })),
        "extension proof count"
    );
    s.op(SlCall::ExecuteBatch {
        chain_id: CHAIN,
        batch: 1,
        extension_proofs: vec![],
    });
    assert_eq!(s.sl.chain(CHAIN).unwrap().last_executed, 1);
    // executed batches cannot be reverted; strangers cannot revert
    let e = s.op(SlCall::RevertBatches {
        chain_id: CHAIN,
        from: 1,
    });
    assert!(matches!(
        rejected(&e),
        Some(SettlementError::WrongStatus { .. })
    ));
    let e = s.send(
        &key("mallory"),
        0,
        SlCall::RevertBatches {
            chain_id: CHAIN,
            from: 2,
        },
    );
    assert!(matches!(
        rejected(&e),
        Some(SettlementError::NotAuthorized { .. })
    ));
    let e = s.op(SlCall::RevertBatches {
        chain_id: CHAIN,
        from: 2,
    });
    assert!(
        matches!(
            e[0],
            SlEvent::BatchesReverted {
                from: 2,
                to: 2,
                first_block: 3,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(s.sl.chain(CHAIN).unwrap().last_committed, 1);
    // the reverted batch can be committed again
    let c1 = s.commit(1);
    assert!(matches!(
        s.op(c1)[0],
        SlEvent::BatchCommitted { batch: 2, .. }
    ));
}

#[test]
fn invalid_config_is_a_typed_error() {
    let mut c = SlConfig::new(Address::ZERO);
    c.timeout_council_ms = c.timeout_operator_ms - 1;
    assert!(matches!(
        SettlementLayer::new(c, Box::new(ReExecution::new())),
        Err(SettlementError::InvalidConfig { .. })
    ));
}
