//! The chain's state: accounts, the messenger's storage, the outgoing message tree, and the
//! sparse Merkle tree that commits to all of it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_sol_types::SolValue;
use braid_merkle::{AppendWitness, MessageTree};
use braid_primitives::{ChainId, ImportKind, ImportedRoot, MessageId};
use braid_state::{SmtProof, SparseMerkleTree};
use serde::{Deserialize, Serialize};

use crate::ExecutionError;

/// An externally owned account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Number of transactions sent.
    pub nonce: u64,
    /// Balance in wei.
    pub balance: U256,
}

/// Where an imported root is stored: its kind, source chain and root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ImportKey {
    /// The interop mode.
    pub kind: ImportKind,
    /// The source chain (the SL's id for `proof` imports).
    pub source_chain: ChainId,
    /// The imported root.
    pub root: B256,
}

impl ImportKey {
    /// The key under which `import` is stored.
    pub fn of(import: &ImportedRoot) -> Result<Self, ExecutionError> {
        let kind = import
            .import_kind()
            .map_err(|e| ExecutionError::InvalidImport {
                reason: e.to_string(),
            })?;
        Ok(Self {
            kind,
            source_chain: import.sourceChain,
            root: import.root,
        })
    }
}

/// Running value totals of the chain, for settlement accounting and the conservation check:
/// `sum(balances) + burned_fees + sent_out == genesis_supply + received_in + deposited_in`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueTotals {
    /// Value created at genesis.
    pub genesis_supply: U256,
    /// Base fees burned (owed to the settlement layer).
    pub burned_fees: U256,
    /// Value that left the chain with outgoing messages.
    pub sent_out: U256,
    /// Value that arrived with executed incoming messages.
    pub received_in: U256,
    /// Value that arrived with deposits from the settlement layer.
    pub deposited_in: U256,
    /// Number of SL deposits applied (the next deposit's index).
    pub deposit_count: u64,
}

/// One addressable item of state; each maps to one key of the sparse Merkle tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StateKey {
    /// An account.
    Account(Address),
    /// The executed-marker of an incoming message.
    Executed(MessageId),
    /// An imported root.
    Imported(ImportKey),
    /// The outgoing message tree's current root.
    Outbox,
    /// The value totals.
    Totals,
}

/// The value stored under a [`StateKey`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateValue {
    /// An account.
    Account(Account),
    /// The executed message's leaf hash.
    Executed(B256),
    /// The imported root record.
    Imported(ImportedRoot),
    /// Root and size of the outgoing tree.
    Outbox {
        /// Current root.
        root: B256,
        /// Number of messages.
        count: u64,
    },
    /// The value totals.
    Totals(ValueTotals),
}

impl StateKey {
    /// The sparse-Merkle-tree key: `keccak256(abi.encode(uint64 domain, ...))`.
    pub fn smt_key(&self) -> B256 {
        match self {
            StateKey::Account(a) => keccak256((0u64, *a).abi_encode()),
            StateKey::Executed(id) => keccak256((1u64, id.source_chain, id.nonce).abi_encode()),
            StateKey::Imported(k) => {
                keccak256((2u64, k.kind as u64, k.source_chain, k.root).abi_encode())
            }
            StateKey::Outbox => keccak256((3u64,).abi_encode()),
            StateKey::Totals => keccak256((4u64,).abi_encode()),
        }
    }
}

impl StateValue {
    /// The sparse-Merkle-tree value: a keccak of the ABI encoding (never zero):
    /// `Account`: `keccak256(abi.encode(uint64 nonce, uint256 balance))`; `Executed`: the
    /// message leaf itself; `Imported`: `keccak256(abi.encode(ImportedRoot))`; `Outbox`:
    /// `keccak256(abi.encode(bytes32 root, uint64 count))`; `Totals`:
    /// `keccak256(abi.encode(uint256 genesisSupply, uint256 burnedFees, uint256 sentOut,
    /// uint256 receivedIn, uint256 depositedIn, uint64 depositCount))`.
    pub fn smt_value(&self) -> B256 {
        match self {
            StateValue::Account(a) => keccak256((a.nonce, a.balance).abi_encode()),
            StateValue::Executed(leaf) => *leaf,
            StateValue::Imported(r) => keccak256(r.abi_encode()),
            StateValue::Outbox { root, count } => keccak256((*root, *count).abi_encode()),
            StateValue::Totals(t) => keccak256(
                (
                    t.genesis_supply,
                    t.burned_fees,
                    t.sent_out,
                    t.received_in,
                    t.deposited_in,
                    t.deposit_count,
                )
                    .abi_encode(),
            ),
        }
    }
}

