//! What a datadir holds, and the refusal to start on one that is not what it should be.
//!
//! Every datadir of a role process (`braid node sl`, `braid node chain`) and of the devnet has an
//! identity file, [`IDENTITY_FILE`] (JSON), written when the datadir is initialised. It records:
//!
//! - the **network**: [`NetworkIdentity::id`], a keccak hash of everything that shapes the
//!   network's history — every chain id with its genesis block hash (which covers the genesis
//!   balances and the sequencer settings in the genesis header), the block time and batch size
//!   of the chains, the SL's configuration fingerprint (its block time, council, genesis
//!   balances), and the addresses of the council, each chain's operator and the relayer — and
//!   the readable settings, so a mismatch can say what differs;
//! - the **role** it holds ([`Role`]): the settlement layer, one chain, or a whole devnet;
//! - whether its initialisation finished (`state`: `initialising`, then `ready`).
//!
//! [`Datadir::open`] applies the rules an operator of a production node expects:
//!
//! - a directory that does not exist or is empty (`lost+found` aside) is **initialised**: the
//!   identity file is written (`initialising`), the caller creates its databases, then
//!   [`Datadir::mark_ready`] records `ready`. An initialisation interrupted before `ready` is
//!   resumed on the next start (nothing was served from it);
//! - a `ready` datadir must be of the same network and role, and each of its databases
//!   ([`Role::databases`]) must exist and be non-empty, else a typed [`DatadirError`] naming the
//!   path; its databases are then opened with `open_existing`, which never creates one;
//! - a non-empty directory without an identity file is refused ([`DatadirError::NotEmpty`]):
//!   braid does not adopt files it did not initialise (including datadirs written before identity
//!   files existed — start those afresh in a new directory).
//!
//! The identity file is replaced atomically (written to a temporary file, synced, renamed, the
//! directory synced), so a crash leaves the old or the new file, never a torn one.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use alloy_primitives::{keccak256, Address, B256, U256};
use braid_execution::TxSigner;
use braid_primitives::ChainId;
use braid_proof::ReExecution;
use braid_sequencer::Sequencer;
use braid_settlement::SlEvent;
use braid_sl_store::PersistentSl;
use braid_store::ChainStore;
use serde::{Deserialize, Serialize};

use crate::world::{council_key, operator_key, relayer_signer, Devnet, DevnetConfig};
use crate::NodeError;

/// Name of the identity file in a datadir.
pub const IDENTITY_FILE: &str = "braid-datadir.json";
/// The identity file being replaced.
const IDENTITY_TMP: &str = "braid-datadir.json.tmp";
/// Version of the identity file's format.
pub const IDENTITY_FORMAT: u32 = 1;
/// The settlement layer's database in its datadir.
pub const SL_DATABASE: &str = "sl.redb";

/// A chain's database in its datadir.
pub fn chain_database(id: ChainId) -> String {
    format!("chain-{id}.redb")
}

/// Why a datadir is refused.
#[derive(Debug, thiserror::Error)]
pub enum DatadirError {
    /// A file or directory operation failed (permissions, a read-only file system, ...).
    #[error("cannot {action} {}: {reason}", path.display())]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system's complaint.
        reason: String,
    },
    /// A directory with files but no identity file.
    #[error(
        "datadir {} is not empty ({entries}) but has no identity file {IDENTITY_FILE}: braid does \
         not adopt files it did not initialise; use an empty or new directory",
        path.display()
    )]
    NotEmpty {
        /// The datadir.
        path: PathBuf,
        /// Some of what it holds.
        entries: String,
    },
    /// The identity file does not parse, or has a format this version does not know.
    #[error("identity file {} is unreadable: {reason}", path.display())]
    BadIdentity {
        /// The identity file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The datadir belongs to another network.
    #[error(
        "datadir {} belongs to network {stored}, not to this process's network {requested} \
         ({differences})",
        path.display()
    )]
    ForeignNetwork {
        /// The datadir.
        path: PathBuf,
        /// The network it was initialised for.
        stored: B256,
        /// The network this process runs.
        requested: B256,
        /// What differs, readably.
        differences: String,
    },
    /// The datadir holds another role or chain.
    #[error("datadir {} holds {stored}, not {requested}", path.display())]
    WrongRole {
        /// The datadir.
        path: PathBuf,
        /// What it holds.
        stored: Role,
        /// What this process runs.
        requested: Role,
    },
    /// The identity says the datadir holds data, but a database file is gone.
    #[error(
        "datadir {} is initialised for {role} but its database {} is missing; refusing to \
         start afresh over lost data (restore the file, or use a new directory)",
        datadir.display(), file.display()
    )]
    MissingDatabase {
        /// The datadir.
        datadir: PathBuf,
        /// The role it holds.
        role: Role,
        /// The missing file.
        file: PathBuf,
    },
    /// The identity says the datadir holds data, but a database file is empty.
    #[error(
        "datadir {} is initialised for {role} but its database {} is empty (0 bytes); refusing \
         to start afresh over lost data (restore the file, or use a new directory)",
        datadir.display(), file.display()
    )]
    EmptyDatabase {
        /// The datadir.
        datadir: PathBuf,
        /// The role it holds.
        role: Role,
        /// The empty file.
        file: PathBuf,
    },
    /// A chain database whose genesis block is not the network's.
    #[error(
        "chain database {} holds a chain {chain} with genesis {stored}, but the network's chain \
         {chain} has genesis {expected}",
        path.display()
    )]
    GenesisMismatch {
        /// The file.
        path: PathBuf,
        /// The chain.
        chain: ChainId,
        /// Genesis hash in the file.
        stored: B256,
        /// Genesis hash of the network's spec.
        expected: B256,
    },
}

