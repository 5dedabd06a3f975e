//! Settlement-layer transactions: calls signed with secp256k1 by their submitter.

use alloy_primitives::{keccak256, Address, Bytes, Signature, B256, U256};
use braid_execution::TxSigner;
use braid_merkle::ExtensionProof;
use braid_primitives::{BatchHeader, BatchNumber, Block, BlockHeader, ChainId, ImportedRoot};
use serde::{Deserialize, Serialize};

use crate::staking::JoinRequest;
use crate::{GameId, Proposal, ProposalId, SettlementError, DEFAULT_SL_CHAIN_ID};
use braid_finality::{Evidence, QuorumCertificate, SignedVote};

/// What a new chain brings to the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainGenesis {
    /// The chain id.
    pub chain_id: ChainId,
    /// The operator allowed to commit, prove, execute and revert its batches.
    pub operator: Address,
    /// Genesis balances; the SL escrows their sum for the chain.
    pub alloc: Vec<(Address, U256)>,
    /// The chain's genesis block header (height 0); its state root must match `alloc`.
    pub genesis_header: BlockHeader,
}

/// A settlement-layer call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlCall {
    /// Registers a chain (security council only).
    RegisterChain(ChainGenesis),
    /// Commits a batch: its record, its imports, and its blocks as DA data.
    CommitBatch {
        /// The batch record.
        header: BatchHeader,
        /// Every root the batch imported, in block order.
        imports: Vec<ImportedRoot>,
        /// The batch's blocks (DA data).
        blocks: Vec<Block>,
    },
    /// Proves a committed batch.
    ProveBatch {
        /// The chain.
        chain_id: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// Proof bytes for the SL's proof system (empty for re-execution).
        proof: Bytes,
    },
    /// Requests execution of a proven batch once its imports are settled. `extension_proofs`
    /// holds one proof per `precommit` or `qc` import of the batch, in import order.
    ExecuteBatch {
        /// The chain.
        chain_id: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// Extension proofs for the pre-commit and qc imports.
        extension_proofs: Vec<ExtensionProof>,
    },
    /// Stakes from the sender's SL balance and registers a BLS key as a validator.
    JoinValidators(JoinRequest),
    /// Leaves the validator set from the next epoch; unbonding starts.
    ExitValidators,
    /// Pays an exited validator's stake back once unbonding is over.
    WithdrawStake,
    /// Verifies a quorum certificate and records the certified block (postconfirmation).
    Postconfirm {
        /// The certificate.
        qc: QuorumCertificate,
        /// The certified block's header (hashes to the vote's block hash).
        header: BlockHeader,
    },
    /// Evidence of a validator signing two different votes at one height.
    ReportEquivocation(Evidence),
    /// An accept vote for a block in a committed batch that re-execution shows invalid.
    ReportInvalidAccept(SignedVote),
    /// Moves `amount` of the sender's SL balance to `recipient` on `chain_id`, as a forced
    /// deposit the chain must include.
    Deposit {
        /// The chain.
        chain_id: ChainId,
        /// The recipient on the chain.
        recipient: Address,
        /// The amount.
        amount: U256,
    },
    /// Proposes the end state of a committed batch of an optimistic chain, with its trace
    /// commitment (bonded).
    Propose(Box<Proposal>),
    /// Challenges a pending proposal (bonded): opens a k-section game.
    Challenge {
        /// The proposal.
        proposal: ProposalId,
    },
    /// The proposer's move: its trace's roots at the inner boundaries of the disputed range,
    /// each with its inclusion proof.
    Split {
        /// The game.
        game: GameId,
        /// Roots and proofs, in position order.
        roots: Vec<(B256, braid_merkle::InclusionProof)>,
    },
    /// The challenger's move: the first part whose end it disputes.
    Choose {
        /// The game.
        game: GameId,
        /// The part (0-based).
        part: u32,
    },
    /// Ends a game at its single step: the agreed pre-state and the step's witness.
    ProveStep {
        /// The game.
        game: GameId,
        /// The machine state before the step (its commitment is the agreed root).
        pre: braid_execution::MachineState,
        /// The witness.
        witness: Box<braid_execution::StepWitness>,
    },
    /// Claims a withdrawal: a message to the SL (chain 0) proven against a historical
    /// MessageRoot (`proof` mode), which only holds executed — final — batches. Pays the
    /// message's value to its recipient's SL balance, once.
    Withdraw {
        /// The message.
        message: braid_primitives::Message,
        /// Its two-level proof.
        proof: braid_primitives::MessageProof,
    },
    /// Reverts every unexecuted batch of a chain from `from` on (operator or council).
    RevertBatches {
        /// The chain.
        chain_id: ChainId,
        /// The first batch to revert.
        from: BatchNumber,
    },
    /// Submits the aggregation tree's root proof of the next checkpoint (anyone: the
    /// aggregator, or a successor that took over the tree); it settles every tree chain up to
    /// the checkpoint (see the settlement crate's `aggregated` module).
    SubmitRoot {
        /// The root proof (re-execution backend).
        proof: std::sync::Arc<braid_aggregator::ReexecProof>,
    },
}

