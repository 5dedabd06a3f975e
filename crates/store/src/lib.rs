//! Crash-safe storage of one chain on redb: blocks, receipts, state, the message tree, batches.
//!
//! Everything a block changes — the block, its receipts, the changed state items, the new
//! outgoing message leaves, and the batch it sealed — is written in **one** redb write
//! transaction with immediate durability ([`ChainStore::persist_block`]). A process killed at
//! any instant therefore restarts at exactly its last committed block: [`ChainStore::load`]
//! rebuilds the [`ChainState`] from the stored items and refuses to start if its root differs
//! from the head block's state root.
//!
//! Encoding: blocks, batches and state items with `postcard`; receipts as JSON (alloy's `Log`
//! uses serde features that need a self-describing format).
//!
//! Opening: [`ChainStore::open`] creates the file if needed (a new chain);
//! [`ChainStore::open_existing`] refuses a missing or empty file ([`StoreError::Missing`],
//! [`StoreError::Empty`]) instead of starting a fresh chain over lost data — for a datadir that
//! says it holds a chain. Errors opening the file name its path ([`StoreError::Open`]).
//!
//! Pool journal: transactions the node accepted into its pool and not yet included are kept in
//! table `pool` (hash -> raw EIP-2718 bytes) so they survive a crash
//! ([`ChainStore::journal_tx`], [`ChainStore::journaled_txs`]). [`ChainStore::persist_block`]
//! removes the block's transactions from it in the block's own write transaction, and
//! [`ChainStore::revert_to_block`] puts the transactions of the discarded blocks back in it in the
//! revert's transaction, so after a crash at any instant every accepted transaction is either in
//! a stored block or in the journal. A durable redb commit per accepted transaction would cost
//! two syncs (about 300 transactions per second here), so journal entries are committed to redb
//! without a sync and also appended to a write-ahead file next to the database
//! (`<file>.pool-wal`, written with `write(2)`, no sync): a killed process leaves both in the
//! page cache, and the next open replays the file into the table. The next durable commit (the
//! next block) makes the entries durable and empties the file. What a power loss can take is
//! the transactions accepted since the last block.
//!
//! Reverts: with every block, the same transaction stores an undo log (the previous value of
//! every state item the block changed and the outgoing-tree size before it).
//! [`ChainStore::revert_to_block`] applies them from the head down, in one transaction, so the
//! store is exactly as it was after the target block; [`ChainStore::finalize_through_block`]
//! prunes the undo logs of blocks that can no longer be reverted.

use std::path::{Path, PathBuf};

use alloy_primitives::{keccak256, B256};
use braid_execution::{ChainState, StateChanges, StateKey, StateValue, TxReceipt};
use braid_primitives::{BatchHeader, BatchNumber, Block, BlockNumber, ChainId};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const BLOCK_HASHES: TableDefinition<&[u8; 32], u64> = TableDefinition::new("block_hashes");
const RECEIPTS: TableDefinition<u64, &[u8]> = TableDefinition::new("receipts");
const TX_INDEX: TableDefinition<&[u8; 32], (u64, u32)> = TableDefinition::new("tx_index");
const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
const OUTBOX: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("outbox");
const BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batches");
/// Transaction hash -> raw EIP-2718 bytes: accepted into the pool, not yet in a stored block.
const POOL: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("pool");
/// Block number -> postcard([`UndoLog`]).
const UNDO: TableDefinition<u64, &[u8]> = TableDefinition::new("undo");

/// What reverting one block restores: the previous value of each state item it changed
/// (`None` = absent) and the outgoing-tree size before it.
type UndoLog = (Vec<(StateKey, Option<StateValue>)>, u64);