/// What a datadir holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Role {
    /// The settlement layer (`braid node sl`): [`SL_DATABASE`].
    Sl,
    /// One chain with its operator (`braid node chain --id N`): [`chain_database`].
    Chain {
        /// The chain id.
        chain: ChainId,
    },
    /// A whole devnet in one process (`braid devnet`): the SL and every chain of the network.
    Devnet,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sl => write!(f, "the settlement layer"),
            Self::Chain { chain } => write!(f, "chain {chain}"),
            Self::Devnet => write!(f, "a devnet"),
        }
    }
}

impl Role {
    /// The database files this role keeps in its datadir (`chains`: the network's chains).
    pub fn databases(&self, chains: &[ChainId]) -> Vec<String> {
        match self {
            Self::Sl => vec![SL_DATABASE.into()],
            Self::Chain { chain } => vec![chain_database(*chain)],
            Self::Devnet => std::iter::once(SL_DATABASE.to_string())
                .chain(chains.iter().map(|c| chain_database(*c)))
                .collect(),
        }
    }
}

/// One chain of a network as its identity records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainIdentity {
    /// The chain id.
    pub id: ChainId,
    /// Hash of its genesis block header.
    pub genesis: B256,
    /// Its operator's address.
    pub operator: Address,
}

/// The identity of a network: the hash of its spec and the settings an operator reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkIdentity {
    /// `keccak256` of the canonical (JSON) encoding of the spec: every field below plus the
    /// SL configuration fingerprint, the dev accounts' balance, the council's and the relayer's
    /// addresses.
    pub id: B256,
    /// Every chain, in the configured order.
    pub chains: Vec<ChainIdentity>,
    /// Block time of the chains.
    pub block_time_ms: u64,
    /// Blocks per batch.
    pub batch_blocks: u64,
    /// SL block time.
    pub sl_block_time_ms: u64,
    /// Funded dev accounts.
    pub dev_accounts: u32,
}

/// What the network id hashes.
#[derive(Serialize)]
struct NetworkSpec<'a> {
    domain: &'static str,
    chains: &'a [ChainIdentity],
    block_time_ms: u64,
    batch_blocks: u64,
    sl_block_time_ms: u64,
    dev_accounts: u32,
    dev_balance: U256,
    council: Address,
    relayer: Address,
    sl_config: B256,
}

fn address_of(secret: B256) -> Result<Address, NodeError> {
    Ok(TxSigner::from_secret(secret)
        .map_err(|e| NodeError::Config(e.to_string()))?
        .address())
}

impl NetworkIdentity {
    /// The identity of the network `config` describes (computes every chain's genesis block).
    pub fn of(config: &DevnetConfig) -> Result<Self, NodeError> {
        let alloc = Devnet::alloc(config);
        let mut chains = Vec::with_capacity(config.chains.len());
        for &id in &config.chains {
            let (_, genesis) = Sequencer::genesis(Devnet::sequencer_config(config, id), &alloc)?;
            chains.push(ChainIdentity {
                id,
                genesis: genesis.hash,
                operator: address_of(operator_key(id))?,
            });
        }
        let sl_config = braid_sl_store::config_fingerprint(&Devnet::sl_config(config)?)?;
        let spec = NetworkSpec {
            domain: "braid network spec v1",
            chains: &chains,
            block_time_ms: config.block_time_ms,
            batch_blocks: config.batch_blocks,
            sl_block_time_ms: config.sl_block_time_ms,
            dev_accounts: config.dev_accounts,
            dev_balance: config.dev_balance,
            council: address_of(council_key())?,
            relayer: relayer_signer().address(),
            sl_config,
        };
        let bytes = serde_json::to_vec(&spec)
            .map_err(|e| NodeError::Config(format!("cannot encode the network spec: {e}")))?;
        Ok(Self {
            id: keccak256(bytes),
            chains,
            block_time_ms: config.block_time_ms,
            batch_blocks: config.batch_blocks,
            sl_block_time_ms: config.sl_block_time_ms,
            dev_accounts: config.dev_accounts,
        })
    }

