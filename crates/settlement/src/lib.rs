//! The settlement layer (SL) core: where every chain's batches are committed, proven, checked and
//! executed, and where early interop is finally judged.
//!
//! A sans-IO state machine ([`SettlementLayer`]) with blocks of its own every `sl_block_time_ms`:
//! inputs are signed [`SlTx`]s and ticks carrying the time; outputs are [`SlEvent`]s. It holds
//! the chain registry, each chain's batches (`commitBatch` → `proveBatch` → `executeBatch`,
//! `revertBatches`), the global `MessageRoot` tree with every historical root, and per-chain
//! escrow of value.
//!
//! # Checks at execution
//! A batch executes only when every root it imported is settled:
//! - `proof`: the root is a historical global `MessageRoot`;
//! - `commit`: the source batch executed (or executes in the same step) with that root and size;
//! - `precommit`: the source batch holding the imported block executed (or executes in the same
//!   step) and an extension proof (supplied with `executeBatch`) shows the imported LocalRoot is
//!   a prefix of that batch's ChainBatchRoot.
//!
//! - `qc`: as `precommit` (extension proof into the executed source batch), and the block's
//!   LocalRoot was postconfirmed: a quorum certificate of the validators, verified by the SL (see
//!   [`Staking`] for staking, epochs, postconfirmation and slashing).
//!
//! A check that can still become true (the source batch is not executed yet) makes the batch
//! wait; one that cannot (wrong root, bad extension proof, unknown MessageRoot, over-release) is
//! reported as [`SlEvent::BatchCheckFailed`] and the batch can never execute: the operator (or
//! the council) must revert it.
//!
//! # Why waiting cannot deadlock
//! Two chains may import from each other's open batches (A's batch 1 imports B's block 1, B's
//! batch 1 imports A's block 1): each batch then waits for the other. The SL does not execute
//! batches one by one; at the end of every SL block it computes the *largest* set of
//! execution-requested, proven batches (per chain a prefix from the last executed batch) whose
//! every import is satisfied by an executed batch or by a batch in the set itself — the greatest
//! fixpoint of "remove batches with an unsatisfied import". Such mutually dependent batches form
//! a cycle inside the set and execute together, atomically. Anything left waits only on a batch
//! that is missing, unproven, unrequested or failed — never on itself — and a failed batch is
//! resolved by a revert, which cascades to its importers. Commit-mode imports cannot even form a
//! cycle: a batch can only import a root of a batch committed before the importing block, and
//! that block is committed before its own batch.
//!
//! # Reverts
//! `revertBatches(chain, from)` removes the chain's unexecuted batches `from..`; every unexecuted
//! batch of another chain that imported a root from a removed batch (or a LocalRoot of a removed
//! block) is reverted in turn, transitively ([`RevertCause::Cascade`]). Final batches (next
//! section) are never removed.
//!
//! # What is never reverted
//! A batch is *final* ([`SettlementLayer::finality`], [`Finality`]) when it is
//! - **executed**;
//! - **settled by an accepted aggregation root**: a tree chain's batch whose blocks lie at or
//!   below the last checkpoint with an accepted root (seed 001: a root proves the chains'
//!   execution through the checkpoint and the next root links to its block hashes, so those
//!   blocks are the chain's history for good);
//! - **postconfirmed**: the batch, or a later unexecuted batch of the chain, ends in a block
//!   whose QC the SL verified (seed 002: an L2-final block is final; a QC certifies its chain
//!   of ancestors), the record is that block's (block hash, state root, ChainBatchRoot), and
//!   every unexecuted batch of the chain up to it censored no deposit and imports only final
//!   roots.
//!
//! `revertBatches` reaching a final batch is refused with [`SettlementError::FinalBatch`] and
//! changes nothing; a cascade starts after the importer's last final batch.
//!
//! **The rule that makes the refusal safe: a batch becomes final only on final imports.** An
//! import is final ([`SettlementLayer::import_final`]) when its root can never be reverted and
//! it matches what it claims: a `proof` import names a historical MessageRoot; a `commit` (or
//! `optimistic`) import matches a final source batch's ChainBatchRoot; a `precommit` (or `qc`)
//! import is the LocalRoot (kept per block, see [`BatchRecord::local_roots`]) of a block in a
//! final source batch (for `qc`, also the postconfirmed record); an `aggregated` import is a
//! node of an accepted tree. So `submitRoot` is refused with
//! [`SettlementError::UnsettledImport`] while a batch it would settle (a tree chain's
//! unexecuted batch through the checkpoint) imports a root that is not final, or censored a
//! deposit ([`SettlementLayer::checkpoint_imports_settled`] tells an aggregator when to submit);
//! it is accepted once the sources settled, or after the source reverted and the cascade
//! removed the importing batches (they were not final yet). A postconfirmation is always
//! recorded, but makes batches final only under the same condition. Consequences:
//! - a final batch can always execute: its proof is verified (by the root, or its blocks
//!   certified valid), its imports will pass their checks, it censored nothing; no batch is
//!   left that can neither execute nor be reverted;
//! - a cascade never needs to revert a final batch: it starts at a batch importing a reverted
//!   root, which is not final, and finality is prefix-closed per chain (a root settles every
//!   batch through its checkpoint; a postconfirmation every batch up to the certified block);
//! - the price: a tree chain that imports a non-tree chain's early roots (`precommit`,
//!   `commit`, `qc`) delays the tree's roots until those sources executed. If the source stalls
//!   longer than `aggregator_timeout_ms`, the tree chains' batches settle alone through the
//!   emergency exit, as when the aggregator stalls. Two batches importing each other across
//!   the tree's boundary (a tree chain's batch and a non-tree chain's) settle the same way:
//!   the non-tree batch executes only with the tree batch, which is root-settled only after it.
//! - the SL holds batches, not blocks: a postconfirmed block inside a batch whose last block
//!   is not postconfirmed does not stop a revert of that batch (one of its later blocks may be
//!   invalid, and the batch could then never execute).
//!
//! # Forced settlement
//! When a chain stalls — its operator has not acted, or its oldest unexecuted committed batch has
//! waited, for longer than `timeout_operator_ms` — the security council may commit, prove and
//! execute its batches; after `timeout_council_ms`, anyone holding the DA data may. Settlement by
//! others does not reset the clock: only the operator's own actions do.
//!
//! # Deposits
//! `deposit(chain, recipient, amount)` moves SL balance into a queue of forced transactions for
//! the chain. A committed batch may only apply deposits exactly as queued, in index order; a
//! batch whose last block is later than `deposit_inclusion_window_ms` after a deposit was queued,
//! without having applied it, fails its checks (censorship) and cannot execute.
//!
//! # Block timestamps
//! At `commitBatch` the SL checks the timestamps of the batch's blocks (the DA data): each is
//! strictly after its parent's (the first after the last block of the chain's previous batch,
//! kept as [`BatchRecord::last_block_timestamp_ms`], or after genesis) and at most
//! `max_block_time_drift_ms` ahead of SL time; otherwise the commit is refused with
//! [`SettlementError::BlockTimestampNotIncreasing`] or [`SettlementError::BlockTimestampAhead`].
//! A sequencer can thus not backdate blocks below its own history to slip a censored deposit
//! under the inclusion deadline.
//!
//! # Admission
//! The SL pools at most `max_pending_txs` transactions for its next block, and at most
//! `max_pending_txs_per_sender` from one sender; beyond that `submit` refuses with
//! [`SettlementError::QueueFull`] or [`SettlementError::SenderQueueFull`], so one account's
//! signed junk cannot crowd out the operators. The global limit does not apply to the security
//! council and the registered operators (only their per-sender limit does): junk signed by
//! many accounts can fill the queue, but never delay a commit, proof, execution request or
//! council action. (The SL charges no fee or bond for admission: a Sybil flood can still
//! crowd out deposits and other users' calls for as long as it lasts.)
//!
//! # Replay across SL instances
//! Every [`SlTx`] names the SL it is for (`sl_chain_id`), and its signed digest covers that id
//! ([`SlTx::signing_hash`]); an SL refuses a transaction for another id with
//! [`SettlementError::WrongSlChain`] ([`SlConfig::sl_chain_id`], default
//! [`DEFAULT_SL_CHAIN_ID`]).
//!
//! # Postconfirmation epochs
//! `postconfirm` accepts QCs of the current or the previous validator epoch only; an older one
//! is refused with [`SettlementError::StaleQc`] (its signers' stake may be withdrawn).
//!
//! # Value accounting
//! The SL escrows each chain's value (its genesis supply, plus value received and deposited,
//! minus value sent and fees burned, as reported by verified batch outputs). Value sent by executed batches waits
//! in flight until the destination's batch executing the message settles it. A batch that would
//! take a chain's escrow, or the in-flight pool, below zero cannot execute.

mod aggregated;
mod optimistic;
mod settled;
mod staking;
mod tx;

pub use aggregated::{tree_import, Aggregation, AggregationConfig};
pub use optimistic::{
    ClaimedOutputs, ClockRuleError, GameId, GameRecord, GameResult, Optimistic, OptimisticConfig,
    Proposal, ProposalId, ProposalRecord, ProposalStatus,
};
use staking::err as staking_error;
pub use staking::{
    JoinRequest, PostconfirmedBlock, SlashReason, StakeRecord, StakeStatus, Staking,
};
pub use tx::{ChainGenesis, SlCall, SlTx, SL_TX_DOMAIN};

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Address, B256, U256};
use braid_execution::{ChainState, ValueTotals};
use braid_merkle::{verify_extension, InclusionProof, MessageTree};
use braid_primitives::{
    da_commitment, deposits_hash, imports_hash, message_root_leaf, tx_root, BatchHeader,
    BatchNumber, Block, BlockNumber, ChainId, Deposit, ImportKind, ImportedRoot,
};
use braid_proof::{BatchClaim, BatchOutputs, ProofError, ProofSystem};

