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

/// `batch` with its blocks' timestamps changed by `edit`, its DA commitment recomputed (the
/// SL checks it against the blocks before it looks at their timestamps).
fn with_timestamps(batch: &SealedBatch, edit: impl Fn(&mut [u64])) -> SlCall {
    let mut blocks = batch.blocks.clone();
    let mut ts: Vec<u64> = blocks.iter().map(|b| b.header.timestampMs).collect();
    edit(&mut ts);
    for (b, t) in blocks.iter_mut().zip(ts) {
        b.header.timestampMs = t;
    }
    let mut header = batch.header.clone();
    header.daCommitment = da_commitment(&blocks);
    SlCall::CommitBatch {
        header,
        imports: vec![],
        blocks,
    }
}

#[test]
fn commit_refuses_block_timestamps_that_do_not_increase_or_run_ahead_of_sl_time() {
    let mut s = setup(2);
    let genesis_ms = s.genesis.genesis_header.timestampMs;
    let (b1, b2) = (s.batches[0].clone(), s.batches[1].clone());
    assert_eq!(b1.blocks.len(), 2);
    // a block no later than its parent inside the batch
    let e = s.op(with_timestamps(&b1, |t| t[1] = t[0]));
    assert!(
        matches!(
            rejected(&e),
            Some(SettlementError::BlockTimestampNotIncreasing { block: 2, .. })
        ),
        "{e:?}"
    );
    // the first block no later than genesis
    let e = s.op(with_timestamps(&b1, |t| t[0] = genesis_ms));
    assert!(
        matches!(
            rejected(&e),
            Some(SettlementError::BlockTimestampNotIncreasing { block: 1, parent_ms, .. })
                if *parent_ms == genesis_ms
        ),
        "{e:?}"
    );
    // a block too far ahead of SL time
    let drift = s.sl.config().max_block_time_drift_ms;
    let far = s.now + 1000 + drift + 1; // the SL block that includes it is at now + 1000
    let e = s.op(with_timestamps(&b1, |t| t[1] = far));
    assert!(
        matches!(
            rejected(&e),
            Some(SettlementError::BlockTimestampAhead { block: 2, max_drift_ms, .. })
                if *max_drift_ms == drift
        ),
        "{e:?}"
    );
    assert_eq!(
        s.sl.chain(CHAIN).unwrap().last_committed,
        0,
        "nothing committed"
    );
    assert!(s.sl.batch(CHAIN, 1).is_none());
    // the honest batch commits; the next batch's first block must be after its last block
    let e = s.op(s.commit(0));
    assert!(rejected(&e).is_none(), "{e:?}");
    let last_ms = s.sl.batch(CHAIN, 1).unwrap().last_block_timestamp_ms;
    assert_eq!(last_ms, b1.blocks[1].header.timestampMs);
    let e = s.op(with_timestamps(&b2, |t| t[0] = last_ms));
    assert!(
        matches!(
            rejected(&e),
            Some(SettlementError::BlockTimestampNotIncreasing { block: 3, parent_ms, .. })
                if *parent_ms == last_ms
        ),
        "{e:?}"
    );
    assert_eq!(s.sl.chain(CHAIN).unwrap().last_committed, 1);
    let e = s.op(s.commit(1));
    assert!(rejected(&e).is_none(), "{e:?}");
    // the bound is validated
    let mut c = s.sl.config().clone();
    c.max_block_time_drift_ms = 0;
    assert!(matches!(
        SettlementLayer::new(c, Box::new(ReExecution::new())),
        Err(SettlementError::InvalidConfig { .. })
    ));
}

#[test]
fn junk_from_many_senders_fills_the_queue_but_never_for_operators_or_the_council() {
    let mut s = setup(1);
    s.sl.config.max_pending_txs = 8;
    for i in 0..8 {
        let junk = key(&format!("junk {i}"));
        let tx = SlTx::sign(&junk, 0, SlCall::ExitValidators).unwrap();
        assert!(s.sl.handle(SlInput::Submit(Box::new(tx))).is_empty());
    }
    let one_more = SlTx::sign(&key("junk 8"), 0, SlCall::ExitValidators).unwrap();
    let e = s.sl.handle(SlInput::Submit(Box::new(one_more)));
    assert!(
        matches!(rejected(&e), Some(SettlementError::QueueFull { limit: 8 })),
        "{e:?}"
    );
    // the operator's commit is still admitted and lands in the next block
    let tx = SlTx::sign(&s.operator, 0, s.commit(0)).unwrap();
    assert!(s.sl.handle(SlInput::Submit(Box::new(tx))).is_empty());
    s.now += 1000;
    let e = s.sl.handle(SlInput::Tick { now_ms: s.now });
    assert!(e
        .iter()
        .any(|e| matches!(e, SlEvent::BatchCommitted { batch: 1, .. })));
}