/// The whole state of one chain.
///
/// The large parts are shared copy-on-write (`Arc`, written through `Arc::make_mut`): cloning a
/// state — a sequencer's checkpoint per batch, the SL's re-execution of each batch — costs a few
/// reference counts, and only the parts a later block writes are copied, once.
#[derive(Debug, Clone)]
pub struct ChainState {
    chain_id: ChainId,
    accounts: Arc<BTreeMap<Address, Account>>,
    executed: Arc<BTreeMap<MessageId, B256>>,
    imported: Arc<BTreeMap<ImportKey, ImportedRoot>>,
    outbox: Arc<MessageTree>,
    totals: ValueTotals,
    smt: Arc<SparseMerkleTree>,
    /// Keys changed since the sparse Merkle tree was last updated.
    smt_dirty: BTreeSet<StateKey>,
    /// Keys changed since the store last took the changes.
    unpersisted: BTreeSet<StateKey>,
    /// Outgoing-tree size the store has persisted.
    persisted_outbox_len: u64,
    /// Access recording for single-step witnesses (`None` for ordinary states).
    instrument: Option<Instrument>,
}

/// An item a step's witness must hold: a state item (with its proof), or the outgoing tree's
/// frontier (to append a message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WitnessItem {
    /// A state item, read or written.
    State(StateKey),
    /// The outgoing message tree's frontier, for an append.
    OutboxFrontier,
}

/// What an instrumented state saw.
#[derive(Debug, Default)]
pub(crate) struct AccessRecord {
    /// Every item read or written.
    pub(crate) items: BTreeSet<WitnessItem>,
    /// The first operation that needs more than a witness can hold (e.g. the whole outgoing tree).
    pub(crate) unsupported: Option<&'static str>,
}

/// Access recording of a state, shared by its clones (a `Mutex`, so the state stays `Sync`).
#[derive(Debug, Clone)]
struct Instrument {
    log: Arc<Mutex<AccessRecord>>,
    /// `Some` in witness mode: the state holds only witnessed items.
    witness: Option<WitnessBacking>,
}

/// The outgoing tree of a witness-mode state: known by root and count, plus the frontier if
/// the witness holds it.
#[derive(Debug, Clone)]
struct WitnessBacking {
    outbox_root: B256,
    outbox_count: u64,
    frontier: Option<AppendWitness>,
}

impl Instrument {
    fn with_log<R>(&self, f: impl FnOnce(&mut AccessRecord) -> R) -> R {
        // A poisoned lock only means another thread panicked while recording; the record itself
        // is still a valid set.
        let mut guard = self.log.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }
}

/// Witnessed contents of a state for [`ChainState::from_witness`].
#[derive(Debug, Clone, Default)]
pub(crate) struct WitnessContents {
    pub(crate) accounts: BTreeMap<Address, Account>,
    pub(crate) executed: BTreeMap<MessageId, B256>,
    pub(crate) imported: BTreeMap<ImportKey, ImportedRoot>,
    pub(crate) totals: ValueTotals,
    pub(crate) outbox_root: B256,
    pub(crate) outbox_count: u64,
    pub(crate) frontier: Option<AppendWitness>,
}

/// Changes to persist after a block: changed keys with their new values (`None` = deleted) and
/// newly appended outgoing leaves starting at `outbox_from`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateChanges {
    /// Changed items.
    pub entries: Vec<(StateKey, Option<StateValue>)>,
    /// Index of the first new outgoing leaf.
    pub outbox_from: u64,
    /// New outgoing leaves.
    pub outbox_leaves: Vec<B256>,
}

impl ChainState {
    /// Genesis state: `alloc` balances, nothing else.
    pub fn genesis(chain_id: ChainId, alloc: &[(Address, U256)]) -> Self {
        let mut state = Self {
            chain_id,
            accounts: Arc::default(),
            executed: Arc::default(),
            imported: Arc::default(),
            outbox: Arc::default(),
            totals: ValueTotals::default(),
            smt: Arc::new(SparseMerkleTree::new()),
            smt_dirty: BTreeSet::new(),
            unpersisted: BTreeSet::new(),
            persisted_outbox_len: 0,
            instrument: None,
        };
        for (addr, amount) in alloc {
            let acct = Arc::make_mut(&mut state.accounts).entry(*addr).or_default();
            acct.balance = acct.balance.saturating_add(*amount);
            state.totals.genesis_supply = state.totals.genesis_supply.saturating_add(*amount);
            state.touch(StateKey::Account(*addr));
        }
        state.touch(StateKey::Outbox);
        state.touch(StateKey::Totals);
        state
    }