/// SL parameters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlConfig {
    /// Time between SL blocks.
    pub sl_block_time_ms: u64,
    /// After this long without progress the security council may settle a chain.
    pub timeout_operator_ms: u64,
    /// After this long without progress anyone may settle a chain.
    pub timeout_council_ms: u64,
    /// The security council's address.
    pub security_council: Address,
    /// Most transactions waiting for the next SL block.
    pub max_pending_txs: usize,
    /// A chain must include a deposit in a block no later than this long after it was queued;
    /// a batch whose blocks reach past that without it cannot execute.
    pub deposit_inclusion_window_ms: u64,
    /// Balances of SL accounts at genesis (the settlement token deposits draw on).
    pub genesis_balances: Vec<(Address, U256)>,
    /// Length of a validator epoch (the set is fixed within one).
    #[serde(default = "default_epoch_ms")]
    pub epoch_ms: u64,
    /// How long an exiting validator's stake stays slashable; must exceed `timeout_council_ms`.
    #[serde(default = "default_unbonding_ms")]
    pub unbonding_ms: u64,
    /// Smallest stake a validator may join with.
    #[serde(default)]
    pub min_stake: U256,
    /// Share of a slashed stake paid to the reporter (percent); the rest is burned.
    #[serde(default = "default_reporter_share")]
    pub reporter_share_percent: u8,
    /// Optimistic settlement (seed 004): which chains settle by proposals, windows and bonds.
    #[serde(default)]
    pub optimistic: OptimisticConfig,
    /// Aggregated settlement (seed 001): which chains settle with the aggregation tree's roots.
    #[serde(default)]
    pub aggregation: AggregationConfig,
    /// How far ahead of SL time a committed block's timestamp may be (see "Block timestamps"
    /// in the crate docs). Must be > 0.
    #[serde(default = "default_max_block_time_drift_ms")]
    pub max_block_time_drift_ms: u64,
    /// Most transactions one sender may have waiting for the next SL block (see "Admission"
    /// in the crate docs). Must be > 0.
    #[serde(default = "default_max_pending_txs_per_sender")]
    pub max_pending_txs_per_sender: usize,
    /// This SL instance's chain id: every [`SlTx`] names it and its signature covers it, so a
    /// transaction signed for another SL instance is refused here.
    #[serde(default = "default_sl_chain_id")]
    pub sl_chain_id: u64,
}

/// The SL chain id [`SlConfig::new`] uses and [`SlTx::sign`] / [`SlTx::sign_with`] sign for.
pub const DEFAULT_SL_CHAIN_ID: u64 = 0x0062_7261_6964; // "braid"

fn default_max_block_time_drift_ms() -> u64 {
    30_000
}
fn default_max_pending_txs_per_sender() -> usize {
    64
}
fn default_sl_chain_id() -> u64 {
    DEFAULT_SL_CHAIN_ID
}

fn default_epoch_ms() -> u64 {
    60_000
}
fn default_unbonding_ms() -> u64 {
    600_000
}
fn default_reporter_share() -> u8 {
    10
}

impl SlConfig {
    /// Defaults: 2 s SL blocks, 60 s operator timeout, 300 s council timeout, 30 s deposit
    /// inclusion window, blocks at most 30 s ahead of SL time, 64 waiting transactions per
    /// sender, SL chain id [`DEFAULT_SL_CHAIN_ID`], no SL balances.
    pub fn new(security_council: Address) -> Self {
        Self {
            sl_block_time_ms: 2_000,
            timeout_operator_ms: 60_000,
            timeout_council_ms: 300_000,
            security_council,
            max_pending_txs: 4_096,
            deposit_inclusion_window_ms: 30_000,
            genesis_balances: Vec::new(),
            epoch_ms: default_epoch_ms(),
            unbonding_ms: default_unbonding_ms(),
            min_stake: U256::ZERO,
            reporter_share_percent: default_reporter_share(),
            optimistic: OptimisticConfig::default(),
            aggregation: AggregationConfig::default(),
            max_block_time_drift_ms: default_max_block_time_drift_ms(),
            max_pending_txs_per_sender: default_max_pending_txs_per_sender(),
            sl_chain_id: DEFAULT_SL_CHAIN_ID,
        }
    }

    /// Rejects parameters the SL cannot run with.
    pub fn validate(&self) -> Result<(), SettlementError> {
        if self.sl_block_time_ms == 0 {
            return Err(SettlementError::InvalidConfig {
                reason: "sl_block_time_ms must be > 0".into(),
            });
        }
        if self.epoch_ms == 0 {
            return Err(SettlementError::InvalidConfig {
                reason: "epoch_ms must be > 0".into(),
            });
        }
        if self.unbonding_ms <= self.timeout_council_ms {
            return Err(SettlementError::InvalidConfig {
                reason: "unbonding_ms must exceed timeout_council_ms (the settlement horizon)"
                    .into(),
            });
        }
        if self.max_block_time_drift_ms == 0 {
            return Err(SettlementError::InvalidConfig {
                reason: "max_block_time_drift_ms must be > 0".into(),
            });
        }
        if self.max_pending_txs_per_sender == 0 {
            return Err(SettlementError::InvalidConfig {
                reason: "max_pending_txs_per_sender must be > 0".into(),
            });
        }
        if self.reporter_share_percent > 100 {
            return Err(SettlementError::InvalidConfig {
                reason: "reporter_share_percent must be <= 100".into(),
            });
        }
        self.optimistic
            .validate()
            .map_err(|reason| SettlementError::InvalidConfig { reason })?;
        if !self.optimistic.chains.is_empty() {
            self.optimistic.check_clock(self.sl_block_time_ms)?;
        }
        self.aggregation
            .validate()
            .map_err(|reason| SettlementError::InvalidConfig { reason })?;
        if let Some(c) = self
            .aggregation
            .chains
            .iter()
            .find(|c| self.optimistic.covers(**c))
        {
            return Err(SettlementError::InvalidConfig {
                reason: format!("chain {c} cannot settle both optimistically and aggregated"),
            });
        }
        if self.timeout_council_ms < self.timeout_operator_ms {
            return Err(SettlementError::InvalidConfig {
                reason: "timeout_council_ms must be >= timeout_operator_ms".into(),
            });
        }
        Ok(())
    }
}

/// Errors of SL transactions. A refused call changes nothing but its sender's nonce (used, as in
/// Ethereum, once the transaction is in a block); a bad signature or nonce does not even that.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SettlementError {
    /// A withdrawal claim was refused.
    #[error("withdraw: {reason}")]
    WithdrawalRefused {
        /// Why.
        reason: String,
    },
    /// An aggregated-settlement call was refused.
    #[error("{call}: {reason}")]
    Aggregation {
        /// The call.
        call: &'static str,
        /// Why.
        reason: String,
    },
    /// An optimistic-settlement call was refused.
    #[error("{call}: {reason}")]
    Optimistic {
        /// The call.
        call: &'static str,
        /// Why.
        reason: String,
    },
    /// Unusable configuration.
    #[error("invalid SL configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// Dispute-game clocks an honest party could lose on (the clock rule of optimistic
    /// settlement).
    #[error("invalid SL configuration: {0}")]
    DisputeClock(#[from] ClockRuleError),
    /// The signature does not recover to the sender.
    #[error("bad SL transaction signature: {reason}")]
    BadSignature {
        /// Why.
        reason: String,
    },
    /// Wrong nonce.
    #[error("nonce {got} for {sender}, expected {expected}")]
    BadNonce {
        /// The sender.
        sender: Address,
        /// The expected nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// Too many pending transactions.
    #[error("SL transaction queue full ({limit})")]
    QueueFull {
        /// The limit.
        limit: usize,
    },
    /// The sender already has `limit` transactions waiting for the next SL block.
    #[error("{sender} already has {limit} transactions waiting for the next SL block")]
    SenderQueueFull {
        /// The sender.
        sender: Address,
        /// The per-sender limit (`max_pending_txs_per_sender`).
        limit: usize,
    },
    /// The transaction was signed for another SL instance.
    #[error("transaction signed for SL chain {got}, this SL is chain {expected}")]
    WrongSlChain {
        /// This SL's chain id.
        expected: u64,
        /// The chain id the transaction names (and its signature covers).
        got: u64,
    },
    /// A QC of an epoch older than the previous one: its validators may have withdrawn their
    /// stake, so it is no longer slashable and not accepted.
    #[error(
        "postconfirm refused: QC of epoch {epoch}, only epochs {oldest}..={current} are accepted"
    )]
    StaleQc {
        /// The QC's epoch.
        epoch: u64,
        /// The oldest epoch accepted (the previous one).
        oldest: u64,
        /// The current epoch.
        current: u64,
    },
    /// A committed block whose timestamp is not after its parent's (the previous block of the
    /// batch, or the last block of the chain's previous batch, or genesis).
    #[error(
        "cannot commit batch {batch} of chain {chain}: block {block} has timestamp {timestamp_ms} ms, not after its parent's {parent_ms} ms"
    )]
    BlockTimestampNotIncreasing {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// The block.
        block: BlockNumber,
        /// Its timestamp.
        timestamp_ms: u64,
        /// Its parent's timestamp.
        parent_ms: u64,
    },
    /// A committed block whose timestamp is more than `max_block_time_drift_ms` ahead of SL time.
    #[error(
        "cannot commit batch {batch} of chain {chain}: block {block} has timestamp {timestamp_ms} ms, more than {max_drift_ms} ms ahead of SL time {sl_time_ms} ms"
    )]
    BlockTimestampAhead {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// The block.
        block: BlockNumber,
        /// Its timestamp.
        timestamp_ms: u64,
        /// SL time at commit.
        sl_time_ms: u64,
        /// The bound.
        max_drift_ms: u64,
    },
    /// The sender may not make this call now.
    #[error("{sender} may not {action} for chain {chain}: {reason}")]
    NotAuthorized {
        /// The sender.
        sender: Address,
        /// The call.
        action: &'static str,
        /// The chain.
        chain: ChainId,
        /// Why not.
        reason: String,
    },
    /// The chain is not registered.
    #[error("chain {0} is not registered")]
    UnknownChain(ChainId),
    /// The chain is already registered.
    #[error("chain {0} is already registered")]
    ChainExists(ChainId),
    /// A registration whose genesis does not add up.
    #[error("invalid genesis for chain {chain}: {reason}")]
    InvalidGenesis {
        /// The chain.
        chain: ChainId,
        /// What is wrong.
        reason: String,
    },
    /// A batch that does not fit the chain's committed history.
    #[error("cannot commit batch {batch} of chain {chain}: {reason}")]
    BadCommit {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// What is wrong.
        reason: String,
    },
    /// The batch does not exist (never committed, or reverted).
    #[error("batch {batch} of chain {chain} is not committed")]
    UnknownBatch {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
    },
    /// The call does not fit the batch's status.
    #[error("batch {batch} of chain {chain}: {reason}")]
    WrongStatus {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// What is wrong.
        reason: String,
    },
    /// An SL account cannot cover a deposit.
    #[error("{sender} holds {available} on the SL, cannot deposit {amount}")]
    InsufficientSlBalance {
        /// The depositor.
        sender: Address,
        /// Its SL balance.
        available: U256,
        /// The deposit.
        amount: U256,
    },
    /// A staking, postconfirmation or slashing call was refused.
    #[error("{action} refused: {reason}")]
    Staking {
        /// The call.
        action: &'static str,
        /// Why.
        reason: String,
    },
    /// A revert that would void a final batch: one settled by an accepted aggregation root, or
    /// one a postconfirmation made final (see "What is never reverted" in the crate docs).
    #[error("batch {batch} of chain {chain} is final ({by}) and is never reverted")]
    FinalBatch {
        /// The chain.
        chain: ChainId,
        /// The final batch the revert would void.
        batch: BatchNumber,
        /// What made it final.
        by: Finality,
    },
    /// A root proof covering a batch whose imports are not final yet: the root would make the
    /// batch final on top of roots that can still be reverted. Submit it again once the
    /// sources settled.
    #[error(
        "submitRoot: batch {batch} of chain {chain} imports {import}, which is not final: {reason}"
    )]
    UnsettledImport {
        /// The tree chain.
        chain: ChainId,
        /// Its batch the root would settle.
        batch: BatchNumber,
        /// The import, as `mode source/height`.
        import: String,
        /// Why it is not final.
        reason: String,
    },
    /// The proof system refused the proof.
    #[error("proof of batch {batch} of chain {chain} refused: {error}")]
    ProofRejected {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// The proof system's reason.
        error: Box<ProofError>,
    },
}

