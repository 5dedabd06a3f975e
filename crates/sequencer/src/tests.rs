#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use alloy_consensus::TxEip1559;
use alloy_primitives::TxKind;
use braid_execution::{execute_block, TxSigner};
use braid_primitives::{Deposit, ImportKind};

const CHAIN: ChainId = 901;
const ETH: u128 = 1_000_000_000_000_000_000;

fn config() -> SequencerConfig {
    let mut c = SequencerConfig::new(CHAIN);
    c.batch_blocks = 3;
    c.fee_recipient = Address::repeat_byte(0xfe);
    c
}

fn alloc() -> Vec<(Address, U256)> {
    (0..4)
        .map(|i| (TxSigner::dev(i).address(), U256::from(10 * ETH)))
        .collect()
}

fn tx(signer: u32, nonce: u64, max_fee: u128, tip: u128) -> Bytes {
    TxSigner::dev(signer)
        .sign_eip1559(TxEip1559 {
            chain_id: CHAIN,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
            to: TxKind::Call(Address::repeat_byte(0x77)),
            value: U256::from(1u64),
            access_list: Default::default(),
            input: Bytes::new(),
        })
        .unwrap()
}

fn blocks(outputs: &[SequencerOutput]) -> Vec<SealedBlock> {
    outputs
        .iter()
        .filter_map(|o| match o {
            SequencerOutput::BlockSealed(b) => Some((**b).clone()),
            _ => None,
        })
        .collect()
}

fn accepted(out: &[SequencerOutput]) -> bool {
    matches!(out, [SequencerOutput::TxAccepted { .. }])
}

