//! The chain's state: accounts, the messenger's storage, the outgoing message tree, and the
//! sparse Merkle tree that commits to all of it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_sol_types::SolValue;
use braid_merkle::MessageTree;
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
    /// The sparse-Merkle-tree value: a keccak of the ABI encoding (never zero).
    pub fn smt_value(&self) -> B256 {
        match self {
            StateValue::Account(a) => keccak256((a.nonce, a.balance).abi_encode()),
            StateValue::Executed(leaf) => *leaf,
            StateValue::Imported(r) => keccak256(r.abi_encode()),
            StateValue::Outbox { root, count } => keccak256((*root, *count).abi_encode()),
            StateValue::Totals(t) => {
                keccak256((t.genesis_supply, t.burned_fees, t.sent_out, t.received_in).abi_encode())
            }
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

    /// The current value of a state item.
    pub fn value(&self, key: &StateKey) -> Option<StateValue> {
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
        self.smt_dirty.insert(key);
        self.unpersisted.insert(key);
    }

    /// An account (default if it never received anything).
    pub fn account(&self, address: &Address) -> Account {
        self.accounts.get(address).copied().unwrap_or_default()
    }

    /// Number of accounts with a nonce or balance.
    pub fn account_count(&self) -> usize {
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
        self.executed.contains_key(id)
    }

    pub(crate) fn mark_executed(&mut self, id: MessageId, leaf: B256) {
        Arc::make_mut(&mut self.executed).insert(id, leaf);
        self.touch(StateKey::Executed(id));
    }

    /// The imported root under `key`, if imported.
    pub fn imported(&self, key: &ImportKey) -> Option<&ImportedRoot> {
        self.imported.get(key)
    }

    /// All imported roots.
    pub fn imports(&self) -> impl Iterator<Item = &ImportedRoot> + '_ {
        self.imported.values()
    }

    pub(crate) fn insert_import(&mut self, key: ImportKey, root: ImportedRoot) {
        Arc::make_mut(&mut self.imported).insert(key, root);
        self.touch(StateKey::Imported(key));
    }

    /// The outgoing message tree.
    pub fn outbox(&self) -> &MessageTree {
        &self.outbox
    }

    pub(crate) fn append_outgoing(&mut self, leaf: B256) -> Result<u64, ExecutionError> {
        let index = Arc::make_mut(&mut self.outbox)
            .append(leaf)
            .map_err(|_| ExecutionError::MessageTreeFull)?;
        self.touch(StateKey::Outbox);
        Ok(index)
    }

    /// The value totals.
    pub fn totals(&self) -> ValueTotals {
        self.totals
    }

    pub(crate) fn set_totals(&mut self, totals: ValueTotals) {
        self.totals = totals;
        self.touch(StateKey::Totals);
    }

    /// Checks `sum(balances) + burned + sent_out == genesis + received_in + deposited_in`.
    pub fn value_conserved(&self) -> bool {
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
    pub fn state_root(&mut self) -> B256 {
        if !self.smt_dirty.is_empty() {
            let dirty = std::mem::take(&mut self.smt_dirty);
            let updates: Vec<(B256, B256)> = dirty
                .iter()
                .map(|k| {
                    (
                        k.smt_key(),
                        self.value(k).map(|v| v.smt_value()).unwrap_or(B256::ZERO),
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