/// Why a batch can no longer be reverted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Finality {
    /// It executed.
    Executed,
    /// An accepted aggregation root of `checkpoint` (or a later one) settled it.
    Root {
        /// The checkpoint its last block belongs to.
        checkpoint: u64,
    },
    /// Block `block` of its chain, the end of this batch or of a later one, was postconfirmed,
    /// and every import of the chain up to it is final.
    Postconfirmed {
        /// The postconfirmed block.
        block: BlockNumber,
    },
}

impl std::fmt::Display for Finality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finality::Executed => write!(f, "executed"),
            Finality::Root { checkpoint } => {
                write!(
                    f,
                    "settled by the aggregation root of checkpoint {checkpoint}"
                )
            }
            Finality::Postconfirmed { block } => write!(f, "block {block} postconfirmed"),
        }
    }
}

/// Who made a settlement call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Authority {
    /// The chain's operator.
    Operator,
    /// The security council (registration, reverts, or forced settlement).
    Council,
    /// Anyone, after the council timeout.
    Anyone,
}

/// Why batches were reverted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RevertCause {
    /// The operator or the council asked for it.
    Requested(Authority),
    /// The batch imported a root from a reverted batch of `source_chain`.
    Cascade {
        /// The reverted source chain.
        source_chain: ChainId,
        /// The first reverted batch of the source.
        source_batch: BatchNumber,
    },
    /// The batch imported a root of `source_chain` at `height` that the source's committed
    /// batches contradict: a LocalRoot of a block the source's batches do not contain (an
    /// equivocating sequencer showed the importer another block at that height) or a
    /// ChainBatchRoot of a batch that is no longer the committed one (a revert voided it). The
    /// import can never settle.
    Contradicted {
        /// The source chain.
        source_chain: ChainId,
        /// The imported block (`precommit`, `qc`) or batch (`commit`, `optimistic`) number.
        height: u64,
        /// The imported root, which the source's committed batch does not hold there.
        root: B256,
    },
}

/// Outputs of the SL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlEvent {
    /// A transaction was refused at submission or inclusion.
    TxRejected {
        /// The transaction hash.
        hash: B256,
        /// The call's name.
        call: &'static str,
        /// Why.
        error: SettlementError,
    },
    /// A chain joined.
    ChainRegistered {
        /// The chain.
        chain: ChainId,
    },
    /// Value was deposited for a chain; its sequencer must include the deposit.
    DepositQueued(Deposit),
    /// A batch was committed.
    BatchCommitted {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// Who committed it.
        by: Authority,
    },
    /// A batch's proof verified.
    BatchProven {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// Who proved it.
        by: Authority,
    },
    /// Execution was requested; the batch executes once its imports are settled.
    ExecutionRequested {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// Who asked.
        by: Authority,
    },
    /// A batch executed; its leaf is in the global tree.
    BatchExecuted {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// Index of its leaf in the global MessageRoot tree.
        leaf_index: u64,
        /// The MessageRoot after appending it.
        message_root: B256,
    },
    /// A batch failed a check that cannot become true; it can never execute.
    BatchCheckFailed {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// Why.
        reason: String,
    },
    /// Batches `from..=to` of a chain were reverted; its blocks from `first_block` on are void.
    BatchesReverted {
        /// The chain.
        chain: ChainId,
        /// First reverted batch.
        from: BatchNumber,
        /// Last reverted batch.
        to: BatchNumber,
        /// First void block.
        first_block: BlockNumber,
        /// Why.
        cause: RevertCause,
    },
    /// A validator staked; it joins the set at the next epoch snapshot.
    ValidatorJoined {
        /// Its SL address.
        validator: Address,
        /// Its stake.
        stake: U256,
    },
    /// A validator asked to leave.
    ValidatorExiting {
        /// Its SL address.
        validator: Address,
    },
    /// The validator set of an epoch was fixed.
    EpochStarted {
        /// The epoch.
        epoch: u64,
        /// Hash of the set.
        set_hash: B256,
        /// Number of validators.
        validators: usize,
    },
    /// A QC was verified and its block recorded.
    Postconfirmed {
        /// The chain.
        chain: ChainId,
        /// The block height.
        height: BlockNumber,
        /// The block hash.
        block_hash: B256,
        /// The epoch of the signing set.
        epoch: u64,
    },
    /// A validator's stake was taken.
    Slashed {
        /// The validator.
        validator: Address,
        /// Why.
        reason: SlashReason,
        /// Paid to the reporter.
        reward: U256,
        /// Burned.
        burned: U256,
        /// Who reported.
        reporter: Address,
    },
    /// An optimistic proposal was posted.
    ProposalPosted {
        /// Its id.
        proposal: ProposalId,
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// Who proposed.
        proposer: Address,
        /// The claimed end commitment (position `n` of the trace).
        end: B256,
        /// The claimed state root (`None`: the batch's execution fails).
        end_state_root: Option<B256>,
        /// Steps of the batch.
        steps: u64,
    },
    /// A proposal was challenged: a k-section game started.
    ChallengeOpened {
        /// The game.
        game: GameId,
        /// The proposal.
        proposal: ProposalId,
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// Who challenged.
        challenger: Address,
        /// The disputed step range.
        range: (u64, u64),
    },
    /// A game move was accepted.
    GameMoved {
        /// The game.
        game: GameId,
        /// The disputed range now.
        range: (u64, u64),
        /// The phase now.
        phase: braid_dispute::Phase,
    },
    /// A game ended; the loser's bond moved.
    GameResolved(GameResult),
    /// A proposal lost a game and is removed.
    ProposalDefeated {
        /// The proposal.
        proposal: ProposalId,
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
    },
    /// A proposal became final.
    ProposalFinalized {
        /// The proposal.
        proposal: ProposalId,
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
    },
    /// A withdrawal was paid out.
    Withdrawn {
        /// The message.
        id: braid_primitives::MessageId,
        /// Who received it.
        recipient: Address,
        /// The amount.
        amount: U256,
    },
    /// The aggregation tree's root proof of `checkpoint` verified: every tree chain is
    /// settled up to the checkpoint.
    RootAccepted {
        /// The checkpoint.
        checkpoint: u64,
        /// The root hash `B_i`.
        root: B256,
        /// Who submitted it.
        by: Address,
        /// Batches it proved.
        batches_proven: u64,
    },
    /// A tree chain's batch was proven alone (emergency exit: the aggregator timed out).
    AggregationExit {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// The last checkpoint with an accepted root.
        last_root: u64,
    },
    /// An SL block was produced.
    SlBlock {
        /// SL height.
        height: u64,
        /// Its time.
        timestamp_ms: u64,
        /// The MessageRoot after it.
        message_root: B256,
        /// Size of the global tree.
        message_root_size: u64,
    },
}

impl SlEvent {
    /// Whether the batch-settling roles (operators, relayers, chain nodes) need the event: chain
    /// registration, deposits, the batch lifecycle, reverts and SL blocks. Rejections go to
    /// their submitter; validator-set, optimistic-game and withdrawal events concern validators,
    /// proposers and challengers only. Every new event is classified here, once.
    pub fn for_batch_roles(&self) -> bool {
        match self {
            SlEvent::ChainRegistered { .. }
            | SlEvent::DepositQueued(_)
            | SlEvent::BatchCommitted { .. }
            | SlEvent::BatchProven { .. }
            | SlEvent::ExecutionRequested { .. }
            | SlEvent::BatchExecuted { .. }
            | SlEvent::BatchCheckFailed { .. }
            | SlEvent::BatchesReverted { .. }
            | SlEvent::SlBlock { .. }
            | SlEvent::RootAccepted { .. } => true,
            SlEvent::TxRejected { .. }
            | SlEvent::ValidatorJoined { .. }
            | SlEvent::ValidatorExiting { .. }
            | SlEvent::EpochStarted { .. }
            | SlEvent::Postconfirmed { .. }
            | SlEvent::Slashed { .. }
            | SlEvent::ProposalPosted { .. }
            | SlEvent::ChallengeOpened { .. }
            | SlEvent::GameMoved { .. }
            | SlEvent::GameResolved(_)
            | SlEvent::ProposalDefeated { .. }
            | SlEvent::ProposalFinalized { .. }
            | SlEvent::Withdrawn { .. }
            | SlEvent::AggregationExit { .. } => false,
        }
    }
}

/// Status of a committed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchStatus {
    /// Committed, not proven.
    Committed,
    /// Proven; outputs verified.
    Proven,
    /// Executed: final.
    Executed,
}

/// A committed batch as the SL holds it.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    /// The record.
    pub header: BatchHeader,
    /// Its imports.
    pub imports: Vec<ImportedRoot>,
    /// DA data, dropped once executed.
    pub blocks: Vec<Block>,
    /// Lifecycle status.
    pub status: BatchStatus,
    /// Verified outputs (after proving).
    pub outputs: Option<BatchOutputs>,
    /// When it was committed.
    pub committed_at_ms: u64,
    /// Extension proofs, once execution was requested.
    pub execute_request: Option<Vec<braid_merkle::ExtensionProof>>,
    /// Leaf index in the global tree, once executed.
    pub leaf_index: Option<u64>,
    /// The last check failure reported.
    pub failure: Option<String>,
    /// Timestamp of the batch's last block.
    pub last_block_timestamp_ms: u64,
    /// Deposits applied after the batch's last block.
    pub deposit_count_after: u64,
    /// `(localRoot, messageCount)` of each of its blocks, kept after execution (the DA data
    /// is dropped): what a block-root import of the batch is checked against when finality is
    /// judged.
    pub local_roots: Vec<(B256, u64)>,
}

