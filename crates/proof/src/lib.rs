//! Proof systems that convince the settlement layer a committed batch is a correct transition.
//!
//! The settlement layer talks to every backend through [`ProofSystem`]: given the claim (the
//! committed [`BatchHeader`], the state the batch starts from, and the batch's DA data) and the
//! prover's proof bytes, a backend either returns the batch's verified public outputs
//! ([`BatchOutputs`]: every block's LocalRoot, the value totals before and after, the imports) or
//! a typed [`ProofError`]. A backend may be slow or non-succinct; it may never accept without
//! checking.
//!
//! [`ReExecution`] is the default backend: it keeps the post-state of every verified batch and
//! re-executes the next batch's blocks from DA data on top of it, checking every block header
//! (state root, LocalRoot, message count, imports hash, parent links) and the batch record
//! (state root, ChainBatchRoot, message count, imports hash, last block hash). It needs no proof
//! bytes and refuses any.

use std::collections::BTreeMap;

use alloy_primitives::B256;
use braid_execution::{execute_block, ChainState, ExecutionError, ValueTotals};
use braid_primitives::{
    imports_hash, BatchHeader, Block, BlockNumber, ChainId, ImportedRoot, LocalRoot,
};

/// What a proof claims: `header` is a correct transition from the state after block
/// `prev_block_number` (hash `prev_block_hash`, state root `prev_state_root`), with `blocks` as
/// the batch's DA data.
#[derive(Debug, Clone, Copy)]
pub struct BatchClaim<'a> {
    /// The committed batch record.
    pub header: &'a BatchHeader,
    /// State root before the batch.
    pub prev_state_root: B256,
    /// Hash of the block before the batch.
    pub prev_block_hash: B256,
    /// Number of the block before the batch.
    pub prev_block_number: BlockNumber,
    /// The batch's blocks (DA data).
    pub blocks: &'a [Block],
}

/// The LocalRoot after one block of a verified batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRoot {
    /// Block number.
    pub number: BlockNumber,
    /// Message-tree root after the block.
    pub local_root: LocalRoot,
    /// Message-tree size after the block.
    pub message_count: u64,
}

/// Public outputs of a verified batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutputs {
    /// LocalRoot after every block, in order.
    pub block_roots: Vec<BlockRoot>,
    /// Value totals before the batch.
    pub totals_before: ValueTotals,
    /// Value totals after the batch.
    pub totals_after: ValueTotals,
    /// Every root the batch imported, in order.
    pub imports: Vec<ImportedRoot>,
}

/// Why a proof was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The backend does not know the state the batch starts from.
    #[error("unknown pre-state {state_root} of chain {chain}")]
    UnknownPreState {
        /// The chain.
        chain: ChainId,
        /// The state root the claim starts from.
        state_root: B256,
    },
    /// Proof bytes the backend cannot use.
    #[error("malformed proof: {reason}")]
    MalformedProof {
        /// What is wrong.
        reason: String,
    },
    /// The DA data does not cover the claimed block range.
    #[error("DA data does not match the batch: {reason}")]
    DataMismatch {
        /// What is wrong.
        reason: String,
    },
    /// A block fails re-execution.
    #[error("block {number} is invalid: {error}")]
    InvalidBlock {
        /// The block.
        number: BlockNumber,
        /// Why.
        error: ExecutionError,
    },
    /// The batch record disagrees with the verified execution.
    #[error("batch field {field} is {claimed}, execution gives {computed}")]
    BatchMismatch {
        /// The field.
        field: &'static str,
        /// The committed value.
        claimed: String,
        /// The verified value.
        computed: String,
    },
}

/// A proof system for batches.
pub trait ProofSystem {
    /// Short backend name for logs and reports.
    fn name(&self) -> &'static str;