    /// The chain ids, in the configured order.
    pub fn chain_ids(&self) -> Vec<ChainId> {
        self.chains.iter().map(|c| c.id).collect()
    }

    /// The genesis hash of chain `id`, if it is one of the network's.
    pub fn genesis(&self, id: ChainId) -> Option<B256> {
        self.chains.iter().find(|c| c.id == id).map(|c| c.genesis)
    }

    /// What differs from `other`, readably (the settings first, then genesis and keys).
    fn differences(&self, other: &Self) -> String {
        let mut out = Vec::new();
        if self.chain_ids() != other.chain_ids() {
            out.push(format!(
                "chains {:?} vs {:?}",
                self.chain_ids(),
                other.chain_ids()
            ));
        }
        let mut setting = |name: &str, a: u64, b: u64| {
            if a != b {
                out.push(format!("{name} {a} vs {b}"));
            }
        };
        setting("block_time_ms", self.block_time_ms, other.block_time_ms);
        setting("batch_blocks", self.batch_blocks, other.batch_blocks);
        setting(
            "sl_block_time_ms",
            self.sl_block_time_ms,
            other.sl_block_time_ms,
        );
        setting(
            "dev_accounts",
            self.dev_accounts.into(),
            other.dev_accounts.into(),
        );
        for a in &self.chains {
            if let Some(b) = other.chains.iter().find(|b| b.id == a.id) {
                if a.genesis != b.genesis {
                    out.push(format!(
                        "chain {} genesis {} vs {}",
                        a.id, a.genesis, b.genesis
                    ));
                }
                if a.operator != b.operator {
                    out.push(format!(
                        "chain {} operator {} vs {}",
                        a.id, a.operator, b.operator
                    ));
                }
            }
        }
        if out.is_empty() {
            "the genesis balances, keys or SL settings differ".into()
        } else {
            format!("stored vs requested: {}", out.join(", "))
        }
    }
}

/// Whether the datadir's initialisation finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitState {
    /// The identity was written, the databases may not be complete yet.
    Initialising,
    /// The databases were created: from now on they must exist.
    Ready,
}

/// The identity file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// [`IDENTITY_FORMAT`].
    pub format: u32,
    /// The network the datadir belongs to.
    pub network: NetworkIdentity,
    /// What it holds.
    pub role: Role,
    /// Whether its initialisation finished.
    pub state: InitState,
}

/// A datadir whose identity was checked (see the module docs).
#[derive(Debug)]
pub struct Datadir {
    path: PathBuf,
    identity: Identity,
}

