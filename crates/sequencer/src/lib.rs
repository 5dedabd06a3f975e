//! Braid's sequencer core: a sans-IO state machine that pools transactions, produces a block
//! every `block_time_ms` and seals a batch every `batch_blocks` blocks.
//!
//! Inputs are [`SequencerInput`]s carrying the current time; outputs are [`SequencerOutput`]s
//! (accepted or rejected transactions, sealed blocks with their receipts and state changes to
//! persist, sealed batches to commit). No clock, I/O or randomness inside: the simulator and the
//! live node drive the same core.
//!
//! Block production: at the first tick at or after the scheduled time the sequencer applies the
//! pending imported roots (system transactions), then executable pool transactions in order of
//! the tip they pay, skipping (and evicting) any that fail, until the block's gas is used up.
//! The base fee follows EIP-1559 from the parent block, floored at
//! [`SequencerConfig::min_base_fee`].
//!
//! Reverts: the settlement layer may revert batches it has not executed. The sequencer keeps, for
//! every sealed batch not yet known to be final, a snapshot of the state and head at the batch's
//! end plus the batch's blocks; [`Sequencer::revert_to`] rolls back to such a snapshot and
//! re-sequences the reverted blocks' transactions and valid imports.
//! [`Sequencer::finalize_through`] drops what can no longer be reverted.

mod mempool;

pub use mempool::{Mempool, MempoolConfig, MempoolError};

use alloy_eips::eip1559::{calc_next_block_base_fee, BaseFeeParams};
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_sol_types::SolValue;
use braid_execution::{
    apply_deposit, apply_import, apply_transaction, intrinsic_gas, seal_header, BlockEnv,
    ChainState, ExecutionError, RecoveredTx, StateChanges, TxReceipt,
};
use braid_primitives::{
    imports_hash, BatchHeader, BatchNumber, Block, BlockHeader, BlockNumber, ChainId, Deposit,
    ImportedRoot,
};
use std::collections::BTreeMap;
use std::ops::Range;

/// Configuration of one chain's sequencer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SequencerConfig {
    /// The chain.
    pub chain_id: ChainId,
    /// Time between blocks.
    pub block_time_ms: u64,
    /// Blocks per batch.
    pub batch_blocks: u64,
    /// Gas limit of every block.
    pub block_gas_limit: u64,
    /// Lowest base fee.
    pub min_base_fee: u128,
    /// Receives priority fees.
    pub fee_recipient: Address,
    /// Most imports queued for the next block.
    pub max_pending_imports: usize,
    /// Pool limits.
    pub mempool: MempoolConfig,
    /// Blocks per aggregation checkpoint, if the chain is in the shared aggregation tree (seed
    /// 001). A block in checkpoint `i` (blocks `(i-1)K+1..=iK`) may only import a tree hash of
    /// checkpoint `i-1` or `i-2`: earlier imports are waited for, stale ones refused. Chains
    /// outside the tree refuse `aggregated` imports.
    #[serde(default)]
    pub checkpoint_blocks: Option<u64>,
}

impl SequencerConfig {
    /// Defaults for a chain: 1 s blocks, 10-block batches, 30M gas, 1 gwei minimum base fee.
    pub fn new(chain_id: ChainId) -> Self {
        Self {
            chain_id,
            block_time_ms: 1_000,
            batch_blocks: 10,
            block_gas_limit: 30_000_000,
            min_base_fee: 1_000_000_000,
            fee_recipient: Address::ZERO,
            max_pending_imports: 1_024,
            mempool: MempoolConfig::default(),
            checkpoint_blocks: None,
        }
    }

    /// Checks the configuration for values the sequencer cannot run with.
    pub fn validate(&self) -> Result<(), SequencerError> {
        let bad = |reason: &str| {
            Err(SequencerError::InvalidConfig {
                reason: reason.to_string(),
            })
        };
        if self.block_time_ms == 0 {
            return bad("block_time_ms must be positive");
        }
        if self.batch_blocks == 0 {
            return bad("batch_blocks must be positive");
        }
        if self.block_gas_limit < braid_execution::TX_BASE_GAS {
            return bad("block_gas_limit must fit one transfer (21000)");
        }
        if self.min_base_fee == 0 || self.min_base_fee > u64::MAX as u128 {
            return bad("min_base_fee must be in 1..=u64::MAX");
        }
        if let Some(k) = self.checkpoint_blocks {
            if k == 0 || k % self.batch_blocks != 0 {
                return bad("checkpoint_blocks must be a positive multiple of batch_blocks");
            }
        }
        Ok(())
    }
}

