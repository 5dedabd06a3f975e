#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use alloy_primitives::{Address, Bytes, U256};
use braid_execution::TxSigner;
use braid_sequencer::{SealedBatch, Sequencer, SequencerConfig, SequencerInput, SequencerOutput};

const CHAIN: ChainId = 901;

fn alloc() -> Vec<(Address, U256)> {
    vec![(TxSigner::dev(0).address(), U256::from(10u128.pow(21)))]
}

/// Runs a chain for `batches` batches of 2 blocks with one transfer per block.
fn chain(batches: usize) -> (Block, Vec<SealedBatch>) {
    let mut c = SequencerConfig::new(CHAIN);
    c.batch_blocks = 2;
    let (mut seq, genesis) = Sequencer::genesis(c, &alloc()).unwrap();
    let mut out = vec![];
    let mut t = 0;
    while out.len() < batches {
        t += 1;
        let raw = TxSigner::dev(0)
            .call(
                CHAIN,
                t - 1,
                Address::repeat_byte(1),
                U256::from(t),
                Bytes::new(),
                21_000,
            )
            .unwrap();
        seq.handle(SequencerInput::SubmitTx { raw });
        for o in seq.handle(SequencerInput::Tick { now_ms: t * 1000 }) {
            if let SequencerOutput::BatchSealed(b) = o {
                out.push(*b);
            }
        }
    }
    (genesis.block, out)
}

fn backend() -> ReExecution {
    let mut b = ReExecution::new();
    b.register_genesis(ChainState::genesis(CHAIN, &alloc()));
    b
}

fn claim<'a>(prev: &BlockHeader, batch: &'a SealedBatch) -> BatchClaim<'a> {
    BatchClaim {
        header: &batch.header,
        prev_state_root: prev.stateRoot,
        prev_block_hash: prev.hash(),
        prev_block_number: prev.number,
        blocks: &batch.blocks,
    }
}

use braid_primitives::BlockHeader;

#[test]
fn honest_batches_verify_in_sequence_and_report_outputs() {
    let (genesis, batches) = chain(2);
    let mut b = backend();
    let out1 = b.verify(&claim(&genesis.header, &batches[0]), &[]).unwrap();
    assert_eq!(out1.block_roots.len(), 2);
    assert_eq!(
        out1.block_roots[1].local_root,
        batches[0].header.chainBatchRoot
    );
    assert!(out1.totals_after.burned_fees > out1.totals_before.burned_fees);
    let last1 = &batches[0].blocks[1].header;
    b.verify(&claim(last1, &batches[1]), &[]).unwrap();
    assert_eq!(b.states_held(), 3);
    b.retain(CHAIN, &[batches[1].header.stateRoot]);
    assert_eq!(b.states_held(), 1);
}

#[test]
fn wrong_state_root_is_caught_by_re_execution() {
    let (genesis, batches) = chain(1);
    let mut b = backend();
    // the batch record lies about the state root
    let mut lying = batches[0].clone();
    lying.header.stateRoot = B256::repeat_byte(7);
    assert!(matches!(
        b.verify(&claim(&genesis.header, &lying), &[]),
        Err(ProofError::BatchMismatch {
            field: "stateRoot",
            ..
        })
    ));
    // the sequencer signed off a block with a wrong state root, and made the batch consistent
    let mut forged = batches[0].clone();
    forged.blocks[1].header.stateRoot = B256::repeat_byte(7);
    forged.header.stateRoot = B256::repeat_byte(7);
    forged.header.lastBlockHash = forged.blocks[1].header.hash();
    let err = b.verify(&claim(&genesis.header, &forged), &[]).unwrap_err();
    assert!(
        matches!(
            &err,
            ProofError::InvalidBlock {
                number: 2,
                error: ExecutionError::HeaderMismatch {
                    field: "stateRoot",
                    ..
                }
            }
        ),
        "{err:?}"
    );
    // nothing was learned from the failed attempts: the honest batch still verifies
    b.verify(&claim(&genesis.header, &batches[0]), &[]).unwrap();
}

#[test]
fn claims_that_do_not_fit_are_refused() {
    let (genesis, batches) = chain(2);
    let mut b = backend();
    assert!(matches!(
        b.verify(&claim(&genesis.header, &batches[0]), &[1]),
        Err(ProofError::MalformedProof { .. })
    ));
    // batch 2 before batch 1 was verified: its pre-state is unknown
    let last1 = &batches[0].blocks[1].header;
    assert!(matches!(
        b.verify(&claim(last1, &batches[1]), &[]),
        Err(ProofError::UnknownPreState { .. })
    ));
    let mut short = batches[0].clone();
    short.blocks.pop();
    assert!(matches!(
        b.verify(&claim(&genesis.header, &short), &[]),
        Err(ProofError::DataMismatch { .. })
    ));
    let mut chain_root = batches[0].clone();
    chain_root.header.chainBatchRoot = B256::repeat_byte(1);
    assert!(matches!(
        b.verify(&claim(&genesis.header, &chain_root), &[]),
        Err(ProofError::BatchMismatch {
            field: "chainBatchRoot",
            ..
        })
    ));
    let mut reordered = batches[0].clone();
    reordered.blocks.swap(0, 1);
    assert!(matches!(
        b.verify(&claim(&genesis.header, &reordered), &[]),
        Err(ProofError::DataMismatch { .. })
    ));
}