#[test]
fn a_sender_may_pool_only_max_pending_txs_per_sender() {
    let mut s = setup(1);
    let limit = s.sl.config().max_pending_txs_per_sender;
    assert_eq!(limit, 64);
    let junk = key("junk");
    for n in 0..limit as u64 {
        let tx = SlTx::sign(&junk, n, SlCall::ExitValidators).unwrap();
        assert!(s.sl.handle(SlInput::Submit(Box::new(tx))).is_empty());
    }
    let tx = SlTx::sign(&junk, limit as u64, SlCall::ExitValidators).unwrap();
    let e = s.sl.handle(SlInput::Submit(Box::new(tx)));
    assert!(
        matches!(
            rejected(&e),
            Some(SettlementError::SenderQueueFull { sender, limit: 64 }) if *sender == addr(&junk)
        ),
        "{e:?}"
    );
    assert_eq!(
        s.sl.pending.len(),
        limit,
        "the refused transaction is not pooled"
    );
    // other senders are still admitted
    let tx = SlTx::sign(&s.operator, 0, s.commit(0)).unwrap();
    assert!(s.sl.handle(SlInput::Submit(Box::new(tx))).is_empty());
    s.now += 1000;
    let e = s.sl.handle(SlInput::Tick { now_ms: s.now });
    assert!(e
        .iter()
        .any(|e| matches!(e, SlEvent::BatchCommitted { batch: 1, .. })));
    // once the block took the pool, the sender may submit again
    let tx = SlTx::sign(&junk, limit as u64, SlCall::ExitValidators).unwrap();
    assert!(s.sl.handle(SlInput::Submit(Box::new(tx))).is_empty());
    let mut c = s.sl.config().clone();
    c.max_pending_txs_per_sender = 0;
    assert!(matches!(
        SettlementLayer::new(c, Box::new(ReExecution::new())),
        Err(SettlementError::InvalidConfig { .. })
    ));
}

#[test]
fn a_transaction_signed_for_another_sl_instance_is_refused() {
    let s = setup(1);
    let (x, y) = (7_001u64, 7_002u64);
    let sl_with = |id: u64| {
        let mut c = s.sl.config().clone();
        c.sl_chain_id = id;
        SettlementLayer::new(c, Box::new(ReExecution::new())).unwrap()
    };
    let register = SlCall::RegisterChain(s.genesis.clone());
    let tx = SlTx::sign_for(x, &s.council, 0, register.clone()).unwrap();
    assert_eq!(tx.sl_chain_id, x);
    // refused by an SL with another id, which stays untouched
    let mut sl_y = sl_with(y);
    let e = sl_y.handle(SlInput::Submit(Box::new(tx.clone())));
    assert!(
        matches!(
            rejected(&e),
            Some(SettlementError::WrongSlChain { expected, got }) if *expected == y && *got == x
        ),
        "{e:?}"
    );
    sl_y.handle(SlInput::Tick { now_ms: 1000 });
    assert!(sl_y.chain(CHAIN).is_none());
    assert_eq!(sl_y.nonce(&addr(&s.council)), 0);
    // relabelling it for Y breaks the signature: the id is in the signed digest
    let mut relabelled = tx.clone();
    relabelled.sl_chain_id = y;
    let e = sl_y.handle(SlInput::Submit(Box::new(relabelled)));
    assert!(
        matches!(rejected(&e), Some(SettlementError::BadSignature { .. })),
        "{e:?}"
    );
    // an SL with a default id refuses it too; the default signers sign for the default id
    let mut sl_default = sl_with(DEFAULT_SL_CHAIN_ID);
    let e = sl_default.handle(SlInput::Submit(Box::new(tx.clone())));
    assert!(matches!(
        rejected(&e),
        Some(SettlementError::WrongSlChain { .. })
    ));
    let tx_default = SlTx::sign(&s.council, 0, register).unwrap();
    assert_eq!(tx_default.sl_chain_id, DEFAULT_SL_CHAIN_ID);
    assert!(sl_y
        .handle(SlInput::Submit(Box::new(tx_default)))
        .iter()
        .any(|e| matches!(e, SlEvent::TxRejected { .. })));
    // accepted by the SL it was signed for
    let mut sl_x = sl_with(x);
    assert!(sl_x.handle(SlInput::Submit(Box::new(tx))).is_empty());
    let e = sl_x.handle(SlInput::Tick { now_ms: 1000 });
    assert!(
        e.iter()
            .any(|e| matches!(e, SlEvent::ChainRegistered { chain: CHAIN })),
        "{e:?}"
    );
}