/// Errors of the sequencer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SequencerError {
    /// The transaction failed validation.
    #[error(transparent)]
    Execution(#[from] ExecutionError),
    /// The pool refused the transaction.
    #[error(transparent)]
    Mempool(#[from] MempoolError),
    /// Too many imports are queued.
    #[error("import queue full ({limit})")]
    ImportQueueFull {
        /// The limit.
        limit: usize,
    },
    /// A configuration value the sequencer cannot run with.
    #[error("invalid sequencer configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// An `aggregated` import outside the checkpoints a block may import from.
    #[error("aggregated import of checkpoint {checkpoint} refused in block {block}: {reason}")]
    AggregatedImportRefused {
        /// The imported checkpoint.
        checkpoint: u64,
        /// The block being built.
        block: BlockNumber,
        /// Why.
        reason: &'static str,
    },
    /// Restoring from storage found inconsistent data.
    #[error("cannot restore sequencer: {reason}")]
    Restore {
        /// What is inconsistent.
        reason: String,
    },
    /// A revert to a batch whose end state is no longer kept: it is older than the oldest
    /// snapshot (finalized past it, or before the point the sequencer was restored from).
    #[error("cannot revert to batch {requested}: oldest revertible batch is {oldest:?}")]
    RevertTooOld {
        /// The requested last valid batch.
        requested: BatchNumber,
        /// The oldest batch with a kept snapshot (`None`: no snapshot kept, see
        /// [`Sequencer::restore`]).
        oldest: Option<BatchNumber>,
    },
    /// A revert to a batch that has not been sealed.
    #[error("cannot revert to batch {requested}: last sealed batch is {last_batch}")]
    RevertBeyondLastBatch {
        /// The requested last valid batch.
        requested: BatchNumber,
        /// The last sealed batch.
        last_batch: BatchNumber,
    },
}

/// An input event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequencerInput {
    /// Time passed; produce a block if one is due.
    Tick {
        /// Current time.
        now_ms: u64,
    },
    /// A raw signed transaction from a user.
    SubmitTx {
        /// EIP-2718 bytes.
        raw: Bytes,
    },
    /// A root to import in the next block.
    Import(ImportedRoot),
    /// A deposit queued on the SL for this chain: a forced transaction, included in index order.
    Deposit(Deposit),
}

/// A block produced by the sequencer, with what the shell must persist before announcing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBlock {
    /// The block.
    pub block: Block,
    /// Its hash.
    pub hash: B256,
    /// Receipts of its transactions.
    pub receipts: Vec<TxReceipt>,
    /// State changes since the previous block.
    pub changes: StateChanges,
}

/// A sealed batch: its record for the settlement layer and its blocks (the DA data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBatch {
    /// The record committed to the SL.
    pub header: BatchHeader,
    /// Every block of the batch, in order.
    pub blocks: Vec<Block>,
}

/// DA commitment of a batch: `keccak256(abi.encode(bytes32[] blockHashes))`. The block hashes
/// commit to every transaction (tx root) and import (imports hash) of the batch.
pub fn da_commitment(blocks: &[Block]) -> B256 {
    let hashes: Vec<B256> = blocks.iter().map(|b| b.header.hash()).collect();
    keccak256(hashes.abi_encode())
}

/// An output action.
#[derive(Debug, PartialEq, Eq)]
pub enum SequencerOutput {
    /// The transaction entered the pool.
    TxAccepted {
        /// Its hash.
        hash: B256,
        /// The pooled transaction it replaced, if any.
        replaced: Option<B256>,
    },
    /// The transaction was refused.
    TxRejected {
        /// Its hash, if it decoded.
        hash: Option<B256>,
        /// Why.
        error: SequencerError,
    },
    /// A pooled transaction failed at block building and was evicted.
    TxDropped {
        /// Its hash.
        hash: B256,
        /// Why.
        error: ExecutionError,
    },
    /// An import was queued.
    ImportQueued(ImportedRoot),
    /// An import was refused (at queueing or block building).
    ImportRejected {
        /// The import.
        import: ImportedRoot,
        /// Why.
        error: SequencerError,
    },
    /// A block was produced; persist, then announce.
    BlockSealed(Box<SealedBlock>),
    /// A batch was sealed; commit it to the SL.
    BatchSealed(Box<SealedBatch>),
}