fn io(action: &'static str, path: &Path, e: std::io::Error) -> DatadirError {
    DatadirError::Io {
        action,
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

impl Datadir {
    /// Opens `path` for `role` of `network`: initialises it if it does not exist or is empty,
    /// otherwise checks its identity and that its databases are there (see the module docs).
    pub fn open(
        path: impl Into<PathBuf>,
        network: &NetworkIdentity,
        role: Role,
    ) -> Result<Self, DatadirError> {
        let path = path.into();
        let file = path.join(IDENTITY_FILE);
        std::fs::create_dir_all(&path).map_err(|e| io("create datadir", &path, e))?;
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("read identity file", &file, e)),
        };
        let Some(text) = text else {
            let entries = foreign_entries(&path)?;
            if !entries.is_empty() {
                let shown = entries.iter().take(5).cloned().collect::<Vec<_>>();
                let more = entries.len().saturating_sub(shown.len());
                return Err(DatadirError::NotEmpty {
                    path,
                    entries: if more > 0 {
                        format!("{} and {more} more", shown.join(", "))
                    } else {
                        shown.join(", ")
                    },
                });
            }
            let datadir = Self {
                path,
                identity: Identity {
                    format: IDENTITY_FORMAT,
                    network: network.clone(),
                    role,
                    state: InitState::Initialising,
                },
            };
            datadir.write_identity()?;
            return Ok(datadir);
        };
        let bad = |reason: String| DatadirError::BadIdentity {
            path: file.clone(),
            reason,
        };
        // the format first: a later format may have other fields
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        match value.get("format").and_then(serde_json::Value::as_u64) {
            Some(f) if f == u64::from(IDENTITY_FORMAT) => {}
            Some(f) => {
                return Err(bad(format!(
                    "format {f} (this braid reads format {IDENTITY_FORMAT})"
                )))
            }
            None => return Err(bad("no format field".into())),
        }
        let identity: Identity = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        if identity.role != role {
            return Err(DatadirError::WrongRole {
                path,
                stored: identity.role,
                requested: role,
            });
        }
        if identity.network.id != network.id {
            return Err(DatadirError::ForeignNetwork {
                differences: identity.network.differences(network),
                path,
                stored: identity.network.id,
                requested: network.id,
            });
        }
        if identity.state == InitState::Ready {
            for name in role.databases(&network.chain_ids()) {
                let db = path.join(name);
                match std::fs::metadata(&db) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(DatadirError::MissingDatabase {
                            datadir: path,
                            role,
                            file: db,
                        })
                    }
                    Err(e) => return Err(io("read", &db, e)),
                    Ok(m) if m.len() == 0 => {
                        return Err(DatadirError::EmptyDatabase {
                            datadir: path,
                            role,
                            file: db,
                        })
                    }
                    Ok(_) => {}
                }
            }
        }
        Ok(Self { path, identity })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The identity (as on disk).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Whether the databases are still to be created (a new datadir, or an initialisation a
    /// crash interrupted): open them with `open` rather than `open_existing`.
    pub fn is_new(&self) -> bool {
        self.identity.state == InitState::Initialising
    }

    /// The path of a database file of this datadir.
    pub fn database(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Records that the databases exist: from now on a missing or empty one is refused. Call
    /// it once they are created and hold their first data (a chain's genesis block).
    pub fn mark_ready(&mut self) -> Result<(), DatadirError> {
        if self.identity.state == InitState::Ready {
            return Ok(());
        }
        self.identity.state = InitState::Ready;
        self.write_identity()
    }

    /// Checks that a chain database's genesis block is the network's.
    pub fn check_genesis(
        &self,
        chain: ChainId,
        stored: B256,
        file: &Path,
    ) -> Result<(), DatadirError> {
        match self.identity.network.genesis(chain) {
            Some(expected) if expected != stored => Err(DatadirError::GenesisMismatch {
                path: file.to_path_buf(),
                chain,
                stored,
                expected,
            }),
            _ => Ok(()),
        }
    }

    /// Opens chain `id` of the network `config` describes: its store (created in a new
    /// datadir, otherwise it must exist and hold the chain), with the genesis block persisted on
    /// first use and checked against the network's, and the sequencer resumed from it.
    pub fn open_chain(
        &self,
        config: &DevnetConfig,
        id: ChainId,
    ) -> Result<(ChainStore, Sequencer), NodeError> {
        let path = self.database(&chain_database(id));
        let store = if self.is_new() {
            ChainStore::open(&path, id)?
        } else {
            ChainStore::open_existing(&path, id)?
        };
        let seq_config = Devnet::sequencer_config(config, id);
        let seq = match store.load()? {
            Some(l) => Sequencer::restore(
                seq_config,
                l.state,
                l.head.header,
                l.open_batch,
                l.last_batch,
            )?,
            None => {
                let (seq, g) = Sequencer::genesis(seq_config, &Devnet::alloc(config))?;
                store.persist_block(&g.block, &g.receipts, &g.changes, None)?;
                seq
            }
        };
        let genesis = store
            .block(0)?
            .ok_or_else(|| braid_store::StoreError::Corrupt {
                what: "block",
                reason: format!("{}: genesis block missing", path.display()),
            })?;
        self.check_genesis(id, genesis.header.hash(), &path)?;
        Ok((store, seq))
    }

    /// Opens the settlement layer of the network `config` describes: its log (created in a
    /// new datadir, otherwise it must exist) replayed into a fresh core; returns the replay's
    /// events.
    pub fn open_sl(
        &self,
        config: &DevnetConfig,
    ) -> Result<(PersistentSl, Vec<SlEvent>), NodeError> {
        let path = self.database(SL_DATABASE);
        let sl_config = Devnet::sl_config(config)?;
        let proofs = Box::new(ReExecution::new());
        Ok(if self.is_new() {
            PersistentSl::open_with_events(path, sl_config, proofs)?
        } else {
            PersistentSl::open_existing_with_events(path, sl_config, proofs)?
        })
    }

    fn write_identity(&self) -> Result<(), DatadirError> {
        let tmp = self.path.join(IDENTITY_TMP);
        let file = self.path.join(IDENTITY_FILE);
        let mut text = serde_json::to_string_pretty(&self.identity).map_err(|e| {
            DatadirError::BadIdentity {
                path: file.clone(),
                reason: e.to_string(),
            }
        })?;
        text.push('\n');
        let mut f = std::fs::File::create(&tmp).map_err(|e| io("write", &tmp, e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| io("write", &tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, &file).map_err(|e| io("write", &file, e))?;
        std::fs::File::open(&self.path)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync", &self.path, e))
    }
}

/// The entries of `dir` other than `lost+found` and a leftover temporary identity file.
fn foreign_entries(dir: &Path) -> Result<Vec<String>, DatadirError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io("list datadir", dir, e))? {
        let entry = entry.map_err(|e| io("list datadir", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "lost+found" && name != IDENTITY_TMP {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}