/// The end of a chain's executed (or genesis) history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainTip {
    /// Last block number.
    pub block_number: BlockNumber,
    /// Last block hash.
    pub block_hash: B256,
    /// State root after it.
    pub state_root: B256,
}

/// A registered chain.
#[derive(Debug, Clone)]
pub struct ChainRecord {
    /// The operator.
    pub operator: Address,
    /// The genesis tip.
    pub genesis: ChainTip,
    /// The genesis block's timestamp (batch 1's first block must be later).
    pub genesis_timestamp_ms: u64,
    /// Committed batches (executed ones keep their header and imports).
    pub batches: BTreeMap<BatchNumber, BatchRecord>,
    /// Last executed batch (0: none).
    pub last_executed: BatchNumber,
    /// Last committed batch (0: none).
    pub last_committed: BatchNumber,
    /// Value the SL holds for the chain.
    pub escrow: U256,
    /// Last time the chain made progress (registration, commit or execution).
    pub last_progress_ms: u64,
    /// Last time the operator acted (or registration).
    pub operator_active_ms: u64,
    /// Totals of the executed state.
    pub executed_totals: ValueTotals,
    /// Every deposit queued for the chain; a deposit's index is its position.
    pub deposits: Vec<Deposit>,
}

impl ChainRecord {
    fn tip_before(&self, batch: BatchNumber) -> Option<ChainTip> {
        if batch <= 1 {
            return Some(self.genesis);
        }
        let prev = self.batches.get(&(batch - 1))?;
        Some(ChainTip {
            block_number: prev.header.lastBlock,
            block_hash: prev.header.lastBlockHash,
            state_root: prev.header.stateRoot,
        })
    }

    /// What the proof system checks for a committed batch: its record and DA blocks on top of
    /// the previous batch's end (`None` if that batch is unknown).
    fn claim<'a>(&'a self, rec: &'a BatchRecord) -> Option<BatchClaim<'a>> {
        let prev = self.tip_before(rec.header.number)?;
        Some(BatchClaim {
            header: &rec.header,
            prev_state_root: prev.state_root,
            prev_block_hash: prev.block_hash,
            prev_block_number: prev.block_number,
            blocks: &rec.blocks,
        })
    }

    fn batch_holding_block(&self, block: BlockNumber) -> Option<&BatchRecord> {
        // batches hold increasing block ranges: walk back from the newest (imports are recent)
        self.batches
            .values()
            .rev()
            .take_while(|b| b.header.lastBlock >= block)
            .find(|b| b.header.firstBlock <= block)
    }

    /// The time from which the chain counts as stalled: the operator's last action, or the
    /// commit of its oldest unexecuted batch if that is older.
    pub fn stalled_since(&self) -> u64 {
        // executed batches are exactly those up to `last_executed`
        self.batches
            .range(self.last_executed + 1..)
            .map(|(_, b)| b)
            .filter(|b| b.status != BatchStatus::Executed)
            .map(|b| b.committed_at_ms)
            .min()
            .map_or(self.operator_active_ms, |t| t.min(self.operator_active_ms))
    }
}

/// Value moved by one batch, from its verified outputs.
struct ValueFlows {
    sent: U256,
    received: U256,
    burned: U256,
    deposited: U256,
}

impl ValueFlows {
    fn of(out: &BatchOutputs) -> Self {
        let (b, a) = (&out.totals_before, &out.totals_after);
        Self {
            sent: a.sent_out.saturating_sub(b.sent_out),
            received: a.received_in.saturating_sub(b.received_in),
            burned: a.burned_fees.saturating_sub(b.burned_fees),
            deposited: a.deposited_in.saturating_sub(b.deposited_in),
        }
    }
}

/// Escrows, in-flight value and collected fees after executing a set of batches.
struct ValueAfter {
    escrows: BTreeMap<ChainId, U256>,
    in_flight: U256,
    fees_collected: U256,
    pending_deposit_value: U256,
}

/// Outcome of checking one import.
enum ImportCheck {
    Ok,
    Wait,
    Fail(String),
}

/// The settlement layer.
pub struct SettlementLayer {
    config: SlConfig,
    now_ms: u64,
    height: u64,
    next_block_at_ms: u64,
    chains: BTreeMap<ChainId, ChainRecord>,
    message_tree: MessageTree,
    historical_roots: BTreeSet<B256>,
    nonces: BTreeMap<Address, u64>,
    pending: Vec<SlTx>,
    /// How many of `pending` each sender submitted.
    pending_per_sender: BTreeMap<Address, usize>,
    in_flight: U256,
    fees_collected: U256,
    balances: BTreeMap<Address, U256>,
    pending_deposit_value: U256,
    proofs: Box<dyn ProofSystem + Send>,
    staking: Staking,
    optimistic: Optimistic,
    aggregation: Aggregation,
    /// Withdrawal messages already paid.
    withdrawn: BTreeSet<braid_primitives::MessageId>,
}

impl std::fmt::Debug for SettlementLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettlementLayer")
            .field("height", &self.height)
            .field("chains", &self.chains.len())
            .field("message_root_size", &self.message_tree.len())
            .field("proof_system", &self.proofs.name())
            .finish_non_exhaustive()
    }
}

/// An input to the SL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlInput {
    /// Time passed; produce an SL block if one is due.
    Tick {
        /// Current time.
        now_ms: u64,
    },
    /// A signed transaction for the next SL block.
    Submit(Box<SlTx>),
}