/// What [`Sequencer::revert_to`] did. The shell rolls its storage back to `head.number`
/// (e.g. `ChainStore::revert_to_block`) before persisting the next block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevertOutcome {
    /// The last valid batch, now the last sealed batch.
    pub last_batch: BatchNumber,
    /// Sealed batches discarded (`last_batch + 1 ..= previous last batch`; empty if only the
    /// open batch was discarded).
    pub reverted_batches: Range<BatchNumber>,
    /// Blocks discarded (empty if the head already was the end of `last_batch`).
    pub reverted_blocks: Range<BlockNumber>,
    /// User transactions of the discarded blocks put back into the pool.
    pub txs_repooled: usize,
    /// User transactions of the discarded blocks that are not back in the pool (each is in
    /// `txs_dropped` with its reason).
    pub txs_not_repooled: usize,
    /// Every user transaction of the discarded blocks that was not re-pooled, with why: its
    /// nonce is now taken by a pooled transaction sent later, or it was already pooled. None
    /// is dropped for the pool's size limits: they do not apply to re-pooled transactions.
    pub txs_dropped: Vec<(B256, RepoolRefusal)>,
    /// Imports of the discarded blocks queued again (before the previously pending ones).
    pub imports_requeued: Vec<ImportedRoot>,
    /// Imports declared invalid and dropped, from the discarded blocks and the pending queue.
    pub imports_dropped: Vec<ImportedRoot>,
    /// The new head: the last block of `last_batch`.
    pub head: BlockHeader,
}

/// Why a transaction of a block discarded by a revert is not back in the pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoolRefusal {
    /// The pool refused it.
    #[error("pool: {0}")]
    Pool(MempoolError),
    /// It no longer decodes (cannot happen for a block this sequencer built).
    #[error("undecodable: {0}")]
    Undecodable(String),
}

impl RepoolRefusal {
    /// A short name for reports and metrics (`NonceTaken`, `AlreadyKnown`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            RepoolRefusal::Pool(MempoolError::AlreadyKnown(_)) => "AlreadyKnown",
            RepoolRefusal::Pool(MempoolError::NonceTaken { .. }) => "NonceTaken",
            RepoolRefusal::Pool(MempoolError::ReplacementUnderpriced { .. }) => {
                "ReplacementUnderpriced"
            }
            RepoolRefusal::Pool(MempoolError::NonceTooFarAhead { .. }) => "NonceTooFarAhead",
            RepoolRefusal::Pool(MempoolError::SenderFull { .. }) => "SenderFull",
            RepoolRefusal::Pool(MempoolError::PoolFull { .. }) => "PoolFull",
            RepoolRefusal::Undecodable(_) => "Undecodable",
        }
    }
}

/// The end of a sealed (or the restore point's) batch, kept until it is final.
#[derive(Debug, Clone)]
struct Checkpoint {
    /// State after the batch's last block (its changes already taken).
    state: ChainState,
    /// The batch's last block header.
    head: BlockHeader,
    /// The batch's blocks (empty for genesis or the restore point).
    blocks: Vec<Block>,
}

/// The sequencer state machine.
#[derive(Debug, Clone)]
pub struct Sequencer {
    config: SequencerConfig,
    state: ChainState,
    head: BlockHeader,
    mempool: Mempool,
    pending_imports: Vec<ImportedRoot>,
    /// SL deposits not yet known to be final, by index (included ones stay until finalized so a
    /// revert can include them again).
    pending_deposits: BTreeMap<u64, Deposit>,
    next_block_at_ms: u64,
    /// Blocks still to re-produce back to back after a revert discarded them.
    catch_up_blocks: u64,
    /// Blocks of the batch being built (after the last sealed batch).
    open_batch: Vec<Block>,
    last_batch: BatchNumber,
    /// Snapshots at the end of every batch not yet final, by batch number; the oldest entry is
    /// the revert floor (genesis, the restore point or the last finalized batch).
    checkpoints: BTreeMap<BatchNumber, Checkpoint>,
}

impl Sequencer {
    /// A fresh chain: genesis state from `alloc` and the genesis block (height 0, time 0).
    pub fn genesis(
        config: SequencerConfig,
        alloc: &[(Address, U256)],
    ) -> Result<(Self, SealedBlock), SequencerError> {
        config.validate()?;
        let mut state = ChainState::genesis(config.chain_id, alloc);
        let env = BlockEnv {
            chain_id: config.chain_id,
            number: 0,
            timestamp_ms: 0,
            sequencer: config.fee_recipient,
            base_fee: config.min_base_fee,
            gas_limit: config.block_gas_limit,
        };
        let header = seal_header(&mut state, &env, B256::ZERO, &[], &[], &[], 0);
        let block = Block {
            deposits: vec![],
            header: header.clone(),
            imports: vec![],
            transactions: vec![],
        };
        let sealed = SealedBlock {
            hash: header.hash(),
            block,
            receipts: vec![],
            changes: state.take_changes(),
        };
        let checkpoints = BTreeMap::from([(
            0,
            Checkpoint {
                state: state.clone(),
                head: header.clone(),
                blocks: vec![],
            },
        )]);
        let seq = Self {
            mempool: Mempool::new(config.mempool),
            next_block_at_ms: config.block_time_ms,
            catch_up_blocks: 0,
            config,
            state,
            head: header,
            pending_imports: vec![],
            pending_deposits: BTreeMap::new(),
            open_batch: vec![],
            last_batch: 0,
            checkpoints,
        };
        Ok((seq, sealed))
    }

