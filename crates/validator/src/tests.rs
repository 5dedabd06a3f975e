#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use alloy_primitives::{keccak256, Address, U256};
use braid_execution::TxSigner;
use braid_finality::{BlsSecretKey, MemorySlashingProtection};
use braid_sequencer::{Sequencer, SequencerConfig, SequencerInput, SequencerOutput};

const CHAIN: ChainId = 901;

fn alloc() -> Vec<(Address, U256)> {
    vec![(TxSigner::dev(0).address(), U256::from(10u128.pow(21)))]
}

fn sequencer() -> (Sequencer, BlockHeader, ChainState) {
    let (seq, genesis) = Sequencer::genesis(SequencerConfig::new(CHAIN), &alloc()).unwrap();
    let state = seq.state().clone();
    (seq, genesis.block.header, state)
}

fn block_at(seq: &mut Sequencer, now_ms: u64) -> Block {
    seq.handle(SequencerInput::Tick { now_ms })
        .into_iter()
        .find_map(|o| match o {
            SequencerOutput::BlockSealed(b) => Some(b.block),
            _ => None,
        })
        .unwrap()
}

fn transfer(seq: &mut Sequencer, nonce: u64) {
    let raw = TxSigner::dev(0)
        .call(
            CHAIN,
            nonce,
            Address::repeat_byte(9),
            U256::from(1),
            Default::default(),
            21_000,
        )
        .unwrap();
    seq.handle(SequencerInput::SubmitTx { raw });
}

fn validator() -> Validator<MemorySlashingProtection> {
    let key = BlsSecretKey::from_seed(keccak256(b"validator").as_slice()).unwrap();
    let mut v = Validator::new(ValidatorSigner::new(
        key,
        0,
        MemorySlashingProtection::new(),
    ));
    v.set_epoch(0, Some(2));
    v
}

fn accepted(verdict: &BlockVerdict) -> bool {
    matches!(verdict, BlockVerdict::Voted(v) if v.vote.accept)
}

#[test]
fn honest_blocks_are_accepted_and_tampered_ones_rejected_with_their_descendants() {
    let (mut seq, genesis, state) = sequencer();
    let mut v = validator();
    v.add_chain(&genesis, state);
    transfer(&mut seq, 0);
    let b1 = block_at(&mut seq, 1_000);
    let verdict = v.on_block(&b1).unwrap();
    assert!(accepted(&verdict), "{verdict:?}");
    let BlockVerdict::Voted(vote) = verdict else {
        unreachable!()
    };
    assert_eq!(vote.validator, 2, "signs with its index in the epoch's set");
    assert_eq!(
        (vote.vote.height, vote.vote.blockHash, vote.vote.stateRoot),
        (1, b1.header.hash(), b1.header.stateRoot)
    );
    // a block claiming a wrong state root is rejected...
    transfer(&mut seq, 1);
    let mut b2 = block_at(&mut seq, 2_000);
    b2.header.stateRoot = B256::repeat_byte(0xee);
    let verdict = v.on_block(&b2).unwrap();
    assert!(
        matches!(&verdict, BlockVerdict::Voted(v) if !v.vote.accept),
        "{verdict:?}"
    );
    // ...and so is a block built on it, however well-formed
    let mut b3 = block_at(&mut seq, 3_000);
    b3.header.parentHash = b2.header.hash();
    let verdict = v.on_block(&b3).unwrap();
    assert!(
        matches!(&verdict, BlockVerdict::Voted(v) if !v.vote.accept),
        "{verdict:?}"
    );
}

#[test]
fn a_missed_block_is_an_error_that_changes_nothing() {
    let (mut seq, genesis, state) = sequencer();
    let mut v = validator();
    v.add_chain(&genesis, state);
    let _b1 = block_at(&mut seq, 1_000);
    let b2 = block_at(&mut seq, 2_000);
    assert!(matches!(
        v.on_block(&b2),
        Err(ValidatorError::UnknownParent { height: 2, .. })
    ));
    assert_eq!(v.held_blocks(CHAIN), 1);
    let mut other = b2.clone();
    other.header.chainId = 77;
    assert_eq!(v.on_block(&other), Err(ValidatorError::UnknownChain(77)));
    // outside the set: no vote
    v.set_epoch(1, None);
    let (mut seq, genesis, state) = sequencer();
    let mut fresh = validator();
    fresh.add_chain(&genesis, state);
    fresh.set_epoch(1, None);
    assert_eq!(
        fresh.on_block(&block_at(&mut seq, 1_000)),
        Err(ValidatorError::NotInSet)
    );
}

#[test]
fn after_a_revert_it_follows_the_replacement_but_never_accepts_two_blocks_at_one_height() {
    let (mut first, genesis, state) = sequencer();
    let (mut second, _, _) = sequencer();
    let mut v = validator();
    v.add_chain(&genesis, state);
    let a1 = block_at(&mut first, 1_000);
    assert!(accepted(&v.on_block(&a1).unwrap()));
    // the chain reverted block 1 and re-sequenced it differently
    let b1 = block_at(&mut second, 1_500);
    assert_ne!(a1.header.hash(), b1.header.hash());
    assert_eq!(
        v.on_block(&b1).unwrap(),
        BlockVerdict::Silent { valid: true }
    );
    // its successor is voted on: the validator executed the replacement
    let b2 = block_at(&mut second, 2_500);
    assert!(accepted(&v.on_block(&b2).unwrap()));
    assert_eq!(v.held_blocks(CHAIN), 4);
    // once block 2 is final, the losing fork and everything below are dropped
    v.finalized(CHAIN, 2, b2.header.hash());
    assert_eq!(v.held_blocks(CHAIN), 1);
    let b3 = block_at(&mut second, 3_500);
    assert!(accepted(&v.on_block(&b3).unwrap()));
}
