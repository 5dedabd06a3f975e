//! The validator role of fast-finality settlement (seed 002), as a sans-IO state machine.
//!
//! A validator follows the chains it validates block by block. For each block it re-executes the
//! transactions on a copy of the state after the block's parent and compares every header field
//! it can recompute (state root, LocalRoot, receipts, gas): a match is an *accept* vote, anything
//! else a *reject* vote, on `(chain, epoch, height, parent hash, block hash, state root)`, signed
//! with BLS12-381 ([`braid_finality`]). Votes from more than two thirds of the epoch's stake for
//! one block form its quorum certificate.
//!
//! The validator keeps the state after every block it executed, keyed by block hash, until the
//! block is final on the SL ([`Validator::finalized`]): a chain that reverts and re-sequences
//! simply continues from an older parent, with no extra input. It signs through a
//! [`ValidatorSigner`], whose slashing protection refuses to accept two different blocks at one
//! height (across restarts with [`braid_finality::RedbSlashingProtection`]); after a revert it
//! still executes the replacement blocks (so it can vote on their successors) but stays silent at
//! the heights it already accepted. Blocks built on a rejected block are rejected too.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::B256;
use braid_execution::{execute_block, ChainState};
use braid_finality::{FinalityError, SignedVote, SlashingProtection, ValidatorSigner, Vote};
use braid_primitives::{Block, BlockHeader, BlockNumber, ChainId};

/// Errors of the validator role.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidatorError {
    /// The chain is not validated by this validator.
    #[error("chain {0} is not validated here")]
    UnknownChain(ChainId),
    /// The block's parent was never seen: the validator missed a block and cannot vote.
    #[error("block {height} of chain {chain}: parent {parent} unknown")]
    UnknownParent {
        /// The chain.
        chain: ChainId,
        /// The block's height.
        height: BlockNumber,
        /// The missing parent.
        parent: B256,
    },
    /// The validator is in no set yet (or not in the current epoch's).
    #[error("not in the validator set of the current epoch")]
    NotInSet,
    /// Signing failed (slashing protection store error).
    #[error(transparent)]
    Finality(#[from] FinalityError),
}

/// What became of one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockVerdict {
    /// Re-executed and signed.
    Voted(Box<SignedVote>),
    /// Re-executed (and tracked), but slashing protection forbids a vote at this height: an
    /// accept vote for another block was signed here before.
    Silent {
        /// Whether the block re-executed correctly.
        valid: bool,
    },
}

/// One executed block: its height, whether it was valid, and the state after it (valid only).
#[derive(Debug, Clone)]
struct Executed {
    number: BlockNumber,
    state: Option<ChainState>,
}

#[derive(Debug, Clone, Default)]
struct ChainReplica {
    /// Executed blocks by hash (state `None`: the block was invalid).
    blocks: BTreeMap<B256, Executed>,
    /// Block hashes by height, for pruning.
    by_height: BTreeMap<BlockNumber, BTreeSet<B256>>,
    /// Highest height below which everything was pruned.
    finalized: BlockNumber,
}

/// The validator state machine.
#[derive(Debug)]
pub struct Validator<P: SlashingProtection> {
    signer: ValidatorSigner<P>,
    chains: BTreeMap<ChainId, ChainReplica>,
    /// The current epoch, while this validator is in its set.
    epoch: Option<u64>,
}

impl<P: SlashingProtection> Validator<P> {
    /// A validator signing with `signer`, validating no chain yet.
    pub fn new(signer: ValidatorSigner<P>) -> Self {
        Self {
            signer,
            chains: BTreeMap::new(),
            epoch: None,
        }
    }

    /// Starts validating a chain from its genesis block and state.
    pub fn add_chain(&mut self, genesis: &BlockHeader, state: ChainState) {
        let mut replica = ChainReplica::default();
        let hash = genesis.hash();
        replica.blocks.insert(
            hash,
            Executed {
                number: genesis.number,
                state: Some(state),
            },
        );
        replica
            .by_height
            .entry(genesis.number)
            .or_default()
            .insert(hash);
        replica.finalized = genesis.number;
        self.chains.insert(genesis.chainId, replica);
    }

    /// The epoch and this validator's index in its set (`None`: not a member).
    pub fn set_epoch(&mut self, epoch: u64, index: Option<u32>) {
        if let Some(i) = index {
            self.signer.set_index(i);
        }
        self.epoch = index.map(|_| epoch);
    }

    /// The signer (public key, slashing protection).
    pub fn signer(&self) -> &ValidatorSigner<P> {
        &self.signer
    }

    /// Re-executes `block` and votes on it. An error changes nothing.
    pub fn on_block(&mut self, block: &Block) -> Result<BlockVerdict, ValidatorError> {
        let h = &block.header;
        let replica = self
            .chains
            .get(&h.chainId)
            .ok_or(ValidatorError::UnknownChain(h.chainId))?;
        let parent = replica
            .blocks
            .get(&h.parentHash)
            .filter(|p| p.number + 1 == h.number)
            .ok_or(ValidatorError::UnknownParent {
                chain: h.chainId,
                height: h.number,
                parent: h.parentHash,
            })?;
        let epoch = self.epoch.ok_or(ValidatorError::NotInSet)?;
        let after = parent.state.as_ref().and_then(|state| {
            let mut state = state.clone();
            execute_block(&mut state, h.parentHash, block)
                .ok()
                .map(|_| state)
        });
        let valid = after.is_some();
        let hash = h.hash();
        let vote = Vote {
            chainId: h.chainId,
            epoch,
            height: h.number,
            parentHash: h.parentHash,
            blockHash: hash,
            stateRoot: h.stateRoot,
            accept: valid,
        };
        let verdict = match self.signer.vote(vote) {
            Ok(signed) => BlockVerdict::Voted(Box::new(signed)),
            Err(FinalityError::WouldEquivocate { .. }) => BlockVerdict::Silent { valid },
            Err(e) => return Err(e.into()),
        };
        if let Some(replica) = self.chains.get_mut(&h.chainId) {
            replica.blocks.insert(
                hash,
                Executed {
                    number: h.number,
                    state: after,
                },
            );
            replica.by_height.entry(h.number).or_default().insert(hash);
        }
        Ok(verdict)
    }

    /// Block `height` of `chain` is final on the SL: states of blocks below it (and of other
    /// blocks at its height) are no longer needed.
    pub fn finalized(&mut self, chain: ChainId, height: BlockNumber, hash: B256) {
        let Some(replica) = self.chains.get_mut(&chain) else {
            return;
        };
        if height <= replica.finalized || !replica.blocks.contains_key(&hash) {
            return;
        }
        let mut keep = replica.by_height.split_off(&height);
        let dropped = std::mem::take(&mut replica.by_height);
        if let Some(at) = keep.get_mut(&height) {
            for other in at.iter().filter(|h| **h != hash) {
                replica.blocks.remove(other);
            }
            at.retain(|h| *h == hash);
        }
        for hashes in dropped.values() {
            for h in hashes {
                replica.blocks.remove(h);
            }
        }
        replica.by_height = keep;
        replica.finalized = height;
    }

    /// Number of block states held for `chain` (memory check).
    pub fn held_blocks(&self, chain: ChainId) -> usize {
        self.chains.get(&chain).map_or(0, |r| r.blocks.len())
    }
}

#[cfg(test)]
mod tests;