    /// Resumes from persisted state: the state after `head`, the blocks after the last sealed
    /// batch, and that batch's number. The pool starts empty.
    ///
    /// Revert limitation: a restored sequencer keeps no snapshot of the batches before the
    /// restore point. If `open_batch` is empty the restore point is the end of `last_batch` and
    /// [`Sequencer::revert_to`] can go back to it; otherwise the first revertible batch is the
    /// next one sealed. Reverting further back returns [`SequencerError::RevertTooOld`]; the
    /// shell must then roll storage back itself and restore again.
    pub fn restore(
        config: SequencerConfig,
        mut state: ChainState,
        head: BlockHeader,
        open_batch: Vec<Block>,
        last_batch: BatchNumber,
    ) -> Result<Self, SequencerError> {
        config.validate()?;
        if state.state_root() != head.stateRoot {
            return Err(SequencerError::Restore {
                reason: format!(
                    "state root {} does not match head block {} root {}",
                    state.state_root(),
                    head.number,
                    head.stateRoot
                ),
            });
        }
        if let Some(last) = open_batch.last() {
            if last.header != head {
                return Err(SequencerError::Restore {
                    reason: "open batch does not end at the head block".into(),
                });
            }
        }
        let mut checkpoints = BTreeMap::new();
        if open_batch.is_empty() {
            // take the changes so the snapshot, like every other, has nothing unpersisted
            let mut base = state.clone();
            base.take_changes();
            checkpoints.insert(
                last_batch,
                Checkpoint {
                    state: base,
                    head: head.clone(),
                    blocks: vec![],
                },
            );
        }
        Ok(Self {
            mempool: Mempool::new(config.mempool),
            next_block_at_ms: head.timestampMs.saturating_add(config.block_time_ms),
            catch_up_blocks: 0,
            config,
            state,
            head,
            pending_imports: vec![],
            pending_deposits: BTreeMap::new(),
            open_batch,
            last_batch,
            checkpoints,
        })
    }

    /// The sequencer a node resumes with after a crash when it persisted its blocks and the
    /// state at the end of every batch the SL has not executed (or rebuilds them by
    /// re-executing its stored blocks from the last final one): as [`Sequencer::restore`] —
    /// empty pool, no pending imports (the relayer sends them again), next block one block time
    /// after the head — but it keeps its revert snapshots, so it can still roll back to any
    /// batch that is not final, and the SL deposits not final yet (re-read from the SL).
    pub fn restarted(&self) -> Self {
        let mut s = self.clone();
        s.mempool = Mempool::new(s.config.mempool);
        s.pending_imports.clear();
        s.catch_up_blocks = 0;
        s.next_block_at_ms = s.head.timestampMs.saturating_add(s.config.block_time_ms);
        s
    }