#[test]
fn blocks_follow_the_block_time_and_batches_seal_every_n_blocks() {
    let (mut seq, genesis) = Sequencer::genesis(config(), &alloc()).unwrap();
    assert_eq!(genesis.block.header.number, 0);
    assert!(seq.handle(SequencerInput::Tick { now_ms: 999 }).is_empty());
    let mut all = vec![];
    for t in 1..=6 {
        all.extend(seq.handle(SequencerInput::Tick { now_ms: t * 1000 }));
    }
    let produced = blocks(&all);
    assert_eq!(produced.len(), 6);
    for (i, b) in produced.iter().enumerate() {
        assert_eq!(b.block.header.number, i as u64 + 1);
        assert_eq!(b.block.header.timestampMs, (i as u64 + 1) * 1000);
    }
    assert_eq!(produced[0].block.header.parentHash, genesis.hash);
    assert_eq!(produced[1].block.header.parentHash, produced[0].hash);
    let batches: Vec<_> = all
        .iter()
        .filter_map(|o| match o {
            SequencerOutput::BatchSealed(b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(batches.len(), 2);
    let b1 = &batches[0].header;
    assert_eq!((b1.number, b1.firstBlock, b1.lastBlock), (1, 1, 3));
    assert_eq!(b1.lastBlockHash, produced[2].hash);
    assert_eq!(b1.chainBatchRoot, produced[2].block.header.localRoot);
    assert_eq!(b1.daCommitment, da_commitment(&batches[0].blocks));
    assert_eq!(batches[1].header.firstBlock, 4);
    assert_eq!(seq.last_batch(), 2);
}

#[test]
fn pooled_transactions_are_included_in_nonce_order_and_blocks_re_execute() {
    let (mut seq, genesis) = Sequencer::genesis(config(), &alloc()).unwrap();
    // nonce 1 arrives before nonce 0: it waits, then both go in, in order
    assert!(accepted(&seq.handle(SequencerInput::SubmitTx {
        raw: tx(0, 1, 10_000_000_000, 1)
    })));
    assert!(accepted(&seq.handle(SequencerInput::SubmitTx {
        raw: tx(0, 0, 10_000_000_000, 1)
    })));
    // a second sender paying a higher tip goes first
    assert!(accepted(&seq.handle(SequencerInput::SubmitTx {
        raw: tx(1, 0, 10_000_000_000, 5)
    })));
    let out = seq.handle(SequencerInput::Tick { now_ms: 1000 });
    let b = &blocks(&out)[0];
    assert_eq!(b.block.transactions.len(), 3);
    let senders: Vec<_> = b
        .block
        .transactions
        .iter()
        .map(|r| {
            let t = RecoveredTx::decode(r).unwrap();
            (t.sender, t.nonce())
        })
        .collect();
    let a0 = TxSigner::dev(0).address();
    let a1 = TxSigner::dev(1).address();
    assert_eq!(senders, vec![(a1, 0), (a0, 0), (a0, 1)]);
    assert!(seq.mempool().is_empty());
    assert_eq!(seq.state().account(&a0).nonce, 2);

    // a replica that only sees blocks reaches the same state
    let mut replica = ChainState::genesis(CHAIN, &alloc());
    assert_eq!(replica.state_root(), genesis.block.header.stateRoot);
    execute_block(&mut replica, genesis.hash, &b.block).unwrap();
    assert_eq!(replica.state_root(), b.block.header.stateRoot);
    assert!(replica.value_conserved());
}

#[test]
fn replacement_needs_a_fee_bump() {
    let (mut seq, _) = Sequencer::genesis(config(), &alloc()).unwrap();
    let first = tx(0, 0, 10_000_000_000, 1_000_000_000);
    assert!(accepted(
        &seq.handle(SequencerInput::SubmitTx { raw: first.clone() })
    ));
    let out = seq.handle(SequencerInput::SubmitTx { raw: first.clone() });
    assert!(matches!(
        &out[..],
        [SequencerOutput::TxRejected {
            error: SequencerError::Mempool(MempoolError::AlreadyKnown(_)),
            ..
        }]
    ));
    let cheap = tx(0, 0, 10_500_000_000, 1_050_000_000); // +5%: not enough
    let out = seq.handle(SequencerInput::SubmitTx { raw: cheap });
    assert!(matches!(
        &out[..],
        [SequencerOutput::TxRejected {
            error: SequencerError::Mempool(MempoolError::ReplacementUnderpriced { .. }),
            ..
        }]
    ));
    let better = tx(0, 0, 11_000_000_000, 1_100_000_000);
    let out = seq.handle(SequencerInput::SubmitTx {
        raw: better.clone(),
    });
    let old_hash = RecoveredTx::decode(&first).unwrap().hash;
    assert!(
        matches!(&out[..], [SequencerOutput::TxAccepted { replaced: Some(h), .. }] if *h == old_hash)
    );
    assert_eq!(seq.mempool().len(), 1);
    let b = &blocks(&seq.handle(SequencerInput::Tick { now_ms: 1000 }))[0];
    assert_eq!(b.block.transactions, vec![better]);
}

#[test]
fn a_transaction_filling_a_gap_evicts_the_highest_from_a_full_queue() {
    let mut c = config();
    c.mempool = MempoolConfig {
        max_txs: 10,
        max_per_sender: 2,
        max_nonce_gap: 4,
        price_bump_percent: 10,
    };
    let (mut seq, _) = Sequencer::genesis(c, &alloc()).unwrap();
    let fee = 10_000_000_000;
    let submit = |seq: &mut Sequencer, raw| seq.handle(SequencerInput::SubmitTx { raw });
    // nonces 1 and 2 wait behind the missing 0 (say it failed in a block); the queue is full
    assert!(accepted(&submit(&mut seq, tx(0, 1, fee, 1))));
    assert!(accepted(&submit(&mut seq, tx(0, 2, fee, 1))));
    // nonce 3 does not fill the gap: refused
    assert!(matches!(
        &submit(&mut seq, tx(0, 3, fee, 1))[..],
        [SequencerOutput::TxRejected {
            error: SequencerError::Mempool(MempoolError::SenderFull { .. }),
            ..
        }]
    ));
    // nonce 0 fills it and displaces nonce 2
    let filler = tx(0, 0, fee, 1);
    let evicted = RecoveredTx::decode(&tx(0, 2, fee, 1)).unwrap().hash;
    match &submit(&mut seq, filler)[..] {
        [SequencerOutput::TxAccepted { replaced, .. }] => assert_eq!(*replaced, Some(evicted)),
        other => panic!("{other:?}"),
    }
    assert_eq!(seq.mempool().len(), 2);
    let b = &blocks(&seq.handle(SequencerInput::Tick { now_ms: 1000 }))[0];
    assert_eq!(b.block.transactions.len(), 2, "nonces 0 and 1 are included");
}

#[test]
fn the_pool_is_bounded() {
    let mut c = config();
    c.mempool = MempoolConfig {
        max_txs: 3,
        max_per_sender: 2,
        max_nonce_gap: 4,
        price_bump_percent: 10,
    };
    let (mut seq, _) = Sequencer::genesis(c, &alloc()).unwrap();
    let fee = 10_000_000_000;
    let submit = |seq: &mut Sequencer, raw| seq.handle(SequencerInput::SubmitTx { raw });
    assert!(matches!(
        &submit(&mut seq, tx(0, 5, fee, 1))[..],
        [SequencerOutput::TxRejected {
            error: SequencerError::Mempool(MempoolError::NonceTooFarAhead { .. }),
            ..
        }]
    ));
    assert!(accepted(&submit(&mut seq, tx(0, 0, fee, 1))));
    assert!(accepted(&submit(&mut seq, tx(0, 1, fee, 1))));
    assert!(matches!(
        &submit(&mut seq, tx(0, 2, fee, 1))[..],
        [SequencerOutput::TxRejected {
            error: SequencerError::Mempool(MempoolError::SenderFull { .. }),
            ..
        }]
    ));
    assert!(accepted(&submit(&mut seq, tx(1, 0, fee, 1))));
    assert!(matches!(
        &submit(&mut seq, tx(2, 0, fee, 1))[..],
        [SequencerOutput::TxRejected {
            error: SequencerError::Mempool(MempoolError::PoolFull { limit: 3 }),
            ..
        }]
    ));
    // admission checks reject unpayable and foreign transactions without touching the pool
    let poor = TxSigner::dev(9)
        .call(
            CHAIN,
            0,
            Address::ZERO,
            U256::from(1u64),
            Bytes::new(),
            21_000,
        )
        .unwrap();
    assert!(matches!(
        &submit(&mut seq, poor)[..],
        [SequencerOutput::TxRejected {
            error: SequencerError::Execution(ExecutionError::InsufficientBalance { .. }),
            ..
        }]
    ));
    assert!(matches!(
        &submit(&mut seq, Bytes::from_static(&[0xc0]))[..],
        [SequencerOutput::TxRejected {
            hash: None,
            error: SequencerError::Execution(ExecutionError::MalformedTx { .. })
        }]
    ));
    assert_eq!(seq.mempool().len(), 3);
}

#[test]
fn imports_are_committed_in_the_header() {
    let (mut seq, _) = Sequencer::genesis(config(), &alloc()).unwrap();
    let import = ImportedRoot {
        kind: 0,
        sourceChain: 902,
        sourceHeight: 4,
        root: B256::repeat_byte(3),
        messageCount: 2,
    };
    assert!(matches!(
        &seq.handle(SequencerInput::Import(import.clone()))[..],
        [SequencerOutput::ImportQueued(_)]
    ));
    let mut own = import.clone();
    own.sourceChain = CHAIN;
    assert!(matches!(
        &seq.handle(SequencerInput::Import(own))[..],
        [SequencerOutput::ImportRejected { .. }]
    ));
    let b = &blocks(&seq.handle(SequencerInput::Tick { now_ms: 1000 }))[0];
    assert_eq!(b.block.imports, vec![import.clone()]);
    assert_eq!(b.block.header.importsHash, imports_hash(&[import]));
}

#[test]
fn same_inputs_give_the_same_chain() {
    let run = || {
        let (mut seq, _) = Sequencer::genesis(config(), &alloc()).unwrap();
        let mut hashes = vec![];
        for t in 1..=5u64 {
            for s in 0..3u32 {
                seq.handle(SequencerInput::SubmitTx {
                    raw: tx(s, t - 1, 10_000_000_000, (s as u128 + 1) * 7),
                });
            }
            for o in seq.handle(SequencerInput::Tick { now_ms: t * 1000 }) {
                if let SequencerOutput::BlockSealed(b) = o {
                    hashes.push(b.hash);
                }
            }
        }
        hashes
    };
    let a = run();
    assert_eq!(a.len(), 5);
    assert_eq!(a, run());
}

#[test]
fn base_fee_rises_with_full_blocks_and_never_falls_below_the_floor() {
    let mut c = config();
    c.block_gas_limit = 42_000; // two transfers fill a block
    let (mut seq, _) = Sequencer::genesis(c, &alloc()).unwrap();
    assert_eq!(seq.next_base_fee(), 1_000_000_000);
    for s in 0..2u32 {
        seq.handle(SequencerInput::SubmitTx {
            raw: tx(s, 0, 10_000_000_000, 1),
        });
    }
    seq.handle(SequencerInput::Tick { now_ms: 1000 });
    assert_eq!(seq.head().gasUsed, 42_000);
    assert!(seq.next_base_fee() > 1_000_000_000);
    seq.handle(SequencerInput::Tick { now_ms: 2000 });
    seq.handle(SequencerInput::Tick { now_ms: 3000 });
    assert_eq!(seq.next_base_fee(), 1_000_000_000);
}

#[test]
fn invalid_config_is_a_typed_error() {
    let mut c = config();
    c.batch_blocks = 0;
    assert!(matches!(
        Sequencer::genesis(c, &[]),
        Err(SequencerError::InvalidConfig { .. })
    ));
}

/// Runs `blocks` blocks, each with one transfer from signer 0.
fn run_blocks(seq: &mut Sequencer, blocks: u64) -> Vec<SequencerOutput> {
    let mut out = vec![];
    for _ in 0..blocks {
        let nonce = seq.state().account(&TxSigner::dev(0).address()).nonce;
        assert!(accepted(&seq.handle(SequencerInput::SubmitTx {
            raw: tx(0, nonce, 10_000_000_000, 1)
        })));
        let now = seq.next_block_at_ms();
        out.extend(seq.handle(SequencerInput::Tick { now_ms: now }));
    }
    out
}

#[test]
fn revert_errors_are_typed_and_change_nothing() {
    let (mut seq, _) = Sequencer::genesis(config(), &alloc()).unwrap();
    run_blocks(&mut seq, 10); // batches 1-3 sealed (3 blocks each), block 10 open
    assert_eq!(seq.last_batch(), 3);
    assert_eq!(seq.oldest_revertible_batch(), Some(0));
    seq.finalize_through(2);
    assert_eq!(seq.oldest_revertible_batch(), Some(2));
    assert!(seq.unfinalized_batch_blocks(2).is_none());
    assert_eq!(seq.unfinalized_batch_blocks(3).map(<[Block]>::len), Some(3));
    assert!(accepted(&seq.handle(SequencerInput::SubmitTx {
        raw: tx(1, 0, 10_000_000_000, 1)
    })));
    let before = (
        seq.head().hash(),
        seq.last_batch(),
        seq.mempool().len(),
        seq.open_batch().len(),
        seq.state_mut().state_root(),
    );
    assert_eq!(
        seq.revert_to(1, |_| false),
        Err(SequencerError::RevertTooOld {
            requested: 1,
            oldest: Some(2)
        })
    );
    assert_eq!(
        seq.revert_to(4, |_| false),
        Err(SequencerError::RevertBeyondLastBatch {
            requested: 4,
            last_batch: 3
        })
    );
    let after = (
        seq.head().hash(),
        seq.last_batch(),
        seq.mempool().len(),
        seq.open_batch().len(),
        seq.state_mut().state_root(),
    );
    assert_eq!(before, after);
    // the finalized batch itself is a valid revert target
    let outcome = seq.revert_to(2, |_| false).unwrap();
    assert_eq!(outcome.head.number, 6);
    assert_eq!(outcome.reverted_blocks, 7..11);
    assert_eq!(outcome.reverted_batches, 3..4);
    assert_eq!(outcome.txs_repooled, 4);
    assert_eq!(seq.mempool().len(), 5);
    assert_eq!(seq.oldest_revertible_batch(), Some(2));
}

#[test]
fn finalize_bounds_the_kept_batches() {
    let (mut seq, _) = Sequencer::genesis(config(), &alloc()).unwrap();
    run_blocks(&mut seq, 9);
    seq.finalize_through(1);
    seq.finalize_through(0); // older than the floor: nothing changes
    assert_eq!(seq.oldest_revertible_batch(), Some(1));
    seq.finalize_through(99); // beyond the last batch: finalizes through the last one
    assert_eq!(seq.oldest_revertible_batch(), Some(3));
    assert!(seq.unfinalized_batch_blocks(3).is_none());
    run_blocks(&mut seq, 3);
    assert_eq!(seq.unfinalized_batch_blocks(4).map(<[Block]>::len), Some(3));
    // reverting to the last batch with an empty open batch reverts nothing
    let head = seq.head().clone();
    let outcome = seq.revert_to(4, |_| false).unwrap();
    assert!(outcome.reverted_blocks.is_empty());
    assert!(outcome.reverted_batches.is_empty());
    assert_eq!(outcome.head, head);
    assert_eq!(*seq.head(), head);
}

#[test]
fn a_restored_sequencer_reverts_only_back_to_its_restore_point() {
    let (mut seq, _) = Sequencer::genesis(config(), &alloc()).unwrap();
    run_blocks(&mut seq, 7); // batches 1-2, block 7 open
    let open: Vec<Block> = seq.open_batch().to_vec();
    let restore = |seq: &Sequencer, open: Vec<Block>, head: BlockHeader| {
        Sequencer::restore(
            seq.config().clone(),
            seq.state().clone(),
            head,
            open,
            seq.last_batch(),
        )
        .unwrap()
    };
    // mid-batch: no snapshot until the next batch is sealed
    let mut mid = restore(&seq, open, seq.head().clone());
    assert_eq!(mid.oldest_revertible_batch(), None);
    assert_eq!(
        mid.revert_to(2, |_| false),
        Err(SequencerError::RevertTooOld {
            requested: 2,
            oldest: None
        })
    );
    run_blocks(&mut mid, 2); // seals batch 3
    assert_eq!(mid.oldest_revertible_batch(), Some(3));
    // at a batch end: the restore point is revertible, earlier batches are not
    let mut snapshot = seq.clone();
    snapshot.revert_to(2, |_| false).unwrap();
    let mut at_end = restore(&snapshot, vec![], snapshot.head().clone());
    assert_eq!(at_end.oldest_revertible_batch(), Some(2));
    assert!(matches!(
        at_end.revert_to(1, |_| false),
        Err(SequencerError::RevertTooOld {
            requested: 1,
            oldest: Some(2)
        })
    ));
    let head = at_end.head().clone();
    run_blocks(&mut at_end, 2);
    let outcome = at_end.revert_to(2, |_| false).unwrap();
    assert_eq!(outcome.head, head);
    assert_eq!(outcome.txs_repooled, 2);
}

#[test]
fn deposits_are_forced_into_the_next_block_in_index_order_and_survive_reverts() {
    let (mut seq, _) = Sequencer::genesis(config(), &alloc()).unwrap();
    let deposit = |index: u64| Deposit {
        index,
        chainId: CHAIN,
        sender: Address::repeat_byte(0x51),
        recipient: Address::repeat_byte(0x52),
        amount: U256::from(ETH),
        queuedAtMs: 0,
    };
    // index 1 arrives first: it waits for index 0
    seq.handle(SequencerInput::Deposit(deposit(1)));
    let b1 = blocks(&seq.handle(SequencerInput::Tick { now_ms: 1000 }))[0].clone();
    assert!(b1.block.deposits.is_empty());
    seq.handle(SequencerInput::Deposit(deposit(0)));
    // a deposit for another chain is ignored
    let mut foreign = deposit(2);
    foreign.chainId = 999;
    seq.handle(SequencerInput::Deposit(foreign));
    let b2 = blocks(&seq.handle(SequencerInput::Tick { now_ms: 2000 }))[0].clone();
    assert_eq!(b2.block.deposits, vec![deposit(0), deposit(1)]);
    assert_eq!(b2.block.header.depositCount, 2);
    assert_eq!(
        seq.state().account(&Address::repeat_byte(0x52)).balance,
        U256::from(2 * ETH)
    );
    assert!(seq.state().value_conserved());
    // batch 1 = blocks 1..=3; revert to batch 0: the deposits are applied again after it
    seq.handle(SequencerInput::Tick { now_ms: 3000 });
    seq.revert_to(0, |_| false).unwrap();
    assert_eq!(seq.state().totals().deposit_count, 0);
    let again = blocks(&seq.handle(SequencerInput::Tick { now_ms: 4000 }))[0].clone();
    assert_eq!(again.block.deposits, vec![deposit(0), deposit(1)]);
}

#[test]
fn void_imports_in_the_open_batch_roll_it_back_and_are_dropped() {
    let (mut seq, _) = Sequencer::genesis(config(), &alloc()).unwrap();
    // batch 1 (3 blocks) sealed, then one open block importing a root of chain 902's block 4
    run_blocks(&mut seq, 3);
    assert_eq!(seq.last_batch(), 1);
    let import = ImportedRoot {
        kind: ImportKind::Precommit as u8,
        sourceChain: 902,
        sourceHeight: 4,
        root: B256::repeat_byte(3),
        messageCount: 2,
    };
    seq.handle(SequencerInput::Import(import.clone()));
    run_blocks(&mut seq, 1);
    assert_eq!(seq.open_batch().len(), 1);
    let head = seq.head().number;
    // a revert of 902 from block 5 leaves the import valid: nothing happens
    assert_eq!(
        seq.drop_void_imports(|i| i.voided_by(902, 3, 5)).unwrap(),
        None
    );
    assert_eq!(seq.head().number, head);
    // a revert from block 4 voids it: the open block is rolled back, its tx re-pooled
    let outcome = seq
        .drop_void_imports(|i| i.voided_by(902, 2, 4))
        .unwrap()
        .unwrap();
    assert_eq!(outcome.last_batch, 1);
    assert_eq!(outcome.txs_repooled, 1);
    assert!(seq.open_batch().is_empty());
    assert_eq!(seq.head().number, head - 1);
    // and the import is not queued again
    let next = blocks(&seq.handle(SequencerInput::Tick {
        now_ms: seq.next_block_at_ms(),
    }));
    assert!(
        next[0].block.imports.is_empty(),
        "{:?}",
        next[0].block.imports
    );
    assert_eq!(next[0].block.transactions.len(), 1, "the re-pooled tx");
}

/// Issue 15: a revert re-pooled at most 64 transactions per sender (the pool's per-sender
/// limit) and dropped the rest silently. Transactions of discarded blocks now all come back,
/// and any that cannot is reported with its reason.
#[test]
fn a_revert_repools_every_transaction_of_the_discarded_blocks_beyond_the_pool_limits() {
    let mut c = config();
    c.batch_blocks = 2;
    let (mut seq, _) = Sequencer::genesis(c, &alloc()).unwrap();
    // batch 1: empty blocks; then 150 transactions of one sender in the next batch
    for _ in 0..2 {
        let now = seq.next_block_at_ms();
        seq.handle(SequencerInput::Tick { now_ms: now });
    }
    assert_eq!(seq.last_batch(), 1);
    let mut sent = 0u64;
    while sent < 150 {
        // at most the pool's limit per sender at a time, one block each
        for _ in 0..50 {
            assert!(accepted(&seq.handle(SequencerInput::SubmitTx {
                raw: tx(1, sent, 10_000_000_000, 1)
            })));
            sent += 1;
        }
        let now = seq.next_block_at_ms();
        seq.handle(SequencerInput::Tick { now_ms: now });
    }
    let included = seq.state().account(&TxSigner::dev(1).address()).nonce;
    assert_eq!(included, 150, "all included before the revert");
    assert_eq!(seq.mempool().len(), 0);
    let outcome = seq.revert_to(1, |_| false).unwrap();
    assert_eq!(outcome.txs_repooled, 150, "{:?}", outcome.txs_dropped);
    assert_eq!(outcome.txs_not_repooled, 0);
    assert!(outcome.txs_dropped.is_empty());
    assert_eq!(seq.mempool().len(), 150);
    // re-sequenced, every one is included again, in nonce order
    for _ in 0..8 {
        let now = seq.next_block_at_ms();
        seq.handle(SequencerInput::Tick { now_ms: now });
    }
    assert_eq!(seq.state().account(&TxSigner::dev(1).address()).nonce, 150);
}

#[test]
fn a_repooled_transaction_whose_nonce_was_taken_is_reported_with_its_reason() {
    let (mut seq, _) = Sequencer::genesis(config(), &alloc()).unwrap();
    run_blocks(&mut seq, 3); // batch 1
    let nonce = seq.state().account(&TxSigner::dev(2).address()).nonce;
    assert!(accepted(&seq.handle(SequencerInput::SubmitTx {
        raw: tx(2, nonce, 10_000_000_000, 1)
    })));
    let now = seq.next_block_at_ms();
    seq.handle(SequencerInput::Tick { now_ms: now });
    // the pool cannot hold a second transaction at that nonce while the first is included,
    // so plant one the way a restart would: directly in the pool
    let other = RecoveredTx::decode(&tx(2, nonce, 20_000_000_000, 2)).unwrap();
    let other_hash = other.hash;
    seq.mempool.reinsert(other).unwrap();
    let outcome = seq.revert_to(1, |_| false).unwrap();
    assert_eq!(outcome.txs_not_repooled, 1);
    let (_, why) = &outcome.txs_dropped[0];
    assert_eq!(why.kind(), "NonceTaken");
    assert_eq!(
        *why,
        RepoolRefusal::Pool(MempoolError::NonceTaken { nonce })
    );
    assert!(seq.mempool().contains(&other_hash));
}