// ----- fast finality: staking, postconfirmation, slashing -----

mod finality {
    use super::*;
    use braid_finality::{
        AggregatorOutput, BlsSecretKey, Evidence, QuorumCertificate, SignedVote, Vote,
        VoteAggregator,
    };

    const STAKES: [u64; 4] = [100, 100, 100, 1];

    fn bls(i: usize) -> BlsSecretKey {
        BlsSecretKey::from_seed(key(&format!("bls {i}")).as_slice()).unwrap()
    }
    fn staker(i: usize) -> B256 {
        key(&format!("validator {i}"))
    }

    /// Registers the chain, funds and joins four validators; returns the setup after the block
    /// that fixed epoch 0's set.
    fn staked() -> Setup {
        let mut s = setup(2);
        let mut config = s.sl.config().clone();
        config.genesis_balances = (0..4)
            .map(|i| (addr(&staker(i)), U256::from(1_000)))
            .collect();
        s.sl = SettlementLayer::new(config, Box::new(ReExecution::new())).unwrap();
        s.now = 0;
        let events = s.send(
            &s.council.clone(),
            0,
            SlCall::RegisterChain(s.genesis.clone()),
        );
        assert!(matches!(events[0], SlEvent::ChainRegistered { .. }));
        for (i, stake) in STAKES.iter().enumerate() {
            let tx = SlTx::sign(
                &staker(i),
                0,
                SlCall::JoinValidators(JoinRequest {
                    pubkey: bls(i).public_key(),
                    pop: bls(i).proof_of_possession(),
                    stake: U256::from(*stake),
                }),
            )
            .unwrap();
            assert!(s.sl.handle(SlInput::Submit(Box::new(tx))).is_empty());
        }
        s.now += 1000;
        let events = s.sl.handle(SlInput::Tick { now_ms: s.now });
        assert!(rejected(&events).is_none(), "{events:?}");
        assert!(
            events.iter().any(|e| matches!(
                e,
                SlEvent::EpochStarted {
                    epoch: 0,
                    validators: 4,
                    ..
                }
            )),
            "{events:?}"
        );
        s
    }

    fn index_of(s: &Setup, i: usize) -> u32 {
        s.sl.staking()
            .set(0)
            .unwrap()
            .index_of(&addr(&staker(i)))
            .unwrap()
    }

    fn vote_for(header: &braid_primitives::BlockHeader) -> Vote {
        Vote {
            chainId: header.chainId,
            epoch: 0,
            height: header.number,
            parentHash: header.parentHash,
            blockHash: header.hash(),
            stateRoot: header.stateRoot,
            accept: true,
        }
    }

    fn signed(s: &Setup, i: usize, vote: &Vote) -> SignedVote {
        SignedVote {
            vote: vote.clone(),
            validator: index_of(s, i),
            signature: bls(i).sign_vote(vote),
        }
    }

    /// The QC the aggregator forms from validators `who` (None if they are no quorum).
    fn qc(s: &Setup, who: &[usize], vote: &Vote) -> Option<QuorumCertificate> {
        let mut agg = VoteAggregator::new(s.sl.staking().set(0).unwrap().clone());
        let mut out = None;
        for &i in who {
            for o in agg.add(signed(s, i, vote)).unwrap() {
                if let AggregatorOutput::Certified(qc) = o {
                    out = Some(qc);
                }
            }
        }
        out
    }

    fn report_invalid(s: &Setup, i: usize, header: &braid_primitives::BlockHeader) -> SlCall {
        SlCall::ReportInvalidAccept(signed(s, i, &vote_for(header)))
    }

    fn by(s: &mut Setup, i: usize, call: SlCall) -> Vec<SlEvent> {
        let k = staker(i);
        let n = s.sl.nonce(&addr(&k));
        s.send(&k, n, call)
    }

    #[test]
    fn joining_needs_a_proof_of_possession_stake_and_funds() {
        let mut s = staked();
        let value = s.sl.total_value();
        let join = |pop: braid_finality::BlsSignature, stake: u64| {
            SlCall::JoinValidators(JoinRequest {
                pubkey: bls(9).public_key(),
                pop,
                stake: U256::from(stake),
            })
        };
        // another key's proof of possession (a rogue key cannot prove possession)
        let e = by(&mut s, 0, join(bls(8).proof_of_possession(), 10));
        assert!(
            matches!(rejected(&e), Some(SettlementError::Staking { .. })),
            "{e:?}"
        );
        // already a validator
        let e = by(&mut s, 0, join(bls(9).proof_of_possession(), 10));
        assert!(rejected(&e).is_some());
        // a fresh account without funds
        let poor = key("poor");
        let e = s.send(&poor, 0, join(bls(9).proof_of_possession(), 10));
        assert!(rejected(&e).is_some(), "{e:?}");
        assert_eq!(s.sl.total_value(), value);
        assert_eq!(s.sl.staking().staked, U256::from(301));
        assert_eq!(s.sl.balance(&addr(&staker(0))), U256::from(900));
    }

