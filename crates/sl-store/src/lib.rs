//! Crash-safe persistence of the settlement layer on redb, by event sourcing: a log of SL blocks
//! replayed into a fresh deterministic [`SettlementLayer`] on restart.
//!
//! # The log
//! The SL core is a deterministic sans-IO state machine. Its state is a pure function of its
//! [`SlConfig`], of its proof backend (a fresh one, e.g. `braid_proof::ReExecution::new()`) and
//! of the sequence of SL blocks it produced, each block being *the transactions it included, in
//! submission order, and the time of the tick that produced it* ([`LoggedBlock`]). Only that
//! sequence is stored ([`SlStore`]):
//!
//! - table `sl_blocks`: SL height (`u64`, from 1) → `postcard(LoggedBlock)`;
//! - table `sl_meta`: the head height, and a fingerprint (keccak of the postcard bytes) of the
//!   [`SlConfig`] the log was written with, so reopening it with another configuration is a typed
//!   error ([`SlStoreError::ConfigMismatch`]) instead of a silently different state.
//!
//! [`SlStore::open`] creates the file if needed; [`SlStore::open_existing`] (and
//! [`PersistentSl::open_existing_with_events`]) refuse a missing or empty file
//! ([`SlStoreError::Missing`], [`SlStoreError::Empty`]) instead of starting a fresh settlement
//! layer over lost data.
//!
//! Recovery ([`PersistentSl::open`]) replays the log into a fresh core: for each logged block it
//! submits the block's transactions, then ticks at the logged time, and checks that the tick
//! produced an SL block at the logged height ([`SlStoreError::ReplayDiverged`] otherwise).
//! Ticks that produced no block need not be logged: a tick only moves the core's clock, and the
//! clock is only read when a block is produced, at the time of the producing tick.
//!
//! # Why it is crash-safe
//! - Each SL block is appended in **one** redb write transaction (block and head together) with
//!   immediate durability: after a crash at any instant the log ends at a whole block, and the
//!   heights are consecutive (checked on append and on read).
//! - The block is durable **before** its events are returned ([`PersistentSl::tick`]): nothing
//!   downstream (relayers, chains, a UI) can act on an SL block that a crash would undo. If the
//!   append fails the error is returned instead of the events and the node refuses further
//!   ticks ([`SlStoreError::Poisoned`]): the caller must treat it as crashed and reopen.
//! - Transactions accepted at submission but not yet in a block are journaled: table
//!   `sl_pending` (submission sequence → `postcard(SlTx)`), each one written durably before
//!   [`PersistentSl::submit`] returns, so an accepted transaction (one `sl_submit` answered
//!   "queued") survives a crash. The append of a block empties the journal in the same write
//!   transaction, so a transaction is either pending or in a logged block, never both or
//!   neither. Reopening replays the log, then submits the journal again in order.
//!
//! # Cost
//! Reopening replays the whole history: every batch is re-verified by the proof backend (with
//! re-execution, every block of every chain is executed again), so recovery time and log size
//! are O(history). Periodic snapshots of the core (so that only the log suffix is replayed) and
//! pruning of the log behind them are future work.

use std::path::{Path, PathBuf};

use alloy_primitives::{keccak256, B256};
use braid_primitives::ChainId;
use braid_proof::ProofSystem;
use braid_settlement::{BatchStatus, SettlementLayer, SlConfig, SlEvent, SlInput, SlTx};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// SL height → `postcard(LoggedBlock)`.
const SL_BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("sl_blocks");
/// `head` → height (8 bytes, little endian); `config` → 32-byte config fingerprint.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("sl_meta");
/// Submission sequence → `postcard(SlTx)`: transactions accepted since the last logged block.
const PENDING: TableDefinition<u64, &[u8]> = TableDefinition::new("sl_pending");
const META_HEAD: &str = "head";
const META_CONFIG: &str = "config";