const META_CHAIN_ID: &str = "chain_id";
const META_HEAD: &str = "head";
const META_LAST_BATCH: &str = "last_batch";

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database engine failed (I/O, corruption, lock).
    #[error("database error: {0}")]
    Db(String),
    /// The database file could not be opened (I/O, permissions, a file redb does not accept,
    /// a lock held by another process).
    #[error("cannot open chain database {}: {reason}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The engine's complaint.
        reason: String,
    },
    /// A database that must exist is missing.
    #[error("chain database {} is missing", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A database that must hold a chain is empty (a zero-length file, or no chain in it).
    #[error("chain database {} is empty ({detail}); refusing to start a fresh chain over it", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// A stored record does not decode.
    #[error("corrupt {what} record: {reason}")]
    Corrupt {
        /// The record kind.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// The database belongs to another chain.
    #[error("chain database {} holds chain {stored}, not chain {requested}", path.display())]
    ChainMismatch {
        /// The file.
        path: PathBuf,
        /// The stored chain.
        stored: ChainId,
        /// The requested chain.
        requested: ChainId,
    },
    /// A block that does not extend the stored head.
    #[error("block {got} does not follow the stored head {head:?}")]
    NotNextBlock {
        /// Stored head.
        head: Option<BlockNumber>,
        /// Offered block.
        got: BlockNumber,
    },
    /// A revert target after the stored head, or a revert of an empty store.
    #[error("cannot revert to block {target}: stored head is {head:?}")]
    RevertBeyondHead {
        /// Stored head.
        head: Option<BlockNumber>,
        /// Requested block.
        target: BlockNumber,
    },
    /// A revert needs the undo log of a block that was finalized (pruned) or never written.
    #[error("cannot revert block {block}: its undo log is gone (finalized)")]
    UndoMissing {
        /// The block whose undo log is missing.
        block: BlockNumber,
    },
    /// The rebuilt state disagrees with the head block.
    #[error("state root {computed} rebuilt from storage differs from head block root {expected}")]
    StateRootMismatch {
        /// Head block's root.
        expected: B256,
        /// Rebuilt root.
        computed: B256,
    },
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(e.into().to_string())
}

fn open_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // postcard only fails on writer errors or unsupported serde features; the types stored here
    // use neither, and a failure would surface at decode time as `Corrupt`.
    postcard::to_allocvec(v).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        what,
        reason: e.to_string(),
    })
}

/// A chain loaded from storage.
#[derive(Debug, Clone)]
pub struct LoadedChain {
    /// State after the head block (root already checked against the head).
    pub state: ChainState,
    /// The head block.
    pub head: Block,
    /// Blocks after the last sealed batch.
    pub open_batch: Vec<Block>,
    /// The last sealed batch number (0 if none).
    pub last_batch: BatchNumber,
}

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    /// Block number.
    pub block: BlockNumber,
    /// Index in the block.
    pub index: u32,
}

/// The store of one chain.
#[derive(Debug)]
pub struct ChainStore {
    db: Database,
    chain_id: ChainId,
    wal: PoolWal,
}

/// The pool journal's write-ahead file: records `tag (1 = add, 2 = remove) | hash (32) |
/// length (u32 LE) | raw`, appended without a sync, replayed into the `pool` table on open and
/// emptied after each durable commit.
#[derive(Debug)]
struct PoolWal {
    path: PathBuf,
    file: std::sync::Mutex<std::fs::File>,
}

/// One write-ahead record: (an addition?, hash, raw transaction).
type WalRecord = (bool, [u8; 32], Vec<u8>);

const WAL_ADD: u8 = 1;
const WAL_REMOVE: u8 = 2;

impl PoolWal {
    fn path_for(db: &Path) -> PathBuf {
        let mut name = db.file_name().unwrap_or_default().to_os_string();
        name.push(".pool-wal");
        db.with_file_name(name)
    }