impl SettlementLayer {
    /// A new SL with `proofs` as its proof system.
    pub fn new(
        config: SlConfig,
        proofs: Box<dyn ProofSystem + Send>,
    ) -> Result<Self, SettlementError> {
        config.validate()?;
        let mut balances = BTreeMap::new();
        for (a, v) in &config.genesis_balances {
            let b: &mut U256 = balances.entry(*a).or_default();
            *b = b.saturating_add(*v);
        }
        let message_tree = MessageTree::new();
        let historical_roots = BTreeSet::from([message_tree.root()]);
        Ok(Self {
            next_block_at_ms: 0,
            config,
            now_ms: 0,
            height: 0,
            chains: BTreeMap::new(),
            message_tree,
            historical_roots,
            nonces: BTreeMap::new(),
            pending: Vec::new(),
            pending_per_sender: BTreeMap::new(),
            in_flight: U256::ZERO,
            fees_collected: U256::ZERO,
            balances,
            pending_deposit_value: U256::ZERO,
            proofs,
            staking: Staking::default(),
            optimistic: Optimistic::default(),
            aggregation: Aggregation::default(),
            withdrawn: BTreeSet::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SlConfig {
        &self.config
    }
    /// Validators, epoch sets, postconfirmed blocks and slashing state.
    pub fn staking(&self) -> &Staking {
        &self.staking
    }
    /// Optimistic proposals, games and bonds.
    pub fn optimistic(&self) -> &Optimistic {
        &self.optimistic
    }
    /// The epoch an SL time falls in.
    pub fn epoch_at(&self, now_ms: u64) -> u64 {
        now_ms / self.config.epoch_ms
    }
    /// SL height.
    pub fn height(&self) -> u64 {
        self.height
    }
    /// A registered chain.
    pub fn chain(&self, chain: ChainId) -> Option<&ChainRecord> {
        self.chains.get(&chain)
    }
    /// Registered chain ids.
    pub fn chain_ids(&self) -> impl Iterator<Item = ChainId> + '_ {
        self.chains.keys().copied()
    }
    /// A batch of a chain.
    pub fn batch(&self, chain: ChainId, batch: BatchNumber) -> Option<&BatchRecord> {
        self.chains.get(&chain)?.batches.get(&batch)
    }
    /// The global MessageRoot tree.
    pub fn message_tree(&self) -> &MessageTree {
        &self.message_tree
    }
    /// Whether `root` was ever a MessageRoot.
    pub fn is_historical_root(&self, root: &B256) -> bool {
        self.historical_roots.contains(root)
    }
    /// Value sent by executed batches and not yet received by an executed batch.
    pub fn in_flight(&self) -> U256 {
        self.in_flight
    }
    /// The next nonce of an SL account.
    pub fn nonce(&self, address: &Address) -> u64 {
        self.nonces.get(address).copied().unwrap_or(0)
    }
    /// Base fees burned on chains and collected by the SL at execution.
    pub fn fees_collected(&self) -> U256 {
        self.fees_collected
    }
    /// An SL account's balance.
    pub fn balance(&self, address: &Address) -> U256 {
        self.balances.get(address).copied().unwrap_or_default()
    }
    /// Deposited value not yet settled by an executed batch of its chain.
    pub fn pending_deposit_value(&self) -> U256 {
        self.pending_deposit_value
    }
    /// Escrows, in-flight value, collected fees, SL balances, pending deposits, stake and burned
    /// stake: constant unless a chain registers.
    pub fn total_value(&self) -> U256 {
        let base = self
            .in_flight
            .saturating_add(self.fees_collected)
            .saturating_add(self.pending_deposit_value)
            .saturating_add(self.staking.staked)
            .saturating_add(self.staking.burned)
            .saturating_add(self.optimistic.bonded)
            .saturating_add(self.optimistic.burned);
        let with_balances = self
            .balances
            .values()
            .fold(base, |s, b| s.saturating_add(*b));
        self.chains
            .values()
            .fold(with_balances, |s, c| s.saturating_add(c.escrow))
    }

    /// Proof that an executed batch's leaf is in the MessageRoot of size `size`.
    pub fn batch_leaf_proof(
        &self,
        chain: ChainId,
        batch: BatchNumber,
        size: u64,
    ) -> Option<(B256, InclusionProof)> {
        let rec = self.batch(chain, batch)?;
        let index = rec.leaf_index?;
        let proof = self.message_tree.inclusion_proof(index, size).ok()?;
        Some((self.message_tree.root_at(size).ok()?, proof))
    }

    /// Handles one input.
    pub fn handle(&mut self, input: SlInput) -> Vec<SlEvent> {
        match input {
            SlInput::Submit(tx) => self.submit(*tx).into_iter().collect(),
            SlInput::Tick { now_ms } => {
                self.now_ms = self.now_ms.max(now_ms);
                if now_ms < self.next_block_at_ms {
                    return vec![];
                }
                self.produce_block()
            }
        }
    }

    fn submit(&mut self, tx: SlTx) -> Option<SlEvent> {
        let reject = |tx: &SlTx, error| SlEvent::TxRejected {
            hash: tx.hash(),
            call: tx.call.name(),
            error,
        };
        if let Err(e) = tx.verify_for(self.config.sl_chain_id) {
            return Some(reject(&tx, e));
        }
        // the council and the chains' operators keep their room: junk from many senders can
        // fill the queue for everyone else, never for them (each is still held to its
        // per-sender limit below)
        let privileged = tx.from == self.config.security_council
            || self.chains.values().any(|c| c.operator == tx.from);
        if !privileged && self.pending.len() >= self.config.max_pending_txs {
            let limit = self.config.max_pending_txs;
            return Some(reject(&tx, SettlementError::QueueFull { limit }));
        }
        let waiting = self.pending_per_sender.get(&tx.from).copied().unwrap_or(0);
        if waiting >= self.config.max_pending_txs_per_sender {
            let limit = self.config.max_pending_txs_per_sender;
            let sender = tx.from;
            return Some(reject(
                &tx,
                SettlementError::SenderQueueFull { sender, limit },
            ));
        }
        self.pending_per_sender.insert(tx.from, waiting + 1);
        self.pending.push(tx);
        None
    }

    fn produce_block(&mut self) -> Vec<SlEvent> {
        self.height += 1;
        let mut events = Vec::new();
        self.pending_per_sender.clear();
        for tx in std::mem::take(&mut self.pending) {
            let expected = self.nonce(&tx.from);
            let result = if tx.nonce != expected {
                Err(SettlementError::BadNonce {
                    sender: tx.from,
                    expected,
                    got: tx.nonce,
                })
            } else {
                self.apply(&tx, &mut events)
            };
            match result {
                Ok(()) => {
                    self.nonces.insert(tx.from, expected + 1);
                    self.note_operator_activity(&tx);
                }
                Err(error) => {
                    // like Ethereum: an included transaction whose call fails still uses its
                    // nonce, so one refused call does not void the sender's later ones
                    if !matches!(error, SettlementError::BadNonce { .. }) {
                        self.nonces.insert(tx.from, expected + 1);
                    }
                    events.push(SlEvent::TxRejected {
                        hash: tx.hash(),
                        call: tx.call.name(),
                        error,
                    })
                }
            }
        }
        self.tick_optimistic(&mut events);
        self.revert_contradicted(&mut events);
        self.settle_ready(&mut events);
        let epoch = self.epoch_at(self.now_ms);
        if let Some((set_hash, validators)) = self.staking.snapshot(epoch) {
            events.push(SlEvent::EpochStarted {
                epoch,
                set_hash,
                validators,
            });
        }
        events.push(SlEvent::SlBlock {
            height: self.height,
            timestamp_ms: self.now_ms,
            message_root: self.message_tree.root(),
            message_root_size: self.message_tree.len(),
        });
        self.next_block_at_ms = self.now_ms.saturating_add(self.config.sl_block_time_ms);
        events
    }

    fn note_operator_activity(&mut self, tx: &SlTx) {
        let chain = match &tx.call {
            SlCall::CommitBatch { header, .. } => header.chainId,
            SlCall::ProveBatch { chain_id, .. }
            | SlCall::ExecuteBatch { chain_id, .. }
            | SlCall::RevertBatches { chain_id, .. } => *chain_id,
            SlCall::RegisterChain(_)
            | SlCall::Deposit { .. }
            | SlCall::JoinValidators(_)
            | SlCall::ExitValidators
            | SlCall::WithdrawStake
            | SlCall::Postconfirm { .. }
            | SlCall::ReportEquivocation(_)
            | SlCall::ReportInvalidAccept(_)
            | SlCall::Propose(_)
            | SlCall::Challenge { .. }
            | SlCall::Split { .. }
            | SlCall::Choose { .. }
            | SlCall::ProveStep { .. }
            | SlCall::Withdraw { .. }
            | SlCall::SubmitRoot { .. } => return,
        };
        let now = self.now_ms;
        if let Some(c) = self.chains.get_mut(&chain) {
            if c.operator == tx.from {
                c.operator_active_ms = now;
            }
        }
    }

    /// Applies one call. Every check happens before the first write.
    fn apply(&mut self, tx: &SlTx, events: &mut Vec<SlEvent>) -> Result<(), SettlementError> {
        match &tx.call {
            SlCall::RegisterChain(genesis) => self.register(tx.from, genesis, events),
            SlCall::CommitBatch {
                header,
                imports,
                blocks,
            } => {
                let by = self.authorize(tx.from, header.chainId, "commitBatch")?;
                self.commit(header, imports, blocks, by, events)
            }
            SlCall::ProveBatch {
                chain_id,
                batch,
                proof,
            } => {
                let by = self.authorize(tx.from, *chain_id, "proveBatch")?;
                self.prove(*chain_id, *batch, proof, by, events)
            }
            SlCall::ExecuteBatch {
                chain_id,
                batch,
                extension_proofs,
            } => {
                let by = self.authorize(tx.from, *chain_id, "executeBatch")?;
                self.request_execution(*chain_id, *batch, extension_proofs, by, events)
            }
            SlCall::Deposit {
                chain_id,
                recipient,
                amount,
            } => self.deposit(tx.from, *chain_id, *recipient, *amount, events),
            SlCall::JoinValidators(req) => self.join_validators(tx.from, req, events),
            SlCall::ExitValidators => self.exit_validators(tx.from, events),
            SlCall::WithdrawStake => self.withdraw_stake(tx.from),
            SlCall::Postconfirm { qc, header } => self.postconfirm(qc, header, events),
            SlCall::ReportEquivocation(evidence) => {
                let offender = self
                    .staking
                    .check_equivocation(evidence)
                    .map_err(|reason| staking_error("reportEquivocation", reason))?;
                self.apply_slash(offender, SlashReason::Equivocation, tx.from, events);
                Ok(())
            }
            SlCall::ReportInvalidAccept(vote) => self.report_invalid_accept(tx.from, vote, events),
            SlCall::Propose(p) => self.propose(tx.from, p, events),
            SlCall::Challenge { proposal } => self.challenge(tx.from, *proposal, events),
            SlCall::Split { game, roots } => self.split(tx.from, *game, roots, events),
            SlCall::Choose { game, part } => self.choose(tx.from, *game, *part, events),
            SlCall::ProveStep { game, pre, witness } => {
                self.prove_step(*game, pre, witness, events)
            }
            SlCall::Withdraw { message, proof } => self.withdraw(message, proof, events),
            SlCall::SubmitRoot { proof } => self.submit_root(tx.from, proof, events),
            SlCall::RevertBatches { chain_id, from } => {
                let chain = self
                    .chains
                    .get(chain_id)
                    .ok_or(SettlementError::UnknownChain(*chain_id))?;
                let by = if tx.from == chain.operator {
                    Authority::Operator
                } else if tx.from == self.config.security_council {
                    Authority::Council
                } else {
                    return Err(SettlementError::NotAuthorized {
                        sender: tx.from,
                        action: "revertBatches",
                        chain: *chain_id,
                        reason: "only the operator or the security council may revert".into(),
                    });
                };
                if *from <= chain.last_executed || *from > chain.last_committed || *from == 0 {
                    return Err(SettlementError::WrongStatus {
                        chain: *chain_id,
                        batch: *from,
                        reason: format!(
                            "only unexecuted committed batches ({}..={}) can be reverted",
                            chain.last_executed + 1,
                            chain.last_committed
                        ),
                    });
                }
                // final batches are never reverted; finality is prefix-closed, but every
                // batch the revert would void is checked
                let last = chain.last_committed;
                if let Some((batch, by)) =
                    (*from..=last).find_map(|n| Some((n, self.finality(*chain_id, n)?)))
                {
                    return Err(SettlementError::FinalBatch {
                        chain: *chain_id,
                        batch,
                        by,
                    });
                }
                self.revert_cascading(*chain_id, *from, RevertCause::Requested(by), events);
                Ok(())
            }
        }
    }

    /// Who may settle `chain` now: its operator always; the council after the operator timeout;
    /// anyone after the council timeout.
    fn authorize(
        &self,
        sender: Address,
        chain_id: ChainId,
        action: &'static str,
    ) -> Result<Authority, SettlementError> {
        let chain = self
            .chains
            .get(&chain_id)
            .ok_or(SettlementError::UnknownChain(chain_id))?;
        if sender == chain.operator {
            return Ok(Authority::Operator);
        }
        let stalled_for = self.now_ms.saturating_sub(chain.stalled_since());
        if stalled_for >= self.config.timeout_council_ms {
            return Ok(if sender == self.config.security_council {
                Authority::Council
            } else {
                Authority::Anyone
            });
        }
        if sender == self.config.security_council && stalled_for >= self.config.timeout_operator_ms
        {
            return Ok(Authority::Council);
        }
        Err(SettlementError::NotAuthorized {
            sender,
            action,
            chain: chain_id,
            reason: format!(
                "chain stalled for {stalled_for} ms; council after {} ms, anyone after {} ms",
                self.config.timeout_operator_ms, self.config.timeout_council_ms
            ),
        })
    }

    /// `withdraw`: a message to the SL, proven in a historical MessageRoot, pays its value out
    /// of the in-flight pool to its recipient, once.
    fn withdraw(
        &mut self,
        message: &braid_primitives::Message,
        proof: &braid_primitives::MessageProof,
        events: &mut Vec<SlEvent>,
    ) -> Result<(), SettlementError> {
        let refuse = |reason: String| SettlementError::WithdrawalRefused { reason };
        if message.destChain != braid_primitives::SETTLEMENT_LAYER_CHAIN_ID {
            return Err(refuse(format!(
                "message to chain {}, not the SL",
                message.destChain
            )));
        }
        let id = message.id();
        if self.withdrawn.contains(&id) {
            return Err(refuse(format!("message {id} already withdrawn")));
        }
        if proof.kind != ImportKind::Proof as u8 {
            return Err(refuse(
                "a withdrawal needs a proof-mode (two-level) proof".into(),
            ));
        }
        if !self.historical_roots.contains(&proof.root) {
            return Err(refuse(format!(
                "{} is not a historical MessageRoot",
                proof.root
            )));
        }
        if proof.leafIndex != message.nonce {
            return Err(refuse(
                "the proof's leaf index is not the message's nonce".into(),
            ));
        }
        let inner = InclusionProof {
            index: proof.leafIndex,
            size: proof.treeSize,
            siblings: proof.siblings.clone(),
        };
        braid_merkle::verify_inclusion(proof.chainBatchRoot, message.leaf_hash(), &inner)
            .map_err(|e| refuse(format!("message not in the batch root: {e}")))?;
        let outer = InclusionProof {
            index: proof.outerIndex,
            size: proof.outerSize,
            siblings: proof.outerSiblings.clone(),
        };
        let batch_leaf = message_root_leaf(
            message.sourceChain,
            proof.batchNumber,
            proof.chainBatchRoot,
            proof.treeSize,
        );
        braid_merkle::verify_inclusion(proof.root, batch_leaf, &outer)
            .map_err(|e| refuse(format!("batch not in the MessageRoot: {e}")))?;
        if message.value > self.in_flight {
            return Err(refuse("more than the value in flight".into()));
        }
        self.in_flight -= message.value;
        self.withdrawn.insert(id);
        let b = self.balances.entry(message.recipient).or_default();
        *b = b.saturating_add(message.value);
        events.push(SlEvent::Withdrawn {
            id,
            recipient: message.recipient,
            amount: message.value,
        });
        Ok(())
    }

    fn deposit(
        &mut self,
        sender: Address,
        chain_id: ChainId,
        recipient: Address,
        amount: U256,
        events: &mut Vec<SlEvent>,
    ) -> Result<(), SettlementError> {
        let available = self.balance(&sender);
        let chain = self
            .chains
            .get_mut(&chain_id)
            .ok_or(SettlementError::UnknownChain(chain_id))?;
        if available < amount {
            return Err(SettlementError::InsufficientSlBalance {
                sender,
                available,
                amount,
            });
        }
        let deposit = Deposit {
            index: chain.deposits.len() as u64,
            chainId: chain_id,
            sender,
            recipient,
            amount,
            queuedAtMs: self.now_ms,
        };
        chain.deposits.push(deposit.clone());
        self.balances.insert(sender, available - amount);
        self.pending_deposit_value = self.pending_deposit_value.saturating_add(amount);
        events.push(SlEvent::DepositQueued(deposit));
        Ok(())
    }

    fn register(
        &mut self,
        sender: Address,
        genesis: &ChainGenesis,
        events: &mut Vec<SlEvent>,
    ) -> Result<(), SettlementError> {
        let chain = genesis.chain_id;
        if sender != self.config.security_council {
            return Err(SettlementError::NotAuthorized {
                sender,
                action: "registerChain",
                chain,
                reason: "only the security council registers chains".into(),
            });
        }
        if chain == braid_primitives::SETTLEMENT_LAYER_CHAIN_ID {
            return Err(SettlementError::InvalidGenesis {
                chain,
                reason: "chain id 0 is the SL".into(),
            });
        }
        if self.chains.contains_key(&chain) {
            return Err(SettlementError::ChainExists(chain));
        }
        let h = &genesis.genesis_header;
        let mut state = ChainState::genesis(chain, &genesis.alloc);
        let root = state.state_root();
        if h.number != 0 || h.chainId != chain || h.stateRoot != root {
            return Err(SettlementError::InvalidGenesis {
                chain,
                reason: format!(
                    "header is block {} of chain {} with state root {}, alloc gives {root}",
                    h.number, h.chainId, h.stateRoot
                ),
            });
        }
        let totals = state.totals();
        self.proofs.register_genesis(state);
        self.chains.insert(
            chain,
            ChainRecord {
                operator: genesis.operator,
                genesis: ChainTip {
                    block_number: 0,
                    block_hash: h.hash(),
                    state_root: root,
                },
                genesis_timestamp_ms: h.timestampMs,
                batches: BTreeMap::new(),
                last_executed: 0,
                last_committed: 0,
                escrow: totals.genesis_supply,
                last_progress_ms: self.now_ms,
                operator_active_ms: self.now_ms,
                executed_totals: totals,
                deposits: Vec::new(),
            },
        );
        events.push(SlEvent::ChainRegistered { chain });
        self.start_aggregation_if_ready();
        Ok(())
    }

    fn commit(
        &mut self,
        header: &BatchHeader,
        imports: &[ImportedRoot],
        blocks: &[Block],
        by: Authority,
        events: &mut Vec<SlEvent>,
    ) -> Result<(), SettlementError> {
        let chain_id = header.chainId;
        let chain = self
            .chains
            .get(&chain_id)
            .ok_or(SettlementError::UnknownChain(chain_id))?;
        let bad = |reason: String| SettlementError::BadCommit {
            chain: chain_id,
            batch: header.number,
            reason,
        };
        if header.number != chain.last_committed + 1 {
            return Err(bad(format!("next batch is {}", chain.last_committed + 1)));
        }
        let k = self.config.aggregation.checkpoint_blocks;
        if self.config.aggregation.covers(chain_id)
            && header.firstBlock.div_ceil(k) != header.lastBlock.div_ceil(k)
        {
            return Err(bad(format!(
                "a tree chain's batch may not cross a checkpoint (every {k} blocks)"
            )));
        }
        let prev = chain
            .tip_before(header.number)
            .ok_or_else(|| bad("previous batch missing".into()))?;
        if header.firstBlock != prev.block_number + 1 || header.lastBlock < header.firstBlock {
            return Err(bad(format!(
                "blocks {}..={} do not follow block {}",
                header.firstBlock, header.lastBlock, prev.block_number
            )));
        }
        if blocks.len() as u64 != header.lastBlock - header.firstBlock + 1 {
            return Err(bad(format!(
                "{} blocks of DA data for the range",
                blocks.len()
            )));
        }
        if da_commitment(blocks) != header.daCommitment {
            return Err(bad("DA data does not match the DA commitment".into()));
        }
        // the commitment covers block hashes; the bodies must match their headers
        for b in blocks {
            let hashes: Vec<B256> = b
                .transactions
                .iter()
                .map(alloy_primitives::keccak256)
                .collect();
            if tx_root(&hashes) != b.header.txRoot
                || imports_hash(&b.imports) != b.header.importsHash
                || deposits_hash(&b.deposits) != b.header.depositsHash
            {
                return Err(bad(format!(
                    "DA body of block {} does not match its header",
                    b.header.number
                )));
            }
        }
        let da_imports: Vec<ImportedRoot> = blocks
            .iter()
            .flat_map(|b| b.imports.iter().cloned())
            .collect();
        if da_imports != imports || imports_hash(imports) != header.importsHash {
            return Err(bad(
                "imports do not match the blocks and the imports hash".into()
            ));
        }
        for import in imports {
            if import.import_kind().is_err() {
                return Err(bad(format!("import of unknown kind {}", import.kind)));
            }
        }
        // every applied deposit must be the one the SL queued under that index
        for d in blocks.iter().flat_map(|b| b.deposits.iter()) {
            if chain.deposits.get(d.index as usize) != Some(d) {
                return Err(bad(format!("deposit {} was not queued on the SL", d.index)));
            }
        }
        self.check_block_timestamps(chain, header, blocks)?;
        let (last_block_timestamp_ms, deposit_count_after) = blocks
            .last()
            .map_or((0, 0), |b| (b.header.timestampMs, b.header.depositCount));
        let now = self.now_ms;
        let chain = self
            .chains
            .get_mut(&chain_id)
            .ok_or(SettlementError::UnknownChain(chain_id))?;
        chain.batches.insert(
            header.number,
            BatchRecord {
                header: header.clone(),
                imports: imports.to_vec(),
                blocks: blocks.to_vec(),
                status: BatchStatus::Committed,
                outputs: None,
                committed_at_ms: now,
                execute_request: None,
                leaf_index: None,
                failure: None,
                last_block_timestamp_ms,
                deposit_count_after,
                local_roots: blocks
                    .iter()
                    .map(|b| (b.header.localRoot, b.header.messageCount))
                    .collect(),
            },
        );
        chain.last_committed = header.number;
        chain.last_progress_ms = now;
        events.push(SlEvent::BatchCommitted {
            chain: chain_id,
            batch: header.number,
            by,
        });
        if self.config.aggregation.covers(chain_id) {
            self.fail_forged_imports(events);
        }
        Ok(())
    }

    /// The block timestamp rule at commit: each block after its parent (the first after the
    /// chain's previous batch's last block, or genesis), none more than
    /// `max_block_time_drift_ms` ahead of SL time.
    fn check_block_timestamps(
        &self,
        chain: &ChainRecord,
        header: &BatchHeader,
        blocks: &[Block],
    ) -> Result<(), SettlementError> {
        let mut parent_ms = if header.number <= 1 {
            chain.genesis_timestamp_ms
        } else {
            chain
                .batches
                .get(&(header.number - 1))
                .map(|b| b.last_block_timestamp_ms)
                .ok_or_else(|| SettlementError::BadCommit {
                    chain: header.chainId,
                    batch: header.number,
                    reason: "previous batch missing".into(),
                })?
        };
        let sl_time_ms = self.now_ms;
        let max_drift_ms = self.config.max_block_time_drift_ms;
        for b in blocks {
            let timestamp_ms = b.header.timestampMs;
            if timestamp_ms <= parent_ms {
                return Err(SettlementError::BlockTimestampNotIncreasing {
                    chain: header.chainId,
                    batch: header.number,
                    block: b.header.number,
                    timestamp_ms,
                    parent_ms,
                });
            }
            if timestamp_ms > sl_time_ms.saturating_add(max_drift_ms) {
                return Err(SettlementError::BlockTimestampAhead {
                    chain: header.chainId,
                    batch: header.number,
                    block: b.header.number,
                    timestamp_ms,
                    sl_time_ms,
                    max_drift_ms,
                });
            }
            parent_ms = timestamp_ms;
        }
        Ok(())
    }

    /// A committed batch that is not proven yet, with its chain (a function of the chain
    /// table only, so the proof system stays borrowable).
    fn unproven_batch(
        chains: &BTreeMap<ChainId, ChainRecord>,
        chain_id: ChainId,
        batch: BatchNumber,
    ) -> Result<(&ChainRecord, &BatchRecord), SettlementError> {
        let chain = chains
            .get(&chain_id)
            .ok_or(SettlementError::UnknownChain(chain_id))?;
        let rec = chain
            .batches
            .get(&batch)
            .ok_or(SettlementError::UnknownBatch {
                chain: chain_id,
                batch,
            })?;
        if rec.status != BatchStatus::Committed {
            return Err(SettlementError::WrongStatus {
                chain: chain_id,
                batch,
                reason: "already proven".into(),
            });
        }
        Ok((chain, rec))
    }

    fn prove(
        &mut self,
        chain_id: ChainId,
        batch: BatchNumber,
        proof: &[u8],
        by: Authority,
        events: &mut Vec<SlEvent>,
    ) -> Result<(), SettlementError> {
        if self.config.optimistic.covers(chain_id) {
            return Err(optimistic::err(
                "proveBatch",
                format!("chain {chain_id} settles by optimistic proposals, not proofs"),
            ));
        }
        let exit = self.config.aggregation.covers(chain_id);
        if exit && !self.aggregation_exit_open(chain_id, batch) {
            return Err(aggregated::err(
                "proveBatch",
                format!(
                    "chain {chain_id} settles with the aggregation tree's roots; it may settle \
                     alone once no root came for {} ms",
                    self.config.aggregation.aggregator_timeout_ms
                ),
            ));
        }
        let (chain, rec) = Self::unproven_batch(&self.chains, chain_id, batch)?;
        if batch > 1 {
            let prev_proven = chain
                .batches
                .get(&(batch - 1))
                .is_some_and(|p| p.status != BatchStatus::Committed);
            if !prev_proven {
                return Err(SettlementError::WrongStatus {
                    chain: chain_id,
                    batch,
                    reason: format!("batch {} must be proven first", batch - 1),
                });
            }
        }
        let claim = chain.claim(rec).ok_or(SettlementError::UnknownBatch {
            chain: chain_id,
            batch: batch - 1,
        })?;
        let outputs =
            self.proofs
                .verify(&claim, proof)
                .map_err(|error| SettlementError::ProofRejected {
                    chain: chain_id,
                    batch,
                    error: Box::new(error),
                })?;
        if outputs.imports != rec.imports {
            return Err(SettlementError::ProofRejected {
                chain: chain_id,
                batch,
                error: Box::new(ProofError::BatchMismatch {
                    field: "imports",
                    claimed: format!("{} imports", rec.imports.len()),
                    computed: format!("{} imports", outputs.imports.len()),
                }),
            });
        }
        let chain = self
            .chains
            .get_mut(&chain_id)
            .ok_or(SettlementError::UnknownChain(chain_id))?;
        if let Some(rec) = chain.batches.get_mut(&batch) {
            rec.status = BatchStatus::Proven;
            rec.outputs = Some(outputs);
        }
        events.push(SlEvent::BatchProven {
            chain: chain_id,
            batch,
            by,
        });
        if exit {
            self.aggregation.note_exit();
            events.push(SlEvent::AggregationExit {
                chain: chain_id,
                batch,
                last_root: self.aggregation.roots().map_or(0, |r| r.checkpoint()),
            });
        }
        Ok(())
    }

    fn request_execution(
        &mut self,
        chain_id: ChainId,
        batch: BatchNumber,
        extension_proofs: &[braid_merkle::ExtensionProof],
        by: Authority,
        events: &mut Vec<SlEvent>,
    ) -> Result<(), SettlementError> {
        let chain = self
            .chains
            .get_mut(&chain_id)
            .ok_or(SettlementError::UnknownChain(chain_id))?;
        let rec = chain
            .batches
            .get_mut(&batch)
            .ok_or(SettlementError::UnknownBatch {
                chain: chain_id,
                batch,
            })?;
        if rec.status != BatchStatus::Proven {
            return Err(SettlementError::WrongStatus {
                chain: chain_id,
                batch,
                reason: format!("status is {:?}, must be proven", rec.status),
            });
        }
        let precommits = rec
            .imports
            .iter()
            .filter(|i| i.import_kind().is_ok_and(ImportKind::is_block_root))
            .count();
        if extension_proofs.len() != precommits {
            return Err(SettlementError::WrongStatus {
                chain: chain_id,
                batch,
                reason: format!(
                    "{} extension proofs for {precommits} pre-commit imports",
                    extension_proofs.len()
                ),
            });
        }
        rec.execute_request = Some(extension_proofs.to_vec());
        rec.failure = None;
        events.push(SlEvent::ExecutionRequested {
            chain: chain_id,
            batch,
            by,
        });
        Ok(())
    }

    /// Checks one import of a batch against executed batches and the candidate set.
    fn check_import(
        &self,
        importer: (ChainId, BatchNumber),
        import: &ImportedRoot,
        extension: Option<&braid_merkle::ExtensionProof>,
        candidates: &BTreeMap<ChainId, Vec<BatchNumber>>,
    ) -> ImportCheck {
        let settled = |source: ChainId, batch: BatchNumber| {
            self.chains
                .get(&source)
                .is_some_and(|c| c.last_executed >= batch)
                || candidates.get(&source).is_some_and(|l| l.contains(&batch))
        };
        match import.import_kind() {
            Err(e) => ImportCheck::Fail(e.to_string()),
            Ok(ImportKind::Aggregated) => {
                match self.check_aggregated_import(importer.0, importer.1, import, candidates) {
                    Ok(true) => ImportCheck::Ok,
                    Ok(false) => ImportCheck::Wait,
                    Err(reason) => ImportCheck::Fail(reason),
                }
            }
            Ok(ImportKind::Proof) => {
                if self.historical_roots.contains(&import.root) {
                    ImportCheck::Ok
                } else {
                    ImportCheck::Fail(format!("{} is not a historical MessageRoot", import.root))
                }
            }
            Ok(kind @ (ImportKind::Commit | ImportKind::Optimistic)) => {
                let Some(source) = self.chains.get(&import.sourceChain) else {
                    return ImportCheck::Fail(format!(
                        "unknown source chain {}",
                        import.sourceChain
                    ));
                };
                let Some(rec) = source.batches.get(&import.sourceHeight) else {
                    return ImportCheck::Wait;
                };
                if rec.header.chainBatchRoot != import.root
                    || rec.header.messageCount != import.messageCount
                {
                    return ImportCheck::Fail(format!(
                        "{} import of batch {} of chain {} does not match its ChainBatchRoot",
                        kind.name(),
                        import.sourceHeight,
                        import.sourceChain
                    ));
                }
                // an optimistic import also needs the batch's end state final (proven) first
                if kind == ImportKind::Optimistic && rec.status == BatchStatus::Committed {
                    return ImportCheck::Wait;
                }
                if settled(import.sourceChain, import.sourceHeight) {
                    ImportCheck::Ok
                } else {
                    ImportCheck::Wait
                }
            }
            Ok(kind @ (ImportKind::Precommit | ImportKind::Qc)) => {
                if kind == ImportKind::Qc {
                    let certified = self
                        .staking
                        .postconfirmed
                        .get(&import.sourceChain)
                        .and_then(|c| c.get(&import.sourceHeight));
                    match certified {
                        // the relayer posts the QC it imported on; until then, wait
                        None => return ImportCheck::Wait,
                        Some(p)
                            if p.local_root != import.root
                                || p.message_count != import.messageCount =>
                        {
                            return ImportCheck::Fail(format!(
                                "qc import of block {} of chain {} does not match the \
                                 postconfirmed block's LocalRoot",
                                import.sourceHeight, import.sourceChain
                            ));
                        }
                        Some(_) => {}
                    }
                }
                let Some(source) = self.chains.get(&import.sourceChain) else {
                    return ImportCheck::Fail(format!(
                        "unknown source chain {}",
                        import.sourceChain
                    ));
                };
                let Some(extension) = extension else {
                    return ImportCheck::Fail("missing extension proof".into());
                };
                let (target_root, target_count, target_batch) = if import.sourceHeight == 0 {
                    (braid_merkle::empty_root(), 0, 0)
                } else {
                    let Some(rec) = source.batch_holding_block(import.sourceHeight) else {
                        return ImportCheck::Wait;
                    };
                    (
                        rec.header.chainBatchRoot,
                        rec.header.messageCount,
                        rec.header.number,
                    )
                };
                if target_batch > 0 && !settled(import.sourceChain, target_batch) {
                    return ImportCheck::Wait;
                }
                if extension.old_size != import.messageCount || extension.new_size != target_count {
                    return ImportCheck::Fail(format!(
                        "extension proof covers sizes {}->{}, import needs {}->{}",
                        extension.old_size, extension.new_size, import.messageCount, target_count
                    ));
                }
                match verify_extension(import.root, target_root, extension) {
                    Ok(()) => ImportCheck::Ok,
                    Err(e) => ImportCheck::Fail(format!(
                        "LocalRoot of block {} of chain {} does not extend to batch {target_batch}: {e}",
                        import.sourceHeight, import.sourceChain
                    )),
                }
            }
        }
    }

    /// Checks all imports of a batch.
    fn check_batch(
        &self,
        rec: &BatchRecord,
        candidates: &BTreeMap<ChainId, Vec<BatchNumber>>,
    ) -> ImportCheck {
        // forced inclusion: a deposit queued more than the window before the batch's last block
        // must be in the batch (or earlier)
        if let Some(reason) = self.censorship(rec) {
            return ImportCheck::Fail(reason);
        }
        let proofs = rec.execute_request.as_deref().unwrap_or_default();
        let mut next_proof = 0;
        let mut waiting = false;
        for import in &rec.imports {
            let ext = if import.import_kind().is_ok_and(ImportKind::is_block_root) {
                next_proof += 1;
                proofs.get(next_proof - 1)
            } else {
                None
            };
            match self.check_import(
                (rec.header.chainId, rec.header.number),
                import,
                ext,
                candidates,
            ) {
                ImportCheck::Ok => {}
                ImportCheck::Wait => waiting = true,
                fail @ ImportCheck::Fail(_) => return fail,
            }
        }
        if waiting {
            ImportCheck::Wait
        } else {
            ImportCheck::Ok
        }
    }

    /// Executes the largest set of ready batches whose imports are satisfied (see crate docs).
    fn settle_ready(&mut self, events: &mut Vec<SlEvent>) {
        let mut failed: BTreeMap<(ChainId, BatchNumber), String> = BTreeMap::new();
        loop {
            // per chain, the prefix of proven, requested, non-failed batches
            let mut candidates: BTreeMap<ChainId, Vec<BatchNumber>> = BTreeMap::new();
            for (id, chain) in &self.chains {
                let mut list = Vec::new();
                let mut n = chain.last_executed + 1;
                while let Some(rec) = chain.batches.get(&n) {
                    if rec.status != BatchStatus::Proven
                        || rec.execute_request.is_none()
                        || failed.contains_key(&(*id, n))
                    {
                        break;
                    }
                    list.push(n);
                    n += 1;
                }
                if !list.is_empty() {
                    candidates.insert(*id, list);
                }
            }
            // greatest fixpoint: drop batches (and their successors) with unsatisfied imports
            loop {
                let mut cut: Option<(ChainId, usize)> = None;
                'search: for (id, list) in &candidates {
                    for (pos, n) in list.iter().enumerate() {
                        let Some(rec) = self.batch(*id, *n) else {
                            continue;
                        };
                        match self.check_batch(rec, &candidates) {
                            ImportCheck::Ok => {}
                            ImportCheck::Wait => {
                                cut = Some((*id, pos));
                                break 'search;
                            }
                            ImportCheck::Fail(reason) => {
                                failed.insert((*id, *n), reason);
                                cut = Some((*id, pos));
                                break 'search;
                            }
                        }
                    }
                }
                match cut {
                    Some((id, pos)) => {
                        if let Some(list) = candidates.get_mut(&id) {
                            list.truncate(pos);
                            if list.is_empty() {
                                candidates.remove(&id);
                            }
                        }
                    }
                    None => break,
                }
            }
            if candidates.is_empty() {
                break;
            }
            match self.value_transition(&candidates) {
                Ok(values) => self.execute_set(&candidates, values, events),
                Err((key, reason)) => {
                    failed.insert(key, reason);
                    continue; // recompute the set without it
                }
            }
        }
        for ((chain, batch), reason) in failed {
            if let Some(rec) = self
                .chains
                .get_mut(&chain)
                .and_then(|c| c.batches.get_mut(&batch))
            {
                if rec.failure.as_ref() != Some(&reason) {
                    rec.failure = Some(reason.clone());
                    events.push(SlEvent::BatchCheckFailed {
                        chain,
                        batch,
                        reason,
                    });
                }
            }
        }
    }

    /// Value after executing `set`: sends enter the in-flight pool first, then each chain's
    /// net change must keep its escrow non-negative and receipts must be covered by the pool.
    fn value_transition(
        &self,
        set: &BTreeMap<ChainId, Vec<BatchNumber>>,
    ) -> Result<ValueAfter, ((ChainId, BatchNumber), String)> {
        let outputs = |id: ChainId| {
            set.get(&id).into_iter().flatten().filter_map(move |n| {
                let out = self.batch(id, *n)?.outputs.as_ref()?;
                Some((*n, ValueFlows::of(out)))
            })
        };
        let mut in_flight = self.in_flight;
        for id in set.keys() {
            for (_, f) in outputs(*id) {
                in_flight = in_flight.saturating_add(f.sent);
            }
        }
        let mut after = ValueAfter {
            escrows: BTreeMap::new(),
            in_flight,
            fees_collected: self.fees_collected,
            pending_deposit_value: self.pending_deposit_value,
        };
        for id in set.keys() {
            let mut escrow = self.chains.get(id).map_or(U256::ZERO, |c| c.escrow);
            for (n, f) in outputs(*id) {
                let released = f.sent.saturating_add(f.burned);
                let incoming = f.received.saturating_add(f.deposited);
                match (
                    escrow.saturating_add(incoming).checked_sub(released),
                    after.in_flight.checked_sub(f.received),
                    after.pending_deposit_value.checked_sub(f.deposited),
                ) {
                    (Some(e), Some(p), Some(d)) => {
                        escrow = e;
                        after.in_flight = p;
                        after.pending_deposit_value = d;
                        after.fees_collected = after.fees_collected.saturating_add(f.burned);
                    }
                    _ => {
                        return Err((
                            (*id, n),
                            format!(
                                "over-release: batch releases {released} and receives {}; chain escrow {escrow}, in flight {}",
                                f.received, after.in_flight
                            ),
                        ))
                    }
                }
            }
            after.escrows.insert(*id, escrow);
        }
        Ok(after)
    }

    fn execute_set(
        &mut self,
        set: &BTreeMap<ChainId, Vec<BatchNumber>>,
        values: ValueAfter,
        events: &mut Vec<SlEvent>,
    ) {
        let now = self.now_ms;
        self.in_flight = values.in_flight;
        self.fees_collected = values.fees_collected;
        self.pending_deposit_value = values.pending_deposit_value;
        for (id, list) in set {
            if let (Some(chain), Some(escrow)) = (self.chains.get_mut(id), values.escrows.get(id)) {
                chain.escrow = *escrow;
            }
            for n in list {
                let Some(chain) = self.chains.get_mut(id) else {
                    continue;
                };
                let Some(rec) = chain.batches.get_mut(n) else {
                    continue;
                };
                let Some(out) = rec.outputs.clone() else {
                    continue;
                };
                chain.executed_totals = out.totals_after;
                chain.last_executed = *n;
                chain.last_progress_ms = now;
                rec.status = BatchStatus::Executed;
                rec.blocks = Vec::new(); // DA data is no longer needed
                let leaf =
                    message_root_leaf(*id, *n, rec.header.chainBatchRoot, rec.header.messageCount);
                // the tree holds at most 2^32 batch leaves; reaching that is out of scope
                let leaf_index = self.message_tree.append(leaf).unwrap_or(u64::MAX);
                rec.leaf_index = Some(leaf_index);
                let root = self.message_tree.root();
                self.historical_roots.insert(root);
                events.push(SlEvent::BatchExecuted {
                    chain: *id,
                    batch: *n,
                    leaf_index,
                    message_root: root,
                });
            }
            self.retain_proof_states(*id);
        }
    }

    fn retain_proof_states(&mut self, chain_id: ChainId) {
        if let Some(chain) = self.chains.get(&chain_id) {
            let mut keep = vec![chain
                .tip_before(chain.last_executed + 1)
                .map_or(chain.genesis.state_root, |t| t.state_root)];
            keep.extend(
                chain
                    .batches
                    .range(chain.last_executed + 1..)
                    .map(|(_, b)| b)
                    .filter(|b| b.status == BatchStatus::Proven)
                    .map(|b| b.header.stateRoot),
            );
            self.proofs.retain(chain_id, &keep);
        }
    }

    /// The first import of an unexecuted batch of each chain that its source's committed
    /// batches contradict ([`RevertCause::Contradicted`]; `import_contradicted`). Such a batch
    /// can never execute (its import check can never pass), so it is reverted at once, with
    /// its importers, instead of waiting forever.
    fn contradicted_imports(&self) -> Vec<(ChainId, BatchNumber, RevertCause)> {
        let mut hits = Vec::new();
        for (id, chain) in &self.chains {
            let hit = chain
                .batches
                .range(chain.last_executed + 1..)
                .map(|(_, b)| b)
                .find_map(|b| {
                    b.imports
                        .iter()
                        .find(|i| self.import_contradicted(i))
                        .map(|i| (b.header.number, i))
                });
            if let Some((n, i)) = hit {
                // a final batch imports only final roots (crate docs): never contradicted
                if self.finality(*id, n).is_none() {
                    hits.push((
                        *id,
                        n,
                        RevertCause::Contradicted {
                            source_chain: i.sourceChain,
                            height: i.sourceHeight,
                            root: i.root,
                        },
                    ));
                }
            }
        }
        hits
    }

    /// Whether the source's committed batches contradict `import`: for a `precommit` or `qc`
    /// import, the committed batch holding the imported block has another LocalRoot (or message
    /// count) there; for a `commit` or `optimistic` import, the committed batch of that number
    /// has another ChainBatchRoot (or message count). Genesis, blocks and batches not committed
    /// yet, and the other kinds never are.
    fn import_contradicted(&self, import: &ImportedRoot) -> bool {
        let Some(source) = self.chains.get(&import.sourceChain) else {
            return false;
        };
        match import.import_kind() {
            Ok(ImportKind::Precommit | ImportKind::Qc) if import.sourceHeight > 0 => {
                let Some(rec) = source.batch_holding_block(import.sourceHeight) else {
                    return false;
                };
                let offset = (import.sourceHeight - rec.header.firstBlock) as usize;
                rec.local_roots
                    .get(offset)
                    .is_some_and(|held| *held != (import.root, import.messageCount))
            }
            Ok(ImportKind::Commit | ImportKind::Optimistic) => {
                source.batches.get(&import.sourceHeight).is_some_and(|rec| {
                    rec.header.chainBatchRoot != import.root
                        || rec.header.messageCount != import.messageCount
                })
            }
            _ => false,
        }
    }

    /// Reverts, with their importers, the batches holding a contradicted import (see
    /// [`RevertCause::Contradicted`]).
    fn revert_contradicted(&mut self, events: &mut Vec<SlEvent>) {
        for (chain, from, cause) in self.contradicted_imports() {
            self.revert_cascading(chain, from, cause, events);
        }
    }

    /// Reverts `chain`'s batches from `from` and, transitively, every unexecuted batch that
    /// imported from a reverted batch or block.
    fn revert_cascading(
        &mut self,
        chain_id: ChainId,
        from: BatchNumber,
        cause: RevertCause,
        events: &mut Vec<SlEvent>,
    ) {
        let mut work = vec![(chain_id, from, cause)];
        while let Some((id, from, cause)) = work.pop() {
            let Some(chain) = self.chains.get_mut(&id) else {
                continue;
            };
            // already reverted, or (impossible by construction) executed
            if from > chain.last_committed || from <= chain.last_executed {
                continue;
            }
            let to = chain.last_committed;
            let first_block = chain.batches.get(&from).map_or(0, |b| b.header.firstBlock);
            chain.batches.retain(|n, _| *n < from);
            chain.last_committed = from - 1;
            events.push(SlEvent::BatchesReverted {
                chain: id,
                from,
                to,
                first_block,
                cause,
            });
            // importers of the void batches / blocks
            for (other_id, other) in &self.chains {
                if *other_id == id {
                    continue;
                }
                let tree = &self.config.aggregation;
                let void = |i: &ImportedRoot| {
                    i.voided_by(id, from, first_block)
                        || tree.import_voided_by(*other_id, i, id, first_block)
                };
                let hit = other
                    .batches
                    .range(other.last_executed + 1..)
                    .map(|(_, b)| b)
                    .find(|b| b.status != BatchStatus::Executed && b.imports.iter().any(void));
                // a cascade never reaches a final batch: it starts after the chain's last
                // final one (by the rules in the crate docs a final batch imports only final
                // roots, so a hit batch is never final and this cut never bites)
                let hit = hit.and_then(|b| {
                    let n = b.header.number;
                    let last_final = (n..=other.last_committed)
                        .rev()
                        .find(|m| self.finality(*other_id, *m).is_some());
                    match last_final {
                        None => Some(n),
                        Some(f) if f < other.last_committed => Some(f + 1),
                        Some(_) => None,
                    }
                });
                if let Some(n) = hit {
                    work.push((
                        *other_id,
                        n,
                        RevertCause::Cascade {
                            source_chain: id,
                            source_batch: from,
                        },
                    ));
                }
            }
            self.retain_proof_states(id);
            self.optimistic_on_revert(id, from);
        }
    }
}

#[cfg(test)]
mod tests;