    #[test]
    fn a_quorum_certificate_postconfirms_its_block_and_a_minority_cannot() {
        let mut s = staked();
        let header = s.batches[0].blocks[0].header.clone();
        let vote = vote_for(&header);
        // 200 of 301 is not more than two thirds: the aggregator forms no QC
        assert!(qc(&s, &[0, 1], &vote).is_none());
        let cert = qc(&s, &[0, 1, 2], &vote).unwrap();
        // a header that is not the certified block
        let mut other = header.clone();
        other.timestampMs += 1;
        let e = by(
            &mut s,
            0,
            SlCall::Postconfirm {
                qc: cert.clone(),
                header: other,
            },
        );
        assert!(rejected(&e).is_some(), "{e:?}");
        // a tampered certificate: drop a signer from the bitmap
        let mut forged = cert.clone();
        forged.signers[0] &= !(1 << index_of(&s, 0));
        let e = by(
            &mut s,
            0,
            SlCall::Postconfirm {
                qc: forged,
                header: header.clone(),
            },
        );
        assert!(rejected(&e).is_some(), "{e:?}");
        let e = by(
            &mut s,
            3,
            SlCall::Postconfirm {
                qc: cert,
                header: header.clone(),
            },
        );
        assert!(
            e.iter().any(|e| matches!(
                e,
                SlEvent::Postconfirmed { chain: CHAIN, height, .. } if *height == header.number
            )),
            "{e:?}"
        );
        let rec = s.sl.staking().postconfirmed[&CHAIN][&header.number];
        assert_eq!(rec.local_root, header.localRoot);
        assert_eq!(rec.stake, U256::from(300));
    }

    /// Postconfirms `header` with validators 0..=2.
    fn postconfirm(s: &mut Setup, header: &braid_primitives::BlockHeader) {
        let cert = qc(s, &[0, 1, 2], &vote_for(header)).unwrap();
        let e = by(
            s,
            3,
            SlCall::Postconfirm {
                qc: cert,
                header: header.clone(),
            },
        );
        assert!(
            e.iter().any(
                |e| matches!(e, SlEvent::Postconfirmed { height, .. } if *height == header.number)
            ),
            "{e:?}"
        );
    }

    #[test]
    fn a_batch_ending_in_a_postconfirmed_block_is_never_reverted() {
        let mut s = staked();
        for i in 0..2 {
            let c = s.commit(i);
            let e = s.op(c);
            assert!(rejected(&e).is_none(), "{e:?}");
        }
        // a postconfirmed block inside batch 2 (not its end) does not make it final: the SL
        // holds batches, and only a certificate of the batch's last block covers all of it
        let mid = s.batches[1].blocks[0].header.clone();
        postconfirm(&mut s, &mid);
        assert_eq!(s.sl.finality(CHAIN, 2), None);
        // batch 1 ends in a postconfirmed block: it is final, and batch 2 is not
        let end = s.batches[0].blocks[1].header.clone();
        postconfirm(&mut s, &end);
        let by_qc = crate::Finality::Postconfirmed { block: end.number };
        assert_eq!(s.sl.finality(CHAIN, 1), Some(by_qc));
        assert_eq!(s.sl.finality(CHAIN, 2), None);
        let chain = s.sl.chain(CHAIN).unwrap();
        let before = (
            chain.last_committed,
            chain.batches.len(),
            s.sl.total_value(),
        );
        for k in [s.operator, s.council] {
            let n = s.sl.nonce(&addr(&k));
            let e = s.send(
                &k,
                n,
                SlCall::RevertBatches {
                    chain_id: CHAIN,
                    from: 1,
                },
            );
            assert_eq!(
                rejected(&e),
                Some(&SettlementError::FinalBatch {
                    chain: CHAIN,
                    batch: 1,
                    by: by_qc
                }),
                "{e:?}"
            );
            assert!(
                !e.iter()
                    .any(|e| matches!(e, SlEvent::BatchesReverted { .. })),
                "{e:?}"
            );
            let chain = s.sl.chain(CHAIN).unwrap();
            assert_eq!(
                (
                    chain.last_committed,
                    chain.batches.len(),
                    s.sl.total_value()
                ),
                before
            );
        }
        // the batch after it can still be reverted, and the revert stops there
        let e = s.op(SlCall::RevertBatches {
            chain_id: CHAIN,
            from: 2,
        });
        assert!(
            e.iter()
                .any(|e| matches!(e, SlEvent::BatchesReverted { from: 2, to: 2, .. })),
            "{e:?}"
        );
        assert_eq!(s.sl.chain(CHAIN).unwrap().last_committed, 1);
        assert!(s.sl.batch(CHAIN, 1).is_some());
    }