/// Errors of the SL store and of [`PersistentSl`].
#[derive(Debug, thiserror::Error)]
pub enum SlStoreError {
    /// The database engine failed (I/O, corruption it detected, lock held by another process).
    #[error("database error: {0}")]
    Db(String),
    /// A stored record does not decode, or the log is inconsistent.
    #[error("corrupt {what}: {reason}")]
    Corrupt {
        /// The record kind.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A value could not be encoded.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// The value kind.
        what: &'static str,
        /// The encoder's complaint.
        reason: String,
    },
    /// The log file could not be opened (I/O, permissions, a file redb does not accept, a
    /// lock held by another process).
    #[error("cannot open SL log {}: {reason}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The engine's complaint.
        reason: String,
    },
    /// A log that must exist is missing.
    #[error("SL log {} is missing", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A log that must exist is empty (a zero-length file, or no log in it).
    #[error("SL log {} is empty ({detail}); refusing to start a fresh settlement layer over it", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// The log was written with another SL configuration.
    #[error("log written with SL config {stored}, opened with {requested}")]
    ConfigMismatch {
        /// Fingerprint of the configuration the log was written with.
        stored: B256,
        /// Fingerprint of the configuration it was opened with.
        requested: B256,
    },
    /// An appended block whose height does not follow the head.
    #[error("SL block {got} does not follow the logged head {head}")]
    NotNextHeight {
        /// The logged head (0: empty log).
        head: u64,
        /// The offered height.
        got: u64,
    },
    /// The SL configuration is unusable.
    #[error("invalid SL configuration: {0}")]
    InvalidConfig(braid_settlement::SettlementError),
    /// Replaying the log did not reproduce the logged blocks.
    #[error("replay diverged at SL height {height}: {reason}")]
    ReplayDiverged {
        /// The logged height being replayed.
        height: u64,
        /// What differed.
        reason: String,
    },
    /// An earlier append failed: the core is ahead of the log. Reopen the node.
    #[error("an SL block could not be persisted; the node must be reopened")]
    Poisoned,
}

fn db_err(e: impl Into<redb::Error>) -> SlStoreError {
    SlStoreError::Db(e.into().to_string())
}

fn open_err(path: &Path, e: impl std::fmt::Display) -> SlStoreError {
    SlStoreError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// One SL block as logged: what the core needs to produce it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedBlock {
    /// The time of the tick that produced the block.
    pub now_ms: u64,
    /// The transactions pending at that tick (accepted at submission), in submission order,
    /// including those the block then rejected (their rejection is part of the state
    /// transition too).
    pub txs: Vec<SlTx>,
}

/// Fingerprint of an SL configuration: `keccak256(postcard(config))`.
pub fn config_fingerprint(config: &SlConfig) -> Result<B256, SlStoreError> {
    let bytes = postcard::to_allocvec(config).map_err(|e| SlStoreError::Encode {
        what: "SL config",
        reason: e.to_string(),
    })?;
    Ok(keccak256(bytes))
}

fn decode_head(bytes: &[u8]) -> Result<u64, SlStoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| SlStoreError::Corrupt {
        what: "head height",
        reason: format!("{} bytes, expected 8", bytes.len()),
    })?;
    Ok(u64::from_le_bytes(arr))
}

fn decode_block(height: u64, bytes: &[u8]) -> Result<LoggedBlock, SlStoreError> {
    postcard::from_bytes(bytes).map_err(|e| SlStoreError::Corrupt {
        what: "logged SL block",
        reason: format!("height {height}: {e}"),
    })
}

/// The redb log of SL blocks (see the crate docs).
#[derive(Debug)]
pub struct SlStore {
    db: Database,
    config_fingerprint: B256,
}

impl SlStore {
    /// Opens the log at `path` for an SL running `config`, creating the file (an empty log) if
    /// it does not exist or is empty.
    ///
    /// Errors: [`SlStoreError::ConfigMismatch`] if the log was written with another
    /// configuration; [`SlStoreError::Corrupt`] if the head does not match the stored blocks;
    /// [`SlStoreError::Open`] if the file cannot be opened (e.g. another process holds it).
    pub fn open(path: impl AsRef<Path>, config: &SlConfig) -> Result<Self, SlStoreError> {
        let path = path.as_ref();
        let db = Database::create(path).map_err(|e| open_err(path, e))?;
        Self::init(db, path, config, false)
    }