    /// Rebuilds a state from persisted items and outgoing leaves (after a restart).
    pub fn restore(
        chain_id: ChainId,
        entries: impl IntoIterator<Item = (StateKey, StateValue)>,
        outbox_leaves: impl IntoIterator<Item = B256>,
    ) -> Result<Self, ExecutionError> {
        let outbox = MessageTree::from_leaves(outbox_leaves)?;
        let mut state = Self {
            chain_id,
            accounts: Arc::default(),
            executed: Arc::default(),
            imported: Arc::default(),
            persisted_outbox_len: outbox.len(),
            outbox: Arc::new(outbox),
            totals: ValueTotals::default(),
            smt: Arc::new(SparseMerkleTree::new()),
            smt_dirty: BTreeSet::new(),
            unpersisted: BTreeSet::new(),
            instrument: None,
        };
        for (key, value) in entries {
            match (key, value) {
                (StateKey::Account(a), StateValue::Account(acct)) => {
                    Arc::make_mut(&mut state.accounts).insert(a, acct);
                }
                (StateKey::Executed(id), StateValue::Executed(leaf)) => {
                    Arc::make_mut(&mut state.executed).insert(id, leaf);
                }
                (StateKey::Imported(k), StateValue::Imported(r)) => {
                    Arc::make_mut(&mut state.imported).insert(k, r);
                }
                (StateKey::Totals, StateValue::Totals(t)) => state.totals = t,
                (StateKey::Outbox, StateValue::Outbox { .. }) => {}
                (k, v) => {
                    return Err(ExecutionError::InvalidImport {
                        reason: format!("persisted state item {k:?} holds {v:?}"),
                    })
                }
            }
        }
        let leaves: Vec<(B256, B256)> = state
            .all_keys()
            .into_iter()
            .filter_map(|k| state.value(&k).map(|v| (k.smt_key(), v.smt_value())))
            .collect();
        state.smt = Arc::new(SparseMerkleTree::from_leaves(leaves));
        Ok(state)
    }

    fn all_keys(&self) -> Vec<StateKey> {
        let mut keys: Vec<StateKey> = self
            .accounts
            .keys()
            .map(|a| StateKey::Account(*a))
            .collect();
        keys.extend(self.executed.keys().map(|id| StateKey::Executed(*id)));
        keys.extend(self.imported.keys().map(|k| StateKey::Imported(*k)));
        keys.push(StateKey::Outbox);
        keys.push(StateKey::Totals);
        keys
    }

    /// The chain this state belongs to.
    pub fn chain_id(&self) -> ChainId {
        self.chain_id
    }

    /// A copy of this state that records every item it reads or writes (for
    /// [`crate::step_witness`]). The record is shared by the copy's clones.
    pub(crate) fn recording(&self) -> (Self, Arc<Mutex<AccessRecord>>) {
        let log = Arc::new(Mutex::new(AccessRecord::default()));
        let mut state = self.clone();
        state.instrument = Some(Instrument {
            log: Arc::clone(&log),
            witness: None,
        });
        (state, log)
    }

    /// A state holding only the witnessed items (witness mode, for [`crate::verify_step`]):
    /// reads of anything else are recorded (and read as absent) so the verifier can refuse the
    /// witness; the sparse Merkle tree is not available (the verifier keeps a partial one).
    pub(crate) fn from_witness(
        chain_id: ChainId,
        contents: WitnessContents,
    ) -> (Self, Arc<Mutex<AccessRecord>>) {
        let log = Arc::new(Mutex::new(AccessRecord::default()));
        let state = Self {
            chain_id,
            accounts: Arc::new(contents.accounts),
            executed: Arc::new(contents.executed),
            imported: Arc::new(contents.imported),
            outbox: Arc::default(),
            totals: contents.totals,
            smt: Arc::new(SparseMerkleTree::new()),
            smt_dirty: BTreeSet::new(),
            unpersisted: BTreeSet::new(),
            persisted_outbox_len: 0,
            instrument: Some(Instrument {
                log: Arc::clone(&log),
                witness: Some(WitnessBacking {
                    outbox_root: contents.outbox_root,
                    outbox_count: contents.outbox_count,
                    frontier: contents.frontier,
                }),
            }),
        };
        (state, log)
    }