    #[test]
    fn postconfirm_takes_qcs_of_the_current_or_previous_epoch_only() {
        let mut s = staked();
        let epoch_ms = s.sl.config().epoch_ms;
        let (h1, h2) = (
            s.batches[0].blocks[0].header.clone(),
            s.batches[0].blocks[1].header.clone(),
        );
        // epoch 1: a QC of epoch 0 (the previous one) is accepted
        s.now = epoch_ms;
        s.sl.handle(SlInput::Tick { now_ms: s.now });
        assert_eq!(s.sl.epoch_at(s.now), 1);
        postconfirm(&mut s, &h1);
        // epoch 2: a QC of epoch 0 is refused, and nothing is recorded
        s.now = 2 * epoch_ms;
        s.sl.handle(SlInput::Tick { now_ms: s.now });
        let cert = qc(&s, &[0, 1, 2], &vote_for(&h2)).unwrap();
        let e = by(
            &mut s,
            3,
            SlCall::Postconfirm {
                qc: cert,
                header: h2.clone(),
            },
        );
        assert!(
            matches!(
                rejected(&e),
                Some(SettlementError::StaleQc {
                    epoch: 0,
                    oldest: 1,
                    current: 2
                })
            ),
            "{e:?}"
        );
        assert!(!s.sl.staking().postconfirmed[&CHAIN].contains_key(&h2.number));
    }

    #[test]
    fn equivocation_is_slashed_with_a_reward_and_the_rest_burned() {
        let mut s = staked();
        let value = s.sl.total_value();
        let header = s.batches[0].blocks[0].header.clone();
        let a = vote_for(&header);
        let mut b = a.clone();
        b.blockHash = B256::repeat_byte(7);
        // a reject vote next to an accept is not equivocation
        let mut reject = a.clone();
        reject.accept = false;
        let not = Evidence::Equivocation {
            a: signed(&s, 1, &a),
            b: signed(&s, 1, &reject),
        };
        let e = by(&mut s, 3, SlCall::ReportEquivocation(not));
        assert!(rejected(&e).is_some(), "{e:?}");
        let evidence = Evidence::Equivocation {
            a: signed(&s, 1, &a),
            b: signed(&s, 1, &b),
        };
        let reporter = addr(&staker(3));
        let before = s.sl.balance(&reporter);
        let e = by(&mut s, 3, SlCall::ReportEquivocation(evidence.clone()));
        assert!(
            e.iter().any(|e| matches!(
                e,
                SlEvent::Slashed {
                    reason: SlashReason::Equivocation,
                    ..
                }
            )),
            "{e:?}"
        );
        assert_eq!(s.sl.balance(&reporter), before + U256::from(10));
        assert_eq!(s.sl.staking().burned, U256::from(90));
        assert_eq!(s.sl.staking().staked, U256::from(201));
        assert_eq!(
            s.sl.total_value(),
            value,
            "slashing moves value, never creates it"
        );
        // the same evidence twice slashes nothing more
        let e = by(&mut s, 3, SlCall::ReportEquivocation(evidence));
        assert!(rejected(&e).is_some());
        // the slashed validator leaves the set at the next epoch
        s.now += s.sl.config().epoch_ms;
        let e = s.sl.handle(SlInput::Tick { now_ms: s.now });
        assert!(
            e.iter()
                .any(|e| matches!(e, SlEvent::EpochStarted { validators: 3, .. })),
            "{e:?}"
        );
        let next = s.sl.epoch_at(s.now);
        assert!(s
            .sl
            .staking()
            .set(next)
            .unwrap()
            .index_of(&addr(&staker(1)))
            .is_none());
    }