    fn open(db: &Path) -> Result<Self, StoreError> {
        let path = Self::path_for(db);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| open_err(&path, e))?;
        Ok(Self {
            path,
            file: std::sync::Mutex::new(file),
        })
    }

    fn file(&self) -> std::sync::MutexGuard<'_, std::fs::File> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The records in order: (add?, hash, raw). A torn last record (the process died in the
    /// middle of appending it) is ignored: its transaction was not acknowledged.
    fn records(&self) -> Result<Vec<WalRecord>, StoreError> {
        let bytes = std::fs::read(&self.path).map_err(|e| open_err(&self.path, e))?;
        let mut out = Vec::new();
        let mut rest = bytes.as_slice();
        while rest.len() >= 37 {
            let tag = rest[0];
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&rest[1..33]);
            let len = u32::from_le_bytes([rest[33], rest[34], rest[35], rest[36]]) as usize;
            let Some(raw) = rest.get(37..37 + len) else {
                break;
            };
            match tag {
                WAL_ADD => out.push((true, hash, raw.to_vec())),
                WAL_REMOVE => out.push((false, hash, Vec::new())),
                other => {
                    return Err(StoreError::Corrupt {
                        what: "pool write-ahead",
                        reason: format!("record tag {other} in {}", self.path.display()),
                    })
                }
            }
            rest = &rest[37 + len..];
        }
        Ok(out)
    }

    fn append(&self, adds: &[(&B256, &[u8])], removes: &[B256]) -> Result<(), StoreError> {
        use std::io::Write as _;
        let mut buf = Vec::new();
        for h in removes {
            buf.push(WAL_REMOVE);
            buf.extend_from_slice(&h.0);
            buf.extend_from_slice(&0u32.to_le_bytes());
        }
        for (h, raw) in adds {
            buf.push(WAL_ADD);
            buf.extend_from_slice(&h.0);
            buf.extend_from_slice(&(raw.len() as u32).to_le_bytes());
            buf.extend_from_slice(raw);
        }
        self.file()
            .write_all(&buf)
            .map_err(|e| StoreError::Db(format!("{}: {e}", self.path.display())))
    }

    /// Empties the file: everything in it is durable in the database.
    fn clear(&self) -> Result<(), StoreError> {
        let f = self.file();
        if f.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
            return Ok(());
        }
        f.set_len(0)
            .map_err(|e| StoreError::Db(format!("{}: {e}", self.path.display())))
    }
}