    /// Opens the existing log at `path`; never creates one. Errors as [`SlStore::open`], and
    /// [`SlStoreError::Missing`] if there is no file, [`SlStoreError::Empty`] if it is zero
    /// bytes long or holds no log (no configuration recorded).
    pub fn open_existing(path: impl AsRef<Path>, config: &SlConfig) -> Result<Self, SlStoreError> {
        let path = path.as_ref();
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SlStoreError::Missing {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(open_err(path, e)),
            Ok(m) if m.len() == 0 => {
                return Err(SlStoreError::Empty {
                    path: path.to_path_buf(),
                    detail: "0 bytes".into(),
                })
            }
            Ok(_) => {}
        }
        // `Database::open` never initialises a file, should it be emptied meanwhile
        let db = Database::open(path).map_err(|e| open_err(path, e))?;
        Self::init(db, path, config, true)
    }

    fn init(
        db: Database,
        path: &Path,
        config: &SlConfig,
        must_exist: bool,
    ) -> Result<Self, SlStoreError> {
        let fingerprint = config_fingerprint(config)?;
        let tx = db.begin_write().map_err(|e| open_err(path, e))?;
        {
            let mut meta = tx.open_table(META).map_err(db_err)?;
            let stored = meta
                .get(META_CONFIG)
                .map_err(db_err)?
                .map(|g| g.value().to_vec());
            match stored {
                Some(stored) => {
                    let stored =
                        B256::try_from(stored.as_slice()).map_err(|_| SlStoreError::Corrupt {
                            what: "config fingerprint",
                            reason: format!("{} bytes, expected 32", stored.len()),
                        })?;
                    if stored != fingerprint {
                        return Err(SlStoreError::ConfigMismatch {
                            stored,
                            requested: fingerprint,
                        });
                    }
                }
                None if must_exist => {
                    return Err(SlStoreError::Empty {
                        path: path.to_path_buf(),
                        detail: "no SL configuration recorded".into(),
                    })
                }
                None => {
                    meta.insert(META_CONFIG, fingerprint.as_slice())
                        .map_err(db_err)?;
                }
            }
            let head = match meta.get(META_HEAD).map_err(db_err)? {
                Some(g) => decode_head(g.value())?,
                None => 0,
            };
            if head == 0 {
                meta.insert(META_HEAD, 0u64.to_le_bytes().as_slice())
                    .map_err(db_err)?;
            }
            let blocks = tx.open_table(SL_BLOCKS).map_err(db_err)?;
            let last = blocks.last().map_err(db_err)?.map_or(0, |(k, _)| k.value());
            if last != head {
                return Err(SlStoreError::Corrupt {
                    what: "SL log",
                    reason: format!("head is {head} but the last logged block is {last}"),
                });
            }
        }
        tx.commit().map_err(|e| open_err(path, e))?;
        Ok(Self {
            db,
            config_fingerprint: fingerprint,
        })
    }

    /// Fingerprint of the configuration this log belongs to.
    pub fn config_fingerprint(&self) -> B256 {
        self.config_fingerprint
    }