    #[test]
    fn an_accept_vote_for_an_invalid_block_is_slashed_and_one_for_a_valid_block_is_not() {
        let mut s = staked();
        // batch 1 is honest; batch 2's last block claims a wrong state root
        let c = s.commit(0);
        s.op(c);
        let mut bad = s.batches[1].clone();
        let last = bad.blocks.last_mut().unwrap();
        last.header.stateRoot = B256::repeat_byte(0xee);
        bad.header.lastBlockHash = last.header.hash();
        bad.header.stateRoot = B256::repeat_byte(0xee);
        bad.header.daCommitment = braid_primitives::da_commitment(&bad.blocks);
        let invalid_header = bad.blocks.last().unwrap().header.clone();
        let e = s.op(SlCall::CommitBatch {
            header: bad.header.clone(),
            imports: vec![],
            blocks: bad.blocks.clone(),
        });
        assert!(rejected(&e).is_none(), "{e:?}");
        s.op(SlCall::ProveBatch {
            chain_id: CHAIN,
            batch: 1,
            proof: Bytes::new(),
        });
        // an accept vote for a valid block of batch 2 is no offence
        let valid = bad.blocks[0].header.clone();
        let call = report_invalid(&s, 1, &valid);
        let e = by(&mut s, 3, call);
        assert!(rejected(&e).is_some(), "{e:?}");
        let call = report_invalid(&s, 0, &invalid_header);
        let e = by(&mut s, 3, call);
        assert!(
            e.iter().any(|e| matches!(
                e,
                SlEvent::Slashed { reason: SlashReason::InvalidAccept, validator, .. }
                    if *validator == addr(&staker(0))
            )),
            "{e:?}"
        );
        // a second voter for the same block: the verdict is remembered
        let call = report_invalid(&s, 2, &invalid_header);
        let e = by(&mut s, 3, call);
        assert!(
            e.iter().any(|e| matches!(e, SlEvent::Slashed { .. })),
            "{e:?}"
        );
    }

    #[test]
    fn exiting_validators_wait_out_the_unbonding_period() {
        let mut s = staked();
        let e = by(&mut s, 1, SlCall::WithdrawStake);
        assert!(
            rejected(&e).is_some(),
            "an active validator cannot withdraw"
        );
        let e = by(&mut s, 1, SlCall::ExitValidators);
        assert!(rejected(&e).is_none(), "{e:?}");
        let e = by(&mut s, 1, SlCall::WithdrawStake);
        assert!(rejected(&e).is_some(), "still unbonding");
        // the next epoch's set no longer holds it
        s.now += s.sl.config().epoch_ms;
        let e = s.sl.handle(SlInput::Tick { now_ms: s.now });
        assert!(
            e.iter()
                .any(|e| matches!(e, SlEvent::EpochStarted { validators: 3, .. })),
            "{e:?}"
        );
        s.now += s.sl.config().unbonding_ms;
        let e = by(&mut s, 1, SlCall::WithdrawStake);
        assert!(rejected(&e).is_none(), "{e:?}");
        assert_eq!(s.sl.balance(&addr(&staker(1))), U256::from(1_000));
        assert_eq!(s.sl.staking().staked, U256::from(201));
    }
}

// ----- optimistic settlement: bonds of competing proposals, the clock rule -----

mod optimistic_bonds {
    use super::*;
    use braid_dispute::{rounds_needed, Outcome, Side, Trace};
    use braid_execution::{batch_steps, trace_batch, MachineState, StateKey, StateValue};

    const BOND: u128 = 1_000_000_000_000_000_000;

    struct Game {
        sl: SettlementLayer,
        now: u64,
        events: Vec<SlEvent>,
        batch: SealedBatch,
        genesis_state: braid_execution::ChainState,
    }

    fn agents() -> [B256; 5] {
        [
            key("honest"),
            key("liar"),
            key("challenger"),
            key("honest-2"),
            key("operator"),
        ]
    }