    /// The configuration.
    pub fn config(&self) -> &SequencerConfig {
        &self.config
    }
    /// The state after the head block.
    pub fn state(&self) -> &ChainState {
        &self.state
    }
    /// Mutable access to the state (proof generation updates the tree cache).
    pub fn state_mut(&mut self) -> &mut ChainState {
        &mut self.state
    }
    /// The head block's header.
    pub fn head(&self) -> &BlockHeader {
        &self.head
    }
    /// The pool.
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }
    /// Removes a pooled transaction its sender withdraws (a relayer replacing an execution it
    /// knows will fail); `None` if it is not pooled.
    pub fn evict(&mut self, hash: &B256) -> Option<RecoveredTx> {
        self.mempool.remove(hash)
    }
    /// When the next block is due.
    pub fn next_block_at_ms(&self) -> u64 {
        self.next_block_at_ms
    }
    /// The number of the last sealed batch (0 before the first).
    pub fn last_batch(&self) -> BatchNumber {
        self.last_batch
    }
    /// Imports queued for the next block, in order.
    pub fn pending_imports(&self) -> &[ImportedRoot] {
        &self.pending_imports
    }
    /// Blocks produced after the last sealed batch.
    pub fn open_batch(&self) -> &[Block] {
        &self.open_batch
    }
    /// The oldest batch [`Sequencer::revert_to`] can go back to (`None` right after a restore
    /// in the middle of a batch, see [`Sequencer::restore`]).
    pub fn oldest_revertible_batch(&self) -> Option<BatchNumber> {
        self.checkpoints.keys().next().copied()
    }
    /// The blocks of a sealed batch that is not final yet (`None` once finalized, before the
    /// restore point, or not sealed).
    pub fn unfinalized_batch_blocks(&self, batch: BatchNumber) -> Option<&[Block]> {
        match self.checkpoints.first_key_value() {
            Some((oldest, _)) if batch > *oldest => {
                self.checkpoints.get(&batch).map(|c| c.blocks.as_slice())
            }
            _ => None,
        }
    }

    /// Records that the settlement layer executed every batch up to `batch`: they can never be
    /// reverted, so the snapshots and blocks of batches before it are dropped. The end of
    /// `batch` itself stays as the revert floor. A `batch` beyond the last sealed batch is
    /// treated as the last sealed batch; an already finalized one changes nothing.
    pub fn finalize_through(&mut self, batch: BatchNumber) {
        let batch = batch.min(self.last_batch);
        if !self.checkpoints.contains_key(&batch) {
            return; // older than the floor, or no snapshot kept (restored mid-batch)
        }
        self.checkpoints = self.checkpoints.split_off(&batch);
        if let Some(floor) = self.checkpoints.get_mut(&batch) {
            floor.blocks = vec![]; // final: its blocks are no longer needed
                                   // deposits included up to the floor can never be needed again
            let included = floor.state.totals().deposit_count;
            self.pending_deposits = self.pending_deposits.split_off(&included);
        }
    }

    /// After a source chain reverted: if a block of the open batch imported a root `is_void`
    /// accepts, or one waits in the import queue, rolls the open batch back ([`revert_to`] the
    /// last sealed batch): its transactions return to the pool and the void imports are dropped.
    /// The settlement layer's cascade only reaches committed batches; the open batch is the
    /// sequencer's own to fix. (Sealed batches holding a void import fail their import check on
    /// the SL and are reverted from there.) Returns the roll-back, if there was one.
    ///
    /// [`revert_to`]: Sequencer::revert_to
    pub fn drop_void_imports(
        &mut self,
        is_void: impl Fn(&ImportedRoot) -> bool,
    ) -> Result<Option<RevertOutcome>, SequencerError> {
        let open = self
            .open_batch
            .iter()
            .flat_map(|b| b.imports.iter())
            .chain(self.pending_imports.iter())
            .any(&is_void);
        if !open {
            return Ok(None);
        }
        self.revert_to(self.last_batch, is_void).map(Some)
    }

    /// Rolls the chain back to the end of `last_valid_batch` after the settlement layer
    /// reverted the batches after it, and prepares re-sequencing: state and head become the
    /// batch's end snapshot, every later block (sealed batches and the open batch) is discarded,
    /// their user transactions go back to the pool in original block order (pool refusals are
    /// counted, not errors; transactions that no longer apply are dropped at block building),
    /// and their imports are queued again, in order and before the pending ones, except those
    /// `is_invalid_import` rejects (also filtered from the pending queue). The discarded blocks
    /// are re-produced back to back (1 ms apart) from the next scheduled block on, so the chain's
    /// height keeps pace with its block schedule as on rollups whose blocks fill fixed time
    /// slots: chains under one aggregation tree stay within a checkpoint of one another.
    ///
    /// Errors, with nothing changed: [`SequencerError::RevertBeyondLastBatch`] if
    /// `last_valid_batch` is after the last sealed batch, [`SequencerError::RevertTooOld`] if
    /// its snapshot is no longer kept (finalized past it, or before the restore point).
    pub fn revert_to(
        &mut self,
        last_valid_batch: BatchNumber,
        is_invalid_import: impl Fn(&ImportedRoot) -> bool,
    ) -> Result<RevertOutcome, SequencerError> {
        if last_valid_batch > self.last_batch {
            return Err(SequencerError::RevertBeyondLastBatch {
                requested: last_valid_batch,
                last_batch: self.last_batch,
            });
        }
        let Some(base) = self.checkpoints.get(&last_valid_batch) else {
            return Err(SequencerError::RevertTooOld {
                requested: last_valid_batch,
                oldest: self.oldest_revertible_batch(),
            });
        };
        let state = base.state.clone();
        let head = base.head.clone();
        // from here on nothing fails
        let reverted = self.checkpoints.split_off(&(last_valid_batch + 1));
        let reverted_blocks_list: Vec<Block> = reverted
            .into_values()
            .flat_map(|c| c.blocks)
            .chain(std::mem::take(&mut self.open_batch))
            .collect();
        let previous_head = self.head.number;
        let reverted_batches = (last_valid_batch + 1)..(self.last_batch + 1);
        self.state = state;
        self.head = head.clone();
        self.last_batch = last_valid_batch;

        let mut txs_repooled = 0;
        let mut txs_dropped = Vec::new();
        let mut imports_requeued = Vec::new();
        let mut imports_dropped = Vec::new();
        for block in &reverted_blocks_list {
            for import in &block.imports {
                if is_invalid_import(import) {
                    imports_dropped.push(import.clone());
                } else {
                    imports_requeued.push(import.clone());
                }
            }
            for raw in &block.transactions {
                let tx = match RecoveredTx::decode(raw) {
                    Ok(tx) => tx,
                    // cannot happen: the block's own transactions decoded when it was built
                    Err(e) => {
                        let hash = keccak256(raw);
                        txs_dropped.push((hash, RepoolRefusal::Undecodable(e.to_string())));
                        continue;
                    }
                };
                let hash = tx.hash;
                match self.mempool.reinsert(tx) {
                    Ok(()) => txs_repooled += 1,
                    Err(e) => txs_dropped.push((hash, RepoolRefusal::Pool(e))),
                }
            }
        }
        let mut queue = imports_requeued.clone();
        for import in std::mem::take(&mut self.pending_imports) {
            if is_invalid_import(&import) {
                imports_dropped.push(import);
            } else if !queue.contains(&import) {
                queue.push(import);
            }
        }
        self.pending_imports = queue;
        self.catch_up_blocks = self
            .catch_up_blocks
            .saturating_add(previous_head.saturating_sub(head.number));
        Ok(RevertOutcome {
            last_batch: last_valid_batch,
            reverted_batches,
            reverted_blocks: (head.number + 1)..(previous_head + 1),
            txs_repooled,
            txs_not_repooled: txs_dropped.len(),
            txs_dropped,
            imports_requeued,
            imports_dropped,
            head,
        })
    }

    /// Base fee of the next block (EIP-1559 from the head, floored at `min_base_fee`).
    pub fn next_base_fee(&self) -> u128 {
        let parent_fee = u64::try_from(self.head.baseFee).unwrap_or(u64::MAX);
        let next = calc_next_block_base_fee(
            self.head.gasUsed,
            self.head.gasLimit,
            parent_fee,
            BaseFeeParams::ethereum(),
        ) as u128;
        next.max(self.config.min_base_fee)
    }

    /// Handles one input.
    pub fn handle(&mut self, input: SequencerInput) -> Vec<SequencerOutput> {
        match input {
            SequencerInput::SubmitTx { raw } => vec![self.submit(&raw)],
            SequencerInput::Import(import) => vec![self.queue_import(import)],
            SequencerInput::Deposit(deposit) => {
                if deposit.chainId == self.config.chain_id
                    && deposit.index >= self.state.totals().deposit_count
                {
                    self.pending_deposits.insert(deposit.index, deposit);
                }
                vec![]
            }
            SequencerInput::Tick { now_ms } => {
                if now_ms < self.next_block_at_ms {
                    return vec![];
                }
                self.produce_block(now_ms)
            }
        }
    }

    fn submit(&mut self, raw: &[u8]) -> SequencerOutput {
        let tx = match RecoveredTx::decode(raw) {
            Ok(tx) => tx,
            Err(e) => {
                return SequencerOutput::TxRejected {
                    hash: None,
                    error: e.into(),
                }
            }
        };
        self.submit_recovered(tx)
    }

    /// Pool admission of a transaction already decoded and recovered, as
    /// `SequencerInput::SubmitTx` does after decoding: a shell can recover signatures (the
    /// costly part) before it takes whatever lock guards the sequencer. Answers `TxAccepted` or
    /// `TxRejected`.
    pub fn submit_recovered(&mut self, tx: RecoveredTx) -> SequencerOutput {
        let hash = tx.hash;
        match self.admit(tx) {
            Ok(replaced) => SequencerOutput::TxAccepted { hash, replaced },
            Err(error) => SequencerOutput::TxRejected {
                hash: Some(hash),
                error,
            },
        }
    }

    /// Pool admission: the checks that do not depend on the transaction's position in a block.
    fn admit(&mut self, tx: RecoveredTx) -> Result<Option<B256>, SequencerError> {
        let chain = self.config.chain_id;
        match tx.chain_id() {
            Some(c) if c == chain => {}
            Some(c) => {
                return Err(ExecutionError::WrongChainId {
                    expected: chain,
                    got: c,
                }
                .into())
            }
            None => return Err(ExecutionError::MissingChainId.into()),
        }
        let account = self.state.account(&tx.sender);
        if tx.nonce() < account.nonce {
            return Err(ExecutionError::NonceTooLow {
                sender: tx.sender,
                expected: account.nonce,
                got: tx.nonce(),
            }
            .into());
        }
        let intrinsic = intrinsic_gas(tx.input());
        if tx.gas_limit() < intrinsic {
            return Err(ExecutionError::IntrinsicGasTooLow {
                gas_limit: tx.gas_limit(),
                intrinsic,
            }
            .into());
        }
        if tx.gas_limit() > self.config.block_gas_limit {
            return Err(ExecutionError::GasLimitAboveBlock {
                gas_limit: tx.gas_limit(),
                available: self.config.block_gas_limit,
            }
            .into());
        }
        if tx.max_priority_fee_per_gas() > tx.max_fee_per_gas() {
            return Err(ExecutionError::TipAboveFeeCap {
                tip: tx.max_priority_fee_per_gas(),
                max_fee: tx.max_fee_per_gas(),
            }
            .into());
        }
        if tx.max_fee_per_gas() < self.config.min_base_fee {
            return Err(ExecutionError::FeeCapBelowBaseFee {
                max_fee: tx.max_fee_per_gas(),
                base_fee: self.config.min_base_fee,
            }
            .into());
        }
        let max_cost = U256::from(tx.gas_limit())
            .saturating_mul(U256::from(tx.max_fee_per_gas()))
            .saturating_add(tx.value());
        if account.balance < max_cost {
            return Err(ExecutionError::InsufficientBalance {
                sender: tx.sender,
                needed: max_cost,
                available: account.balance,
            }
            .into());
        }
        if tx.to().is_none() {
            return Err(ExecutionError::ContractCreationUnsupported.into());
        }
        Ok(self.mempool.insert(tx, account.nonce)?)
    }

    fn queue_import(&mut self, import: ImportedRoot) -> SequencerOutput {
        if self.pending_imports.len() >= self.config.max_pending_imports {
            return SequencerOutput::ImportRejected {
                import,
                error: SequencerError::ImportQueueFull {
                    limit: self.config.max_pending_imports,
                },
            };
        }
        if let Err(e) = braid_execution::ImportKey::of(&import) {
            return SequencerOutput::ImportRejected {
                import,
                error: e.into(),
            };
        }
        if import.sourceChain == self.config.chain_id {
            let error = ExecutionError::ImportFromSelf {
                chain: self.config.chain_id,
            }
            .into();
            return SequencerOutput::ImportRejected { import, error };
        }
        self.pending_imports.push(import.clone());
        SequencerOutput::ImportQueued(import)
    }

    /// Whether block `number` may include `import` now (`Ok(false)`: not yet). Only
    /// `aggregated` imports are constrained (see [`SequencerConfig::checkpoint_blocks`]).
    fn aggregated_window(
        &self,
        import: &ImportedRoot,
        number: BlockNumber,
    ) -> Result<bool, SequencerError> {
        if import.kind != braid_primitives::ImportKind::Aggregated as u8 {
            return Ok(true);
        }
        let refuse = |reason| SequencerError::AggregatedImportRefused {
            checkpoint: import.sourceHeight,
            block: number,
            reason,
        };
        let k = self
            .config
            .checkpoint_blocks
            .ok_or_else(|| refuse("this chain is not in the aggregation tree"))?;
        let checkpoint = number.div_ceil(k);
        if checkpoint <= import.sourceHeight {
            return Ok(false);
        }
        if checkpoint > import.sourceHeight.saturating_add(2) {
            return Err(refuse(
                "only the last two checkpoints' tree hashes settle in the tree",
            ));
        }
        Ok(true)
    }

    fn produce_block(&mut self, now_ms: u64) -> Vec<SequencerOutput> {
        let mut out = Vec::new();
        let env = BlockEnv {
            chain_id: self.config.chain_id,
            number: self.head.number + 1,
            timestamp_ms: now_ms.max(self.head.timestampMs + 1),
            sequencer: self.config.fee_recipient,
            base_fee: self.next_base_fee(),
            gas_limit: self.config.block_gas_limit,
        };
        let mut imports = Vec::new();
        let mut waiting = Vec::new();
        for import in std::mem::take(&mut self.pending_imports) {
            match self.aggregated_window(&import, env.number) {
                Ok(true) => {}
                Ok(false) => {
                    waiting.push(import);
                    continue;
                }
                Err(error) => {
                    out.push(SequencerOutput::ImportRejected { import, error });
                    continue;
                }
            }
            match apply_import(&mut self.state, &import) {
                Ok(()) => imports.push(import),
                Err(e) => out.push(SequencerOutput::ImportRejected {
                    import,
                    error: e.into(),
                }),
            }
        }
        self.pending_imports = waiting;
        // forced deposits: every queued one, in index order, without gaps
        let mut deposits = Vec::new();
        let next = self.state.totals().deposit_count;
        for (index, deposit) in self.pending_deposits.range(next..) {
            if *index != next + deposits.len() as u64
                || apply_deposit(&mut self.state, deposit).is_err()
            {
                break;
            }
            deposits.push(deposit.clone());
        }
        let mut gas_used = 0u64;
        let mut receipts = Vec::new();
        let mut included: Vec<RecoveredTx> = Vec::new();
        let state = &self.state;
        let ready = self.mempool.ready(|a| state.account(a).nonce, env.base_fee);
        for tx in ready {
            if env.gas_limit.saturating_sub(gas_used) < braid_execution::TX_BASE_GAS {
                break;
            }
            if tx.gas_limit() > env.gas_limit.saturating_sub(gas_used) {
                continue; // may fit in the next block
            }
            match apply_transaction(&mut self.state, &env, &tx, gas_used) {
                Ok(receipt) => {
                    gas_used = receipt.cumulative_gas_used;
                    receipts.push(receipt);
                    included.push(tx);
                }
                Err(ExecutionError::NonceGap { .. }) => {} // an earlier tx of the sender failed
                Err(error) => {
                    self.mempool.remove(&tx.hash);
                    out.push(SequencerOutput::TxDropped {
                        hash: tx.hash,
                        error,
                    });
                }
            }
        }
        for tx in &included {
            self.mempool
                .prune_sender(&tx.sender, self.state.account(&tx.sender).nonce);
        }
        let hashes: Vec<B256> = included.iter().map(|t| t.hash).collect();
        let header = seal_header(
            &mut self.state,
            &env,
            self.head.hash(),
            &imports,
            &deposits,
            &hashes,
            gas_used,
        );
        let block = Block {
            header: header.clone(),
            imports,
            deposits,
            transactions: included.into_iter().map(|t| t.raw).collect(),
        };
        self.head = header.clone();
        self.next_block_at_ms = if self.catch_up_blocks > 0 {
            self.catch_up_blocks -= 1;
            env.timestamp_ms.saturating_add(1)
        } else {
            env.timestamp_ms.saturating_add(self.config.block_time_ms)
        };
        self.open_batch.push(block.clone());
        out.push(SequencerOutput::BlockSealed(Box::new(SealedBlock {
            hash: header.hash(),
            block,
            receipts,
            changes: self.state.take_changes(),
        })));
        if self.open_batch.len() as u64 >= self.config.batch_blocks {
            out.push(SequencerOutput::BatchSealed(Box::new(self.seal_batch())));
        }
        out
    }

    fn seal_batch(&mut self) -> SealedBatch {
        let blocks = std::mem::take(&mut self.open_batch);
        self.last_batch += 1;
        let first = blocks.first().map_or(self.head.number, |b| b.header.number);
        let all_imports: Vec<ImportedRoot> = blocks
            .iter()
            .flat_map(|b| b.imports.iter().cloned())
            .collect();
        let header = BatchHeader {
            chainId: self.config.chain_id,
            number: self.last_batch,
            firstBlock: first,
            lastBlock: self.head.number,
            lastBlockHash: self.head.hash(),
            stateRoot: self.head.stateRoot,
            chainBatchRoot: self.head.localRoot,
            messageCount: self.head.messageCount,
            importsHash: imports_hash(&all_imports),
            daCommitment: da_commitment(&blocks),
        };
        self.checkpoints.insert(
            self.last_batch,
            Checkpoint {
                state: self.state.clone(),
                head: self.head.clone(),
                blocks: blocks.clone(),
            },
        );
        SealedBatch { header, blocks }
    }
}

#[cfg(test)]
mod tests;