    /// Verifies `proof` for `claim`; on success returns the batch's public outputs.
    fn verify(&mut self, claim: &BatchClaim<'_>, proof: &[u8]) -> Result<BatchOutputs, ProofError>;

    /// Registers a chain's genesis state (the state the first batch starts from).
    fn register_genesis(&mut self, genesis: ChainState);

    /// Hint: of `chain`'s states only those with roots in `keep` can still be needed.
    fn retain(&mut self, chain: ChainId, keep: &[B256]);
}

/// The re-execution backend (see the crate docs).
#[derive(Debug, Default, Clone)]
pub struct ReExecution {
    states: BTreeMap<(ChainId, B256), ChainState>,
}

impl ReExecution {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of chain states held.
    pub fn states_held(&self) -> usize {
        self.states.len()
    }
}

fn mismatch<T: std::fmt::Debug>(field: &'static str, claimed: T, computed: T) -> ProofError {
    ProofError::BatchMismatch {
        field,
        claimed: format!("{claimed:?}"),
        computed: format!("{computed:?}"),
    }
}

impl ProofSystem for ReExecution {
    fn name(&self) -> &'static str {
        "re-execution"
    }

    fn verify(&mut self, claim: &BatchClaim<'_>, proof: &[u8]) -> Result<BatchOutputs, ProofError> {
        if !proof.is_empty() {
            return Err(ProofError::MalformedProof {
                reason: "re-execution takes no proof bytes".into(),
            });
        }
        let h = claim.header;
        let chain = h.chainId;
        let mut state = self
            .states
            .get(&(chain, claim.prev_state_root))
            .cloned()
            .ok_or(ProofError::UnknownPreState {
                chain,
                state_root: claim.prev_state_root,
            })?;
        if h.firstBlock != claim.prev_block_number + 1 || h.lastBlock < h.firstBlock {
            return Err(ProofError::DataMismatch {
                reason: format!(
                    "batch covers blocks {}..={} but the previous batch ended at {}",
                    h.firstBlock, h.lastBlock, claim.prev_block_number
                ),
            });
        }
        let expected_blocks = h.lastBlock - h.firstBlock + 1;
        if claim.blocks.len() as u64 != expected_blocks {
            return Err(ProofError::DataMismatch {
                reason: format!(
                    "{} blocks for a {expected_blocks}-block batch",
                    claim.blocks.len()
                ),
            });
        }
        let totals_before = state.totals();
        let mut parent = claim.prev_block_hash;
        let mut block_roots = Vec::with_capacity(claim.blocks.len());
        let mut imports = Vec::new();
        for (offset, block) in claim.blocks.iter().enumerate() {
            let number = h.firstBlock + offset as u64;
            if block.header.number != number || block.header.chainId != chain {
                return Err(ProofError::DataMismatch {
                    reason: format!(
                        "expected block {number} of chain {chain}, got block {} of chain {}",
                        block.header.number, block.header.chainId
                    ),
                });
            }
            execute_block(&mut state, parent, block)
                .map_err(|error| ProofError::InvalidBlock { number, error })?;
            parent = block.header.hash();
            block_roots.push(BlockRoot {
                number,
                local_root: block.header.localRoot,
                message_count: block.header.messageCount,
            });
            imports.extend(block.imports.iter().cloned());
        }
        if h.lastBlockHash != parent {
            return Err(mismatch("lastBlockHash", h.lastBlockHash, parent));
        }
        let root = state.state_root();
        if h.stateRoot != root {
            return Err(mismatch("stateRoot", h.stateRoot, root));
        }
        if h.chainBatchRoot != state.outbox().root() {
            return Err(mismatch(
                "chainBatchRoot",
                h.chainBatchRoot,
                state.outbox().root(),
            ));
        }
        if h.messageCount != state.outbox().len() {
            return Err(mismatch(
                "messageCount",
                h.messageCount,
                state.outbox().len(),
            ));
        }
        let ih = imports_hash(&imports);
        if h.importsHash != ih {
            return Err(mismatch("importsHash", h.importsHash, ih));
        }
        let totals_after = state.totals();
        self.states.insert((chain, root), state);
        Ok(BatchOutputs {
            block_roots,
            totals_before,
            totals_after,
            imports,
        })
    }

    fn register_genesis(&mut self, mut genesis: ChainState) {
        let root = genesis.state_root();
        self.states.insert((genesis.chain_id(), root), genesis);
    }

    fn retain(&mut self, chain: ChainId, keep: &[B256]) {
        self.states
            .retain(|(c, root), _| *c != chain || keep.contains(root));
    }
}

#[cfg(test)]
mod tests;