    /// A chain with one committed batch of transfers, settled optimistically with a 3 s window,
    /// k = 2, a 4 s clock reserve and 1 s SL blocks.
    fn game_setup() -> Game {
        let council = key("council");
        let mut cfg = SequencerConfig::new(CHAIN);
        cfg.batch_blocks = 2;
        let (mut seq, g) = Sequencer::genesis(cfg, &alloc()).unwrap();
        let genesis_state = seq.state().clone();
        let alice = TxSigner::dev(0);
        for nonce in 0..6 {
            let raw = alice
                .call(
                    CHAIN,
                    nonce,
                    Address::repeat_byte(0xb0),
                    U256::from(1_000u64),
                    Bytes::new(),
                    21_000,
                )
                .unwrap();
            seq.handle(SequencerInput::SubmitTx { raw });
        }
        let mut batch = None;
        let mut t = 0;
        while batch.is_none() {
            t += 1;
            for o in seq.handle(SequencerInput::Tick { now_ms: t * 1000 }) {
                if let SequencerOutput::BatchSealed(b) = o {
                    batch = Some(*b);
                }
            }
        }
        let batch = batch.unwrap();
        let mut config = SlConfig::new(addr(&council));
        config.sl_block_time_ms = 1000;
        config.optimistic = OptimisticConfig {
            chains: vec![CHAIN],
            challenge_window_ms: 3_000,
            k: 2,
            clock_ms: 4_000,
            ..OptimisticConfig::default()
        };
        config.genesis_balances = agents()
            .iter()
            .map(|k| (addr(k), U256::from(100 * BOND)))
            .collect();
        let sl = SettlementLayer::new(config, Box::new(ReExecution::new())).unwrap();
        let mut s = Game {
            sl,
            now: 0,
            events: vec![],
            batch,
            genesis_state,
        };
        let genesis = ChainGenesis {
            chain_id: CHAIN,
            operator: addr(&key("operator")),
            alloc: alloc(),
            genesis_header: g.block.header,
        };
        s.call(&council, SlCall::RegisterChain(genesis));
        s.block();
        let commit = SlCall::CommitBatch {
            header: s.batch.header.clone(),
            imports: vec![],
            blocks: s.batch.blocks.clone(),
        };
        s.call(&key("operator"), commit);
        s.block();
        assert!(s
            .events
            .iter()
            .any(|e| matches!(e, SlEvent::BatchCommitted { batch: 1, .. })));
        s
    }

    impl Game {
        /// Pools a call (nonces count the sender's calls already pooled).
        fn call(&mut self, k: &B256, call: SlCall) {
            let from = addr(k);
            let nonce = self.sl.nonce(&from)
                + self.sl.pending.iter().filter(|t| t.from == from).count() as u64;
            let tx = SlTx::sign(k, nonce, call).unwrap();
            assert!(self.sl.handle(SlInput::Submit(Box::new(tx))).is_empty());
        }
        /// One SL block; its events.
        fn block(&mut self) -> Vec<SlEvent> {
            self.now += 1000;
            let events = self.sl.handle(SlInput::Tick { now_ms: self.now });
            assert!(rejected(&events).is_none(), "{events:#?}");
            self.events.extend(events.iter().cloned());
            events
        }
        /// The batch's proposal: honest, or lying (an invalid end state after the last step).
        fn proposal(&self, lie: bool) -> Proposal {
            let steps = batch_steps(&self.batch.blocks);
            let (mut machines, end_state) = trace_batch(&self.genesis_state, &steps);
            if lie {
                *machines.last_mut().unwrap() = MachineState::Invalid;
            }
            let trace =
                Trace::new(machines.iter().map(MachineState::commitment).collect()).unwrap();
            let n = steps.len() as u64;
            let outputs = (!lie).then(|| {
                let mut s = end_state.clone();
                let (_, outbox, outbox_proof) = s.prove(&StateKey::Outbox);
                let (_, totals, totals_proof) = s.prove(&StateKey::Totals);
                let (Some(StateValue::Outbox { root, count }), Some(StateValue::Totals(totals))) =
                    (outbox, totals)
                else {
                    panic!("outputs of the end state")
                };
                ClaimedOutputs {
                    outbox_root: root,
                    message_count: count,
                    outbox_proof,
                    totals,
                    totals_proof,
                }
            });
            Proposal {
                chain_id: CHAIN,
                batch: 1,
                trace_root: trace.commitment(),
                steps: n,
                start_proof: trace.prove(0).unwrap().1,
                end_state: *machines.last().unwrap(),
                end_proof: trace.prove(n).unwrap().1,
                outputs,
            }
        }
        fn id_of(&self, proposer: &B256) -> ProposalId {
            self.sl
                .optimistic()
                .proposals
                .values()
                .find(|p| p.proposer == addr(proposer))
                .unwrap()
                .id
        }
    }