    /// Keys written since the sparse Merkle tree was last updated, with their current values
    /// (`None` = absent). Does not record accesses.
    pub(crate) fn dirty_values(&self) -> Vec<(StateKey, Option<StateValue>)> {
        self.smt_dirty.iter().map(|k| (*k, self.peek(k))).collect()
    }

    fn note(&self, item: WitnessItem) {
        if let Some(i) = &self.instrument {
            i.with_log(|r| {
                r.items.insert(item);
            });
        }
    }

    fn note_unsupported(&self, what: &'static str) {
        if let Some(i) = &self.instrument {
            i.with_log(|r| {
                r.unsupported.get_or_insert(what);
            });
        }
    }

    fn witness_backing(&self) -> Option<&WitnessBacking> {
        self.instrument.as_ref().and_then(|i| i.witness.as_ref())
    }

    /// The current value of a state item.
    pub fn value(&self, key: &StateKey) -> Option<StateValue> {
        self.note(WitnessItem::State(*key));
        self.peek(key)
    }

    /// [`Self::value`] without recording the access.
    fn peek(&self, key: &StateKey) -> Option<StateValue> {
        if let (StateKey::Outbox, Some(w)) = (key, self.witness_backing()) {
            return Some(StateValue::Outbox {
                root: w.outbox_root,
                count: w.outbox_count,
            });
        }
        match key {
            StateKey::Account(a) => self.accounts.get(a).map(|x| StateValue::Account(*x)),
            StateKey::Executed(id) => self.executed.get(id).map(|l| StateValue::Executed(*l)),
            StateKey::Imported(k) => self
                .imported
                .get(k)
                .map(|r| StateValue::Imported(r.clone())),
            StateKey::Outbox => Some(StateValue::Outbox {
                root: self.outbox.root(),
                count: self.outbox.len(),
            }),
            StateKey::Totals => Some(StateValue::Totals(self.totals)),
        }
    }

    pub(crate) fn touch(&mut self, key: StateKey) {
        self.note(WitnessItem::State(key));
        self.smt_dirty.insert(key);
        self.unpersisted.insert(key);
    }

    /// An account (default if it never received anything).
    pub fn account(&self, address: &Address) -> Account {
        self.note(WitnessItem::State(StateKey::Account(*address)));
        self.accounts.get(address).copied().unwrap_or_default()
    }

    /// Number of accounts with a nonce or balance.
    pub fn account_count(&self) -> usize {
        self.note_unsupported("counting all accounts");
        self.accounts.len()
    }

    pub(crate) fn set_account(&mut self, address: Address, account: Account) {
        if account == Account::default() {
            Arc::make_mut(&mut self.accounts).remove(&address);
        } else {
            Arc::make_mut(&mut self.accounts).insert(address, account);
        }
        self.touch(StateKey::Account(address));
    }

    /// Whether a message id executed on this chain.
    pub fn is_executed(&self, id: &MessageId) -> bool {
        self.note(WitnessItem::State(StateKey::Executed(*id)));
        self.executed.contains_key(id)
    }

    pub(crate) fn mark_executed(&mut self, id: MessageId, leaf: B256) {
        Arc::make_mut(&mut self.executed).insert(id, leaf);
        self.touch(StateKey::Executed(id));
    }

    /// The imported root under `key`, if imported.
    pub fn imported(&self, key: &ImportKey) -> Option<&ImportedRoot> {
        self.note(WitnessItem::State(StateKey::Imported(*key)));
        self.imported.get(key)
    }