    /// The logged head height (0: no block logged).
    pub fn head(&self) -> Result<u64, SlStoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let meta = tx.open_table(META).map_err(db_err)?;
        match meta.get(META_HEAD).map_err(db_err)? {
            Some(g) => decode_head(g.value()),
            None => Ok(0),
        }
    }

    /// Durably appends the block at `height`, which must be the head + 1, in one write
    /// transaction (block and new head together). Nothing is written on error.
    pub fn append(&self, height: u64, block: &LoggedBlock) -> Result<(), SlStoreError> {
        let bytes = postcard::to_allocvec(block).map_err(|e| SlStoreError::Encode {
            what: "logged SL block",
            reason: e.to_string(),
        })?;
        // Dropping `tx` without committing (on any error below) aborts it.
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut meta = tx.open_table(META).map_err(db_err)?;
            let head = match meta.get(META_HEAD).map_err(db_err)? {
                Some(g) => decode_head(g.value())?,
                None => 0,
            };
            if height != head.saturating_add(1) {
                return Err(SlStoreError::NotNextHeight { head, got: height });
            }
            tx.open_table(SL_BLOCKS)
                .map_err(db_err)?
                .insert(height, bytes.as_slice())
                .map_err(db_err)?;
            meta.insert(META_HEAD, height.to_le_bytes().as_slice())
                .map_err(db_err)?;
            // the block holds every pending transaction (see `LoggedBlock::txs`)
            tx.open_table(PENDING)
                .map_err(db_err)?
                .retain(|_, _| false)
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(())
    }

    /// Durably journals `tx`, accepted at submission as the `seq`-th transaction since the last
    /// logged block (see the crate docs). Nothing is written on error.
    pub fn add_pending(&self, seq: u64, tx: &SlTx) -> Result<(), SlStoreError> {
        let bytes = postcard::to_allocvec(tx).map_err(|e| SlStoreError::Encode {
            what: "pending SL transaction",
            reason: e.to_string(),
        })?;
        let wtx = self.db.begin_write().map_err(db_err)?;
        wtx.open_table(PENDING)
            .map_err(db_err)?
            .insert(seq, bytes.as_slice())
            .map_err(db_err)?;
        wtx.commit().map_err(db_err)?;
        Ok(())
    }

    /// The journaled transactions accepted since the last logged block, in submission order.
    pub fn pending(&self) -> Result<Vec<SlTx>, SlStoreError> {
        let rtx = self.db.begin_read().map_err(db_err)?;
        let table = match rtx.open_table(PENDING) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db_err(e)),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (k, v) = entry.map_err(db_err)?;
            out.push(
                postcard::from_bytes(v.value()).map_err(|e| SlStoreError::Corrupt {
                    what: "pending SL transaction",
                    reason: format!("entry {}: {e}", k.value()),
                })?,
            );
        }
        Ok(out)
    }

    /// The logged block at `height`, if any.
    pub fn block(&self, height: u64) -> Result<Option<LoggedBlock>, SlStoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(SL_BLOCKS).map_err(db_err)?;
        let bytes = table.get(height).map_err(db_err)?;
        bytes.map(|g| decode_block(height, g.value())).transpose()
    }

    /// Every logged block, in height order (the first is height 1). Checks that the heights are
    /// consecutive and end at the head.
    pub fn blocks(&self) -> Result<Vec<LoggedBlock>, SlStoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let meta = tx.open_table(META).map_err(db_err)?;
        let head = match meta.get(META_HEAD).map_err(db_err)? {
            Some(g) => decode_head(g.value())?,
            None => 0,
        };
        let table = tx.open_table(SL_BLOCKS).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (k, v) = entry.map_err(db_err)?;
            let height = k.value();
            let expected = out.len() as u64 + 1;
            if height != expected {
                return Err(SlStoreError::Corrupt {
                    what: "SL log",
                    reason: format!("block {height} where {expected} was expected"),
                });
            }
            out.push(decode_block(height, v.value())?);
        }
        if out.len() as u64 != head {
            return Err(SlStoreError::Corrupt {
                what: "SL log",
                reason: format!("head is {head} but {} blocks are logged", out.len()),
            });
        }
        Ok(out)
    }
}

/// A keccak digest of a deterministic summary of an SL core's state, to compare a recovered
/// core with one that never stopped.
///
/// Covers: the height; the MessageRoot tree's root and size; for every registered chain (in id
/// order) its id, operator, the operator's SL nonce, `last_committed`, `last_executed`, escrow,
/// `last_progress_ms`, `operator_active_ms`, and for every batch record its number, status,
/// ChainBatchRoot, commit time, leaf index, whether execution was requested and whether a check
/// failed; the security council's nonce; the in-flight value and the collected fees.
pub fn state_fingerprint(sl: &SettlementLayer) -> B256 {
    let mut buf = b"braid-sl-state-v1".to_vec();
    let mut put = |bytes: &[u8]| buf.extend_from_slice(bytes);
    put(&sl.height().to_be_bytes());
    let tree = sl.message_tree();
    put(tree.root().as_slice());
    put(&tree.len().to_be_bytes());
    let ids: Vec<ChainId> = sl.chain_ids().collect();
    put(&(ids.len() as u64).to_be_bytes());
    for id in ids {
        let Some(chain) = sl.chain(id) else {
            continue;
        };
        put(&id.to_be_bytes());
        put(chain.operator.as_slice());
        put(&sl.nonce(&chain.operator).to_be_bytes());
        put(&chain.last_committed.to_be_bytes());
        put(&chain.last_executed.to_be_bytes());
        put(&chain.escrow.to_be_bytes::<32>());
        put(&chain.last_progress_ms.to_be_bytes());
        put(&chain.operator_active_ms.to_be_bytes());
        put(&(chain.batches.len() as u64).to_be_bytes());
        for (n, rec) in &chain.batches {
            put(&n.to_be_bytes());
            put(&[match rec.status {
                BatchStatus::Committed => 0,
                BatchStatus::Proven => 1,
                BatchStatus::Executed => 2,
            }]);
            put(rec.header.chainBatchRoot.as_slice());
            put(&rec.committed_at_ms.to_be_bytes());
            put(&rec.leaf_index.unwrap_or(u64::MAX).to_be_bytes());
            put(&[
                u8::from(rec.execute_request.is_some()),
                u8::from(rec.failure.is_some()),
            ]);
        }
    }
    put(&sl.nonce(&sl.config().security_council).to_be_bytes());
    put(&sl.in_flight().to_be_bytes::<32>());
    put(&sl.fees_collected().to_be_bytes::<32>());
    keccak256(buf)
}