    /// Issue 15, item 2: the honest proposal becomes final (and settles the batch) while the
    /// liar's game is still open — the liar stalls within its clock. The game goes on and the
    /// liar loses its bond; a second honest proposal, posted later, closes at its window's end
    /// with its bond back and is never final. (Before the fix, settling the batch closed the
    /// liar's proposal and game and returned both bonds.)
    #[test]
    fn a_lying_proposer_loses_its_bond_even_when_an_honest_proposal_finalizes_first() {
        let mut s = game_setup();
        let [honest, liar, challenger, honest_2, _] = agents();
        let value = s.sl.total_value();
        let start = U256::from(100 * BOND);
        let (h, l) = (s.proposal(false), s.proposal(true));
        let n = h.steps;
        assert!(n >= 4, "{n} steps");
        s.call(&honest, SlCall::Propose(Box::new(h.clone())));
        s.call(&liar, SlCall::Propose(Box::new(l)));
        s.block();
        let (hid, lid) = (s.id_of(&honest), s.id_of(&liar));
        s.call(&challenger, SlCall::Challenge { proposal: lid });
        s.call(&honest_2, SlCall::Propose(Box::new(h)));
        s.block();
        let h2id = s.id_of(&honest_2);
        let game = *s.sl.optimistic().games.keys().next().unwrap();
        // the game's clocks are sized for the batch: reserve + (rounds + 1) one-block moves
        let clock = 4_000 + (u64::from(rounds_needed(n, 2)) + 1) * 1_000;
        let g = &s.sl.optimistic().game(game).unwrap().game;
        assert_eq!(g.clock(Side::Proposer, s.now), clock);
        assert_eq!(g.clock(Side::Challenger, s.now), clock);
        let opened = s.now;
        // the honest proposal is final after its 3 s window and proves the batch
        while !s
            .events
            .iter()
            .any(|e| matches!(e, SlEvent::BatchProven { batch: 1, .. }))
        {
            s.block();
            assert!(
                s.now < opened + clock,
                "the batch settles before the liar's clock runs out"
            );
        }
        assert_eq!(
            s.sl.optimistic().proposal(hid).unwrap().status,
            ProposalStatus::Closed
        );
        assert_eq!(s.sl.balance(&addr(&honest)), start, "bond back");
        assert_eq!(
            s.sl.optimistic().proposal(lid).unwrap().status,
            ProposalStatus::Pending,
            "the liar's game is not over"
        );
        assert!(s.sl.optimistic().game(game).is_some());
        // the liar never splits: its clock runs out
        while s.sl.optimistic().game(game).is_some() {
            s.block();
            assert!(s.now <= opened + clock + 1_000);
        }
        let result = s
            .events
            .iter()
            .find_map(|e| match e {
                SlEvent::GameResolved(r) if r.game == game => Some(*r),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            result.outcome,
            Outcome::ClockExpired {
                winner: Side::Challenger
            }
        );
        assert_eq!(result.slashed, U256::from(BOND));
        assert_eq!(
            s.sl.optimistic().proposal(lid).unwrap().status,
            ProposalStatus::Defeated
        );
        assert_eq!(s.sl.balance(&addr(&liar)), start - U256::from(BOND));
        assert_eq!(
            s.sl.balance(&addr(&challenger)),
            start + U256::from(BOND / 2)
        );
        // the second honest proposal outlived its window: closed, bond back, never final
        for _ in 0..4 {
            s.block();
        }
        assert_eq!(
            s.sl.optimistic().proposal(h2id).unwrap().status,
            ProposalStatus::Closed
        );
        assert_eq!(s.sl.balance(&addr(&honest_2)), start);
        let finalized: Vec<_> = s
            .events
            .iter()
            .filter_map(|e| match e {
                SlEvent::ProposalFinalized { proposal, .. } => Some(*proposal),
                _ => None,
            })
            .collect();
        assert_eq!(finalized, vec![hid]);
        assert_eq!(s.sl.optimistic().bonded, U256::ZERO);
        assert_eq!(
            s.sl.total_value(),
            value,
            "the burned half is counted as burned"
        );
    }

    #[test]
    fn a_move_allowance_below_one_sl_block_is_refused_with_a_typed_error() {
        let mut c = SlConfig::new(Address::ZERO);
        c.sl_block_time_ms = 1_000;
        c.optimistic.chains = vec![CHAIN];
        c.optimistic.move_ms = Some(999);
        assert_eq!(
            SettlementLayer::new(c.clone(), Box::new(ReExecution::new())).err(),
            Some(SettlementError::DisputeClock(
                ClockRuleError::MoveShorterThanBlock {
                    move_ms: 999,
                    sl_block_time_ms: 1_000
                }
            ))
        );
        // one SL block (the default) or more is fine; the clock grows with log_k of the steps
        c.optimistic.move_ms = None;
        assert!(SettlementLayer::new(c.clone(), Box::new(ReExecution::new())).is_ok());
        c.optimistic.k = 4;
        c.optimistic.clock_ms = 4_500;
        assert_eq!(c.optimistic.game_clock_ms(174, 1_000), 9_500);
        assert_eq!(
            c.optimistic.game_clock_ms(1_000_000, 1_000),
            4_500 + 11 * 1_000
        );
        c.optimistic.move_ms = Some(2_500);
        assert!(SettlementLayer::new(c.clone(), Box::new(ReExecution::new())).is_ok());
        assert_eq!(c.optimistic.game_clock_ms(174, 1_000), 4_500 + 5 * 2_500);
    }
}