impl SlCall {
    /// Short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            SlCall::RegisterChain(_) => "registerChain",
            SlCall::CommitBatch { .. } => "commitBatch",
            SlCall::ProveBatch { .. } => "proveBatch",
            SlCall::ExecuteBatch { .. } => "executeBatch",
            SlCall::Deposit { .. } => "deposit",
            SlCall::JoinValidators(_) => "joinValidators",
            SlCall::ExitValidators => "exitValidators",
            SlCall::WithdrawStake => "withdrawStake",
            SlCall::Postconfirm { .. } => "postconfirm",
            SlCall::ReportEquivocation(_) => "reportEquivocation",
            SlCall::ReportInvalidAccept(_) => "reportInvalidAccept",
            SlCall::RevertBatches { .. } => "revertBatches",
            SlCall::Propose(_) => "propose",
            SlCall::Challenge { .. } => "challenge",
            SlCall::Split { .. } => "split",
            SlCall::Choose { .. } => "choose",
            SlCall::ProveStep { .. } => "proveStep",
            SlCall::Withdraw { .. } => "withdraw",
            SlCall::SubmitRoot { .. } => "submitRoot",
        }
    }
}

/// A signed settlement-layer transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlTx {
    /// The SL instance the transaction is for ([`SlConfig::sl_chain_id`](crate::SlConfig));
    /// covered by the signature, so it cannot be replayed on another SL instance.
    pub sl_chain_id: u64,
    /// The claimed submitter; the signature must recover to it.
    pub from: Address,
    /// The submitter's SL nonce.
    pub nonce: u64,
    /// The call.
    pub call: SlCall,
    /// secp256k1 signature over [`SlTx::signing_hash`].
    pub signature: Signature,
}

/// Domain tag of SL transaction signatures.
pub const SL_TX_DOMAIN: &[u8] = b"braid-sl-tx-v2";

impl SlTx {
    /// `keccak256(SL_TX_DOMAIN ‖ sl_chain_id (8 bytes BE) ‖ nonce (8 bytes BE) ‖ postcard(call))`.
    pub fn signing_hash(sl_chain_id: u64, nonce: u64, call: &SlCall) -> B256 {
        let mut buf = SL_TX_DOMAIN.to_vec();
        buf.extend_from_slice(&sl_chain_id.to_be_bytes());
        buf.extend_from_slice(&nonce.to_be_bytes());
        buf.extend_from_slice(&postcard::to_allocvec(call).unwrap_or_default());
        keccak256(buf)
    }

    /// Hash identifying this transaction.
    pub fn hash(&self) -> B256 {
        let mut buf = Self::signing_hash(self.sl_chain_id, self.nonce, &self.call).to_vec();
        buf.extend_from_slice(&self.signature.as_bytes());
        keccak256(buf)
    }

    /// Signs `call` for the default SL ([`DEFAULT_SL_CHAIN_ID`]) with a 32-byte secret key
    /// (derives the public key first: prefer [`SlTx::sign_with`] when signing many).
    pub fn sign(secret: &B256, nonce: u64, call: SlCall) -> Result<Self, SettlementError> {
        Self::sign_for(DEFAULT_SL_CHAIN_ID, secret, nonce, call)
    }

    /// Signs `call` for the SL with chain id `sl_chain_id` with a 32-byte secret key.
    pub fn sign_for(
        sl_chain_id: u64,
        secret: &B256,
        nonce: u64,
        call: SlCall,
    ) -> Result<Self, SettlementError> {
        let signer = TxSigner::from_secret(*secret).map_err(|e| SettlementError::BadSignature {
            reason: e.to_string(),
        })?;
        Self::sign_with_for(sl_chain_id, &signer, nonce, call)
    }

    /// Signs `call` for the default SL ([`DEFAULT_SL_CHAIN_ID`]) with a ready signer.
    pub fn sign_with(signer: &TxSigner, nonce: u64, call: SlCall) -> Result<Self, SettlementError> {
        Self::sign_with_for(DEFAULT_SL_CHAIN_ID, signer, nonce, call)
    }

    /// Signs `call` for the SL with chain id `sl_chain_id` with a ready signer.
    pub fn sign_with_for(
        sl_chain_id: u64,
        signer: &TxSigner,
        nonce: u64,
        call: SlCall,
    ) -> Result<Self, SettlementError> {
        let hash = Self::signing_hash(sl_chain_id, nonce, &call);
        let signature = signer
            .sign_hash(hash)
            .map_err(|e| SettlementError::BadSignature {
                reason: e.to_string(),
            })?;
        Ok(Self {
            sl_chain_id,
            from: signer.address(),
            nonce,
            call,
            signature,
        })
    }

    /// Checks that the transaction is for the SL with chain id `sl_chain_id`
    /// ([`SettlementError::WrongSlChain`] otherwise) and that the signature, which covers that
    /// id, recovers to `from` (low-s enforced).
    pub fn verify_for(&self, sl_chain_id: u64) -> Result<(), SettlementError> {
        if self.sl_chain_id != sl_chain_id {
            return Err(SettlementError::WrongSlChain {
                expected: sl_chain_id,
                got: self.sl_chain_id,
            });
        }
        self.verify_signature()
    }

    /// Checks that the signature recovers to `from` (low-s enforced); the signed digest
    /// includes `sl_chain_id`.
    pub fn verify_signature(&self) -> Result<(), SettlementError> {
        let hash = Self::signing_hash(self.sl_chain_id, self.nonce, &self.call);
        let signer = alloy_consensus::crypto::secp256k1::recover_signer(&self.signature, hash)
            .map_err(|e| SettlementError::BadSignature {
                reason: e.to_string(),
            })?;
        if signer != self.from {
            return Err(SettlementError::BadSignature {
                reason: format!("signature recovers to {signer}, not {}", self.from),
            });
        }
        Ok(())
    }
}