/// Replays one logged block into `sl`, checking that it produces an SL block at `height`.
fn replay_block(
    sl: &mut SettlementLayer,
    height: u64,
    block: LoggedBlock,
) -> Result<Vec<SlEvent>, SlStoreError> {
    let diverged = |reason: String| SlStoreError::ReplayDiverged { height, reason };
    for tx in block.txs {
        let hash = tx.hash();
        let events = sl.handle(SlInput::Submit(Box::new(tx)));
        if !events.is_empty() {
            return Err(diverged(format!(
                "logged transaction {hash} refused at submission: {events:?}"
            )));
        }
    }
    let events = sl.handle(SlInput::Tick {
        now_ms: block.now_ms,
    });
    let produced = events.iter().find_map(|e| match e {
        SlEvent::SlBlock { height, .. } => Some(*height),
        _ => None,
    });
    match produced {
        Some(h) if h == height => Ok(events),
        Some(h) => Err(diverged(format!(
            "the tick at {} ms produced SL block {h}",
            block.now_ms
        ))),
        None => Err(diverged(format!(
            "the tick at {} ms produced no SL block",
            block.now_ms
        ))),
    }
}

/// The shell of an SL node: the core, its log, and the transactions waiting for the next block.
///
/// Every SL block is logged before its events are returned (see the crate docs).
pub struct PersistentSl {
    sl: SettlementLayer,
    store: SlStore,
    /// Exactly the core's pending transactions: those it accepted at submission since the last
    /// block.
    buffer: Vec<SlTx>,
    poisoned: bool,
}