    /// All imported roots.
    pub fn imports(&self) -> impl Iterator<Item = &ImportedRoot> + '_ {
        self.note_unsupported("iterating all imports");
        self.imported.values()
    }

    pub(crate) fn insert_import(&mut self, key: ImportKey, root: ImportedRoot) {
        Arc::make_mut(&mut self.imported).insert(key, root);
        self.touch(StateKey::Imported(key));
    }

    /// The outgoing message tree.
    ///
    /// Not available in a single-step verifier's witness-mode state (which knows the tree only
    /// by root and size): there the access is recorded as unsupported and an empty tree returned.
    pub fn outbox(&self) -> &MessageTree {
        self.note_unsupported("reading the whole outgoing tree");
        &self.outbox
    }

    /// Number of outgoing messages (the next message's nonce).
    pub fn outbox_len(&self) -> u64 {
        self.note(WitnessItem::State(StateKey::Outbox));
        match self.witness_backing() {
            Some(w) => w.outbox_count,
            None => self.outbox.len(),
        }
    }

    pub(crate) fn append_outgoing(&mut self, leaf: B256) -> Result<u64, ExecutionError> {
        self.note(WitnessItem::OutboxFrontier);
        if let Some(w) = self.instrument.as_mut().and_then(|i| i.witness.as_mut()) {
            // Witness mode: append through the frontier (its absence is recorded above and makes
            // the verifier refuse the witness).
            let frontier = w.frontier.as_mut().ok_or(ExecutionError::MessageTreeFull)?;
            let index = frontier
                .append(leaf)
                .map_err(|_| ExecutionError::MessageTreeFull)?;
            let root = match frontier.root() {
                Ok(root) => root,
                // The tree just became full (2^32 leaves): only the full tree knows the root.
                Err(_) => return Err(ExecutionError::MessageTreeFull),
            };
            w.outbox_root = root;
            w.outbox_count = index + 1;
            self.touch(StateKey::Outbox);
            return Ok(index);
        }
        let index = Arc::make_mut(&mut self.outbox)
            .append(leaf)
            .map_err(|_| ExecutionError::MessageTreeFull)?;
        self.touch(StateKey::Outbox);
        Ok(index)
    }

    /// The value totals.
    pub fn totals(&self) -> ValueTotals {
        self.note(WitnessItem::State(StateKey::Totals));
        self.totals
    }

    pub(crate) fn set_totals(&mut self, totals: ValueTotals) {
        self.totals = totals;
        self.touch(StateKey::Totals);
    }

    /// Checks `sum(balances) + burned + sent_out == genesis + received_in + deposited_in`.
    pub fn value_conserved(&self) -> bool {
        self.note_unsupported("summing all balances");
        let balances = self
            .accounts
            .values()
            .fold(U256::ZERO, |s, a| s.saturating_add(a.balance));
        let t = self.totals;
        balances
            .saturating_add(t.burned_fees)
            .saturating_add(t.sent_out)
            == t.genesis_supply
                .saturating_add(t.received_in)
                .saturating_add(t.deposited_in)
    }

    /// Brings the sparse Merkle tree up to date and returns the state root.
    ///
    /// In a single-step verifier's witness-mode state the tree is not available: the call is
    /// recorded as unsupported and returns zero (the verifier computes the root from its partial
    /// tree instead).
    pub fn state_root(&mut self) -> B256 {
        if self.witness_backing().is_some() {
            self.note_unsupported("computing the state root from the full tree");
            return B256::ZERO;
        }
        if !self.smt_dirty.is_empty() {
            let dirty = std::mem::take(&mut self.smt_dirty);
            let updates: Vec<(B256, B256)> = dirty
                .iter()
                .map(|k| {
                    (
                        k.smt_key(),
                        self.peek(k).map(|v| v.smt_value()).unwrap_or(B256::ZERO),
                    )
                })
                .collect();
            Arc::make_mut(&mut self.smt).apply_batch(updates);
        }
        self.smt.root()
    }

    /// A proof of one state item against [`ChainState::state_root`] (call that first).
    pub fn prove(&mut self, key: &StateKey) -> (B256, Option<StateValue>, SmtProof) {
        let root = self.state_root();
        (root, self.value(key), self.smt.prove(&key.smt_key()))
    }

    /// Takes everything changed since the last call, for the store to persist.
    pub fn take_changes(&mut self) -> StateChanges {
        let keys = std::mem::take(&mut self.unpersisted);
        let entries = keys.into_iter().map(|k| (k, self.value(&k))).collect();
        let from = self.persisted_outbox_len;
        let leaves = self
            .outbox
            .leaves()
            .get(from as usize..)
            .unwrap_or_default()
            .to_vec();
        self.persisted_outbox_len = self.outbox.len();
        StateChanges {
            entries,
            outbox_from: from,
            outbox_leaves: leaves,
        }
    }
}