impl ChainStore {
    /// Opens the store at `path` for `chain_id`, creating the file (a new, empty chain) if it
    /// does not exist or is empty.
    ///
    /// Errors: [`StoreError::Open`] if the file cannot be opened or created,
    /// [`StoreError::ChainMismatch`] if it holds another chain.
    pub fn open(path: impl AsRef<Path>, chain_id: ChainId) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let db = Database::create(path).map_err(|e| open_err(path, e))?;
        Self::init(db, path, chain_id, false)
    }

    /// Opens the existing store at `path` for `chain_id`; never creates one.
    ///
    /// Errors: [`StoreError::Missing`] if there is no file, [`StoreError::Empty`] if it is zero
    /// bytes long or holds no chain, [`StoreError::Open`] if it cannot be opened,
    /// [`StoreError::ChainMismatch`] if it holds another chain.
    pub fn open_existing(path: impl AsRef<Path>, chain_id: ChainId) -> Result<Self, StoreError> {
        let path = path.as_ref();
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(open_err(path, e)),
            Ok(m) if m.len() == 0 => {
                return Err(StoreError::Empty {
                    path: path.to_path_buf(),
                    detail: "0 bytes".into(),
                })
            }
            Ok(_) => {}
        }
        // `Database::open` never initialises a file, should it be emptied meanwhile
        let db = Database::open(path).map_err(|e| open_err(path, e))?;
        Self::init(db, path, chain_id, true)
    }

    /// Checks the stored chain id (recording it in a new store) and creates the tables.
    fn init(
        db: Database,
        path: &Path,
        chain_id: ChainId,
        must_hold_chain: bool,
    ) -> Result<Self, StoreError> {
        let tx = db.begin_write().map_err(|e| open_err(path, e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| open_err(path, e))?;
            let stored = meta.get(META_CHAIN_ID).map_err(db_err)?.map(|g| g.value());
            match stored {
                Some(stored) if stored != chain_id => {
                    return Err(StoreError::ChainMismatch {
                        path: path.to_path_buf(),
                        stored,
                        requested: chain_id,
                    })
                }
                Some(_) if must_hold_chain && meta.get(META_HEAD).map_err(db_err)?.is_none() => {
                    return Err(StoreError::Empty {
                        path: path.to_path_buf(),
                        detail: "no block stored".into(),
                    })
                }
                Some(_) => {}
                None if must_hold_chain => {
                    return Err(StoreError::Empty {
                        path: path.to_path_buf(),
                        detail: "no chain stored".into(),
                    })
                }
                None => {
                    meta.insert(META_CHAIN_ID, chain_id).map_err(db_err)?;
                }
            }
            for t in [BLOCKS, RECEIPTS, BATCHES, UNDO] {
                tx.open_table(t).map_err(db_err)?;
            }
            tx.open_table(BLOCK_HASHES).map_err(db_err)?;
            tx.open_table(TX_INDEX).map_err(db_err)?;
            tx.open_table(STATE).map_err(db_err)?;
            tx.open_table(OUTBOX).map_err(db_err)?;
            tx.open_table(POOL).map_err(db_err)?;
        }
        tx.commit().map_err(|e| open_err(path, e))?;
        let wal = PoolWal::open(path)?;
        let store = Self { db, chain_id, wal };
        store.replay_wal()?;
        Ok(store)
    }

    /// Applies the write-ahead file's records to the `pool` table durably, then empties it.
    fn replay_wal(&self) -> Result<(), StoreError> {
        let records = self.wal.records()?;
        if records.is_empty() {
            return self.wal.clear();
        }
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut pool = tx.open_table(POOL).map_err(db_err)?;
            for (add, hash, raw) in &records {
                if *add {
                    pool.insert(hash, raw.as_slice()).map_err(db_err)?;
                } else {
                    pool.remove(hash).map_err(db_err)?;
                }
            }
        }
        tx.commit().map_err(db_err)?;
        self.wal.clear()
    }

    /// The chain this store holds.
    pub fn chain_id(&self) -> ChainId {
        self.chain_id
    }

    /// The stored head block number, if any block is stored.
    pub fn head_number(&self) -> Result<Option<BlockNumber>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let meta = tx.open_table(META).map_err(db_err)?;
        Ok(meta.get(META_HEAD).map_err(db_err)?.map(|g| g.value()))
    }

    /// Atomically persists a block with its receipts, its state changes and, if the block
    /// sealed one, its batch. Blocks must arrive in order, starting with genesis (height 0).
    /// The same transaction writes the block's undo log (see [`ChainStore::revert_to_block`]).
    pub fn persist_block(
        &self,
        block: &Block,
        receipts: &[TxReceipt],
        changes: &StateChanges,
        sealed_batch: Option<&BatchHeader>,
    ) -> Result<(), StoreError> {
        let number = block.header.number;
        let head = self.head_number()?;
        let expected = head.map_or(0, |h| h + 1);
        if number != expected {
            return Err(StoreError::NotNextBlock { head, got: number });
        }
        let receipts_json = serde_json::to_vec(receipts).map_err(|e| StoreError::Corrupt {
            what: "receipts",
            reason: e.to_string(),
        })?;
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            tx.open_table(BLOCKS)
                .map_err(db_err)?
                .insert(number, encode(block).as_slice())
                .map_err(db_err)?;
            tx.open_table(BLOCK_HASHES)
                .map_err(db_err)?
                .insert(&block.header.hash().0, number)
                .map_err(db_err)?;
            tx.open_table(RECEIPTS)
                .map_err(db_err)?
                .insert(number, receipts_json.as_slice())
                .map_err(db_err)?;
            let mut index = tx.open_table(TX_INDEX).map_err(db_err)?;
            let mut pool = tx.open_table(POOL).map_err(db_err)?;
            for (i, r) in receipts.iter().enumerate() {
                index
                    .insert(&r.tx_hash.0, (number, i as u32))
                    .map_err(db_err)?;
                pool.remove(&r.tx_hash.0).map_err(db_err)?;
            }
            let mut state = tx.open_table(STATE).map_err(db_err)?;
            let mut undo_entries = Vec::with_capacity(changes.entries.len());
            for (key, value) in &changes.entries {
                let k = encode(key);
                let previous: Option<StateValue> = state
                    .get(k.as_slice())
                    .map_err(db_err)?
                    .map(|v| decode(v.value(), "state value"))
                    .transpose()?;
                undo_entries.push((*key, previous));
                match value {
                    Some(v) => {
                        state
                            .insert(k.as_slice(), encode(v).as_slice())
                            .map_err(db_err)?;
                    }
                    None => {
                        state.remove(k.as_slice()).map_err(db_err)?;
                    }
                }
            }
            let mut outbox = tx.open_table(OUTBOX).map_err(db_err)?;
            let prev_outbox_len = outbox
                .last()
                .map_err(db_err)?
                .map_or(0, |(k, _)| k.value() + 1);
            let undo: UndoLog = (undo_entries, prev_outbox_len);
            tx.open_table(UNDO)
                .map_err(db_err)?
                .insert(number, encode(&undo).as_slice())
                .map_err(db_err)?;
            for (i, leaf) in changes.outbox_leaves.iter().enumerate() {
                outbox
                    .insert(changes.outbox_from + i as u64, &leaf.0)
                    .map_err(db_err)?;
            }
            let mut meta = tx.open_table(META).map_err(db_err)?;
            if let Some(batch) = sealed_batch {
                tx.open_table(BATCHES)
                    .map_err(db_err)?
                    .insert(batch.number, encode(batch).as_slice())
                    .map_err(db_err)?;
                meta.insert(META_LAST_BATCH, batch.number).map_err(db_err)?;
            }
            meta.insert(META_HEAD, number).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        // durable: the journal entries committed before it are too
        self.wal.clear()?;
        Ok(())
    }

    /// Atomically (one write transaction) rolls the store back to block `number`: deletes the
    /// later blocks with their receipts, transaction-index and block-hash entries and undo logs,
    /// the batches that end after `number`, restores the state items and the outgoing tree from
    /// the undo logs, and sets the head and last batch. Afterwards [`ChainStore::load`] yields
    /// the state after block `number`. Reverting to the head changes nothing.
    ///
    /// Errors, with nothing changed: [`StoreError::RevertBeyondHead`] if `number` is after the
    /// head (or the store is empty), [`StoreError::UndoMissing`] if a block to revert was
    /// finalized ([`ChainStore::finalize_through_block`]).
    pub fn revert_to_block(&self, number: BlockNumber) -> Result<(), StoreError> {
        let head = self.head_number()?;
        let head = match head {
            Some(h) if h >= number => h,
            _ => {
                return Err(StoreError::RevertBeyondHead {
                    head,
                    target: number,
                })
            }
        };
        if head == number {
            return Ok(());
        }
        if !self.has_undo_log(number + 1)? {
            // undo logs are pruned from the bottom: the first block to revert is the first gone
            return Err(StoreError::UndoMissing { block: number + 1 });
        }
        // Dropping `tx` without committing (on any error below) aborts it: all or nothing.
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut undo_table = tx.open_table(UNDO).map_err(db_err)?;
            let mut state = tx.open_table(STATE).map_err(db_err)?;
            let mut blocks = tx.open_table(BLOCKS).map_err(db_err)?;
            let mut hashes = tx.open_table(BLOCK_HASHES).map_err(db_err)?;
            let mut receipts_table = tx.open_table(RECEIPTS).map_err(db_err)?;
            let mut index = tx.open_table(TX_INDEX).map_err(db_err)?;
            let mut pool = tx.open_table(POOL).map_err(db_err)?;
            let mut outbox_len = None;
            for n in (number + 1..=head).rev() {
                let undo: UndoLog = match undo_table.remove(n).map_err(db_err)? {
                    Some(bytes) => decode(bytes.value(), "undo log")?,
                    None => return Err(StoreError::UndoMissing { block: n }),
                };
                let (entries, prev_outbox_len) = undo;
                for (key, previous) in entries {
                    let k = encode(&key);
                    match previous {
                        Some(v) => {
                            state
                                .insert(k.as_slice(), encode(&v).as_slice())
                                .map_err(db_err)?;
                        }
                        None => {
                            state.remove(k.as_slice()).map_err(db_err)?;
                        }
                    }
                }
                outbox_len = Some(prev_outbox_len);
                let block: Block = match blocks.remove(n).map_err(db_err)? {
                    Some(bytes) => decode(bytes.value(), "block")?,
                    None => {
                        return Err(StoreError::Corrupt {
                            what: "block",
                            reason: format!("block {n} missing"),
                        })
                    }
                };
                hashes.remove(&block.header.hash().0).map_err(db_err)?;
                // the sequencer puts the discarded blocks' transactions back in its pool
                for raw in &block.transactions {
                    pool.insert(&keccak256(raw).0, raw.as_ref())
                        .map_err(db_err)?;
                }
                let receipts: Vec<TxReceipt> = match receipts_table.remove(n).map_err(db_err)? {
                    Some(bytes) => {
                        serde_json::from_slice(bytes.value()).map_err(|e| StoreError::Corrupt {
                            what: "receipts",
                            reason: e.to_string(),
                        })?
                    }
                    None => vec![],
                };
                for r in &receipts {
                    let here = index
                        .get(&r.tx_hash.0)
                        .map_err(db_err)?
                        .is_some_and(|g| g.value().0 == n);
                    if here {
                        index.remove(&r.tx_hash.0).map_err(db_err)?;
                    }
                }
            }
            if let Some(len) = outbox_len {
                tx.open_table(OUTBOX)
                    .map_err(db_err)?
                    .retain_in(len.., |_, _| false)
                    .map_err(db_err)?;
            }
            let mut batches = tx.open_table(BATCHES).map_err(db_err)?;
            let mut last_batch = None;
            let mut drop_batches = Vec::new();
            for item in batches.iter().map_err(db_err)?.rev() {
                let (k, v) = item.map_err(db_err)?;
                let batch: BatchHeader = decode(v.value(), "batch")?;
                if batch.lastBlock > number {
                    drop_batches.push(k.value());
                } else {
                    last_batch = Some(k.value());
                    break;
                }
            }
            for b in drop_batches {
                batches.remove(b).map_err(db_err)?;
            }
            let mut meta = tx.open_table(META).map_err(db_err)?;
            match last_batch {
                Some(b) => {
                    meta.insert(META_LAST_BATCH, b).map_err(db_err)?;
                }
                None => {
                    meta.remove(META_LAST_BATCH).map_err(db_err)?;
                }
            }
            meta.insert(META_HEAD, number).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        // durable: the journal entries committed before it are too
        self.wal.clear()?;
        Ok(())
    }

    /// Drops the undo logs of blocks up to `number` (their batches were executed on the
    /// settlement layer and can never revert). Reverting to a block before `number` then fails
    /// with [`StoreError::UndoMissing`].
    pub fn finalize_through_block(&self, number: BlockNumber) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        tx.open_table(UNDO)
            .map_err(db_err)?
            .retain_in(..=number, |_, _| false)
            .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        // durable: the journal entries committed before it are too
        self.wal.clear()?;
        Ok(())
    }

    /// Durably records a transaction accepted into the pool (`hash` -> `raw`), and forgets the
    /// pooled transactions it displaced (`displaced`), in one write transaction. Call it before
    /// answering the sender with the hash.
    pub fn journal_tx(
        &self,
        hash: &B256,
        raw: &[u8],
        displaced: &[B256],
    ) -> Result<(), StoreError> {
        self.wal.append(&[(hash, raw)], displaced)?;
        let mut tx = self.db.begin_write().map_err(db_err)?;
        tx.set_durability(redb::Durability::None)
            .map_err(|e| StoreError::Db(e.to_string()))?;
        {
            let mut pool = tx.open_table(POOL).map_err(db_err)?;
            for d in displaced {
                pool.remove(&d.0).map_err(db_err)?;
            }
            pool.insert(&hash.0, raw).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(())
    }

    /// Forgets journaled transactions that left the pool without being included (dropped,
    /// replaced, refused on a restart). Unknown hashes are ignored.
    pub fn unjournal_txs(&self, hashes: &[B256]) -> Result<(), StoreError> {
        if hashes.is_empty() {
            return Ok(());
        }
        self.wal.append(&[], hashes)?;
        let mut tx = self.db.begin_write().map_err(db_err)?;
        tx.set_durability(redb::Durability::None)
            .map_err(|e| StoreError::Db(e.to_string()))?;
        {
            let mut pool = tx.open_table(POOL).map_err(db_err)?;
            for h in hashes {
                pool.remove(&h.0).map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)?;
        Ok(())
    }

    /// The journaled pool transactions (hash, raw bytes), in hash order.
    pub fn journaled_txs(&self) -> Result<Vec<(B256, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(POOL).map_err(db_err)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            out.push((B256::from(*k.value()), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Whether block `number`'s undo log is stored (it can be reverted).
    pub fn has_undo_log(&self, number: BlockNumber) -> Result<bool, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(UNDO).map_err(db_err)?;
        Ok(t.get(number).map_err(db_err)?.is_some())
    }

    /// A block by number.
    pub fn block(&self, number: BlockNumber) -> Result<Option<Block>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(BLOCKS).map_err(db_err)?;
        let bytes = t.get(number).map_err(db_err)?;
        bytes.map(|b| decode(b.value(), "block")).transpose()
    }

    /// A block number by block hash.
    pub fn block_number(&self, hash: &B256) -> Result<Option<BlockNumber>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(BLOCK_HASHES).map_err(db_err)?;
        Ok(t.get(&hash.0).map_err(db_err)?.map(|g| g.value()))
    }

    /// Receipts of a block.
    pub fn receipts(&self, number: BlockNumber) -> Result<Option<Vec<TxReceipt>>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(RECEIPTS).map_err(db_err)?;
        let bytes = t.get(number).map_err(db_err)?;
        bytes
            .map(|b| {
                serde_json::from_slice(b.value()).map_err(|e| StoreError::Corrupt {
                    what: "receipts",
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    /// Where a transaction was included.
    pub fn tx_location(&self, hash: &B256) -> Result<Option<TxLocation>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(TX_INDEX).map_err(db_err)?;
        Ok(t.get(&hash.0).map_err(db_err)?.map(|g| {
            let (block, index) = g.value();
            TxLocation { block, index }
        }))
    }

    /// A sealed batch by number.
    pub fn batch(&self, number: BatchNumber) -> Result<Option<BatchHeader>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(BATCHES).map_err(db_err)?;
        let bytes = t.get(number).map_err(db_err)?;
        bytes.map(|b| decode(b.value(), "batch")).transpose()
    }

    /// Loads the chain: the head, the state rebuilt from stored items (checked against the
    /// head's state root), and the blocks of the open batch. `None` for an empty store.
    pub fn load(&self) -> Result<Option<LoadedChain>, StoreError> {
        let Some(head_number) = self.head_number()? else {
            return Ok(None);
        };
        let head = self.block(head_number)?.ok_or(StoreError::Corrupt {
            what: "block",
            reason: format!("head block {head_number} missing"),
        })?;
        let tx = self.db.begin_read().map_err(db_err)?;
        let mut entries = Vec::new();
        for item in tx
            .open_table(STATE)
            .map_err(db_err)?
            .iter()
            .map_err(db_err)?
        {
            let (k, v) = item.map_err(db_err)?;
            let key: StateKey = decode(k.value(), "state key")?;
            let value: StateValue = decode(v.value(), "state value")?;
            entries.push((key, value));
        }
        let mut leaves = Vec::new();
        for (expected, item) in tx
            .open_table(OUTBOX)
            .map_err(db_err)?
            .iter()
            .map_err(db_err)?
            .enumerate()
        {
            let (i, leaf) = item.map_err(db_err)?;
            if i.value() != expected as u64 {
                return Err(StoreError::Corrupt {
                    what: "outbox",
                    reason: format!("gap at {expected}"),
                });
            }
            leaves.push(B256::from(*leaf.value()));
        }
        let mut state = ChainState::restore(self.chain_id, entries, leaves).map_err(|e| {
            StoreError::Corrupt {
                what: "state",
                reason: e.to_string(),
            }
        })?;
        let computed = state.state_root();
        if computed != head.header.stateRoot {
            return Err(StoreError::StateRootMismatch {
                expected: head.header.stateRoot,
                computed,
            });
        }
        let meta = tx.open_table(META).map_err(db_err)?;
        let last_batch = meta
            .get(META_LAST_BATCH)
            .map_err(db_err)?
            .map_or(0, |g| g.value());
        drop(meta);
        let first_open = match last_batch {
            0 => 1,
            n => {
                self.batch(n)?
                    .ok_or(StoreError::Corrupt {
                        what: "batch",
                        reason: format!("batch {n} missing"),
                    })?
                    .lastBlock
                    + 1
            }
        };
        let mut open_batch = Vec::new();
        for n in first_open..=head_number {
            open_batch.push(self.block(n)?.ok_or(StoreError::Corrupt {
                what: "block",
                reason: format!("block {n} missing"),
            })?);
        }
        Ok(Some(LoadedChain {
            state,
            head,
            open_batch,
            last_batch,
        }))
    }
}

#[cfg(test)]
mod tests;