impl std::fmt::Debug for PersistentSl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentSl")
            .field("sl", &self.sl)
            .field("buffered", &self.buffer.len())
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl PersistentSl {
    /// Opens (or creates) the log at `path` and rebuilds the core by replaying it into a fresh
    /// [`SettlementLayer`] with `config` and `proofs` (which must be a fresh backend). Returns
    /// the node and the number of SL blocks replayed.
    ///
    /// Errors: those of [`SlStore::open`] and [`SlStore::blocks`],
    /// [`SlStoreError::InvalidConfig`], and [`SlStoreError::ReplayDiverged`] if a logged block
    /// does not reproduce (a changed core, proof backend or a tampered log).
    pub fn open(
        path: impl AsRef<Path>,
        config: SlConfig,
        proofs: Box<dyn ProofSystem + Send>,
    ) -> Result<(Self, u64), SlStoreError> {
        let (node, events) = Self::open_with_events(path, config, proofs)?;
        let replayed = events
            .iter()
            .filter(|e| matches!(e, SlEvent::SlBlock { .. }))
            .count();
        Ok((node, replayed as u64))
    }

    /// As [`PersistentSl::open`], returning every event the replay produced, in order, so the
    /// roles that follow the SL (relayer, operators) can rebuild their view after a restart.
    pub fn open_with_events(
        path: impl AsRef<Path>,
        config: SlConfig,
        proofs: Box<dyn ProofSystem + Send>,
    ) -> Result<(Self, Vec<SlEvent>), SlStoreError> {
        config.validate().map_err(SlStoreError::InvalidConfig)?;
        let store = SlStore::open(path, &config)?;
        Self::replay(store, config, proofs)
    }

    /// As [`PersistentSl::open_with_events`] on a log that must exist
    /// ([`SlStore::open_existing`]): a missing or empty file is an error, never a fresh SL.
    pub fn open_existing_with_events(
        path: impl AsRef<Path>,
        config: SlConfig,
        proofs: Box<dyn ProofSystem + Send>,
    ) -> Result<(Self, Vec<SlEvent>), SlStoreError> {
        config.validate().map_err(SlStoreError::InvalidConfig)?;
        let store = SlStore::open_existing(path, &config)?;
        Self::replay(store, config, proofs)
    }

    fn replay(
        store: SlStore,
        config: SlConfig,
        proofs: Box<dyn ProofSystem + Send>,
    ) -> Result<(Self, Vec<SlEvent>), SlStoreError> {
        let mut sl = SettlementLayer::new(config, proofs).map_err(SlStoreError::InvalidConfig)?;
        let mut events = Vec::new();
        for (i, block) in store.blocks()?.into_iter().enumerate() {
            events.extend(replay_block(&mut sl, i as u64 + 1, block)?);
        }
        // the transactions accepted after the last block, in their order: the core accepted
        // each of them from this very state before the crash
        let mut buffer = Vec::new();
        for tx in store.pending()? {
            let hash = tx.hash();
            let refused = sl.handle(SlInput::Submit(Box::new(tx.clone())));
            if !refused.is_empty() {
                return Err(SlStoreError::ReplayDiverged {
                    height: sl.height(),
                    reason: format!("journaled transaction {hash} refused: {refused:?}"),
                });
            }
            buffer.push(tx);
        }
        Ok((
            Self {
                sl,
                store,
                buffer,
                poisoned: false,
            },
            events,
        ))
    }

    /// Submits a transaction for the next SL block. Returns the core's events: empty if it was
    /// accepted (buffered for the log and durably journaled before this returns), or
    /// [`SlEvent::TxRejected`] if the core refused it at submission (bad signature, queue
    /// full), in which case it is not buffered.
    ///
    /// If the journal write fails the node is poisoned (every later [`PersistentSl::tick`]
    /// returns [`SlStoreError::Poisoned`]): the core holds a transaction a crash would lose.
    pub fn submit(&mut self, tx: SlTx) -> Vec<SlEvent> {
        let events = self.sl.handle(SlInput::Submit(Box::new(tx.clone())));
        if !events
            .iter()
            .any(|e| matches!(e, SlEvent::TxRejected { .. }))
        {
            if self
                .store
                .add_pending(self.buffer.len() as u64, &tx)
                .is_err()
            {
                self.poisoned = true;
            }
            self.buffer.push(tx);
        }
        events
    }

    /// Advances the core's clock. If that produces an SL block, the block (the buffered
    /// transactions and `now_ms`) is durably logged **before** the events are returned.
    ///
    /// If logging fails the error is returned instead of the events, and every later tick
    /// returns [`SlStoreError::Poisoned`]: the core is ahead of its log, so the node must be
    /// dropped and reopened (as after a crash).
    pub fn tick(&mut self, now_ms: u64) -> Result<Vec<SlEvent>, SlStoreError> {
        if self.poisoned {
            return Err(SlStoreError::Poisoned);
        }
        let events = self.sl.handle(SlInput::Tick { now_ms });
        let produced = events.iter().find_map(|e| match e {
            SlEvent::SlBlock { height, .. } => Some(*height),
            _ => None,
        });
        if let Some(height) = produced {
            let block = LoggedBlock {
                now_ms,
                txs: std::mem::take(&mut self.buffer),
            };
            if let Err(e) = self.store.append(height, &block) {
                self.poisoned = true;
                return Err(e);
            }
        }
        Ok(events)
    }

    /// The core, for reads.
    pub fn sl(&self) -> &SettlementLayer {
        &self.sl
    }

    /// The log.
    pub fn store(&self) -> &SlStore {
        &self.store
    }

    /// Transactions accepted since the last SL block (journaled: they survive a crash).
    pub fn buffered(&self) -> &[SlTx] {
        &self.buffer
    }

    /// [`state_fingerprint`] of the core.
    pub fn state_fingerprint(&self) -> B256 {
        state_fingerprint(&self.sl)
    }
}

#[cfg(test)]
mod tests;
