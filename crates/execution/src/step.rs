//! The single-step verifier of optimistic settlement: stateless re-execution of one step of a
//! batch from Merkle witnesses of exactly the state it touches.
//!
//! # Steps and machine states
//!
//! A batch is cut into [`Step`]s ([`batch_steps`]): per block, its imports, then its deposits,
//! then its transactions, in the order [`crate::execute_block`] applies them; each step carries
//! the block's [`BlockEnv`] and whether it is the block's first step. Between steps the machine
//! is in a [`MachineState`]: `Running { state_root, block_gas_used }` (the gas used by earlier
//! transactions of the current block; a `first_in_block` step resets it to 0 before applying),
//! or `Invalid` once any item failed (an invalid block makes the batch invalid; `Invalid` stays
//! `Invalid`). The trace entries `s_i` of the dispute game are [`MachineState::commitment`]s:
//!
//! ```text
//! Running: keccak256(abi.encode(bytes32 stateRoot, uint64 blockGasUsed))
//! Invalid: keccak256("braid.optimistic.invalid-batch")
//! ```
//!
//! [`run_step`] / [`trace_batch`] execute with the full state (proposers, challengers);
//! [`step_witness`] records what one step touches and proves it; [`verify_step`] is what the
//! settlement layer runs: it rebuilds a *witness-mode* [`ChainState`] holding only the witnessed
//! items and runs the **same** transition code ([`apply_import`], [`apply_deposit`],
//! [`apply_transaction`]) on it. Every read or write of an item that is not in the witness is
//! recorded (behind a `Mutex`, so states stay `Sync`) and makes the verifier refuse the witness
//! with [`StepError::MissingWitness`]; nothing unwitnessed is ever silently read as absent. The
//! post-state root comes from a [`PartialSmt`] built from the witness proofs, updated with the
//! step's writes.
//!
//! The verifier executes for chain `step.env.chain_id` (a witness cannot prove which chain a
//! state belongs to): **the caller must check that it is the disputed chain.** [`run_step`]
//! treats a step whose `env.chain_id` differs from the state's chain as invalid, so the two
//! agree whenever that check holds.
//!
//! # Witness format ([`StepWitness`])
//!
//! * `entries`: one [`WitnessEntry`] `(key, value, proof)` per state item the step reads or
//!   writes — the sender's, recipient's and sequencer's [`StateKey::Account`]s,
//!   [`StateKey::Totals`], [`StateKey::Outbox`], [`StateKey::Executed`] of an executed message,
//!   [`StateKey::Imported`] of the root a message proof or an import refers to — sorted strictly
//!   ascending by `key` (so no duplicates). `value` is the item's value before the step (`None`
//!   = absent) and `proof` an [`SmtProof`] of `key.smt_key() ↦ value.smt_value()` (exclusion
//!   for `None`) against the pre-state root. The value's variant must match the key's.
//! * `outbox_frontier`: for a step that appends an outgoing message (`sendMessage`), the
//!   message tree's [`AppendWitness`] (the left siblings of the path of leaf `count`); it must
//!   match the witnessed `Outbox` entry (`size == count`, `root() == root`). `None` otherwise.
//!
//! A witness may hold more than the step touches (extra items cost calldata, nothing else); it
//! may not hold less. A step from an `Invalid` machine state needs no witness.
//!
//! # Cost ([`StepCost`])
//!
//! The verifier's work, as an on-chain implementation of the same algorithm would do it:
//! * keccak: per entry, the key derivation (`smt_key`, 32–128 bytes) and the value hash
//!   (`smt_value`, except `Executed`); every sparse-Merkle hash of proof verification and of
//!   the post-root update (65 bytes each, counted by the [`PartialSmt`]); the value hash of each
//!   written item; 66 hashes of 64 bytes to check and extend the outgoing-tree frontier; for a
//!   transaction, its hash, its signing hash (both counted as the raw length) and the recovered
//!   key's hash (64 bytes); for a messenger call, the message leaf and, for `executeMessage`,
//!   33 hashes of 64 bytes per level of the message proof (plus the batch leaf for two-level
//!   proofs);
//! * one ecrecover per transaction;
//! * `witness_bytes`: the calldata size of the witness in a plain ABI-style encoding. Per
//!   entry: 32 (key tag), plus the key's fields (Account 32, Executed 64, Imported 96, others
//!   0), plus 32 (present flag), plus the value's ABI encoding if present (Account 64,
//!   Executed 32, Imported 160, Outbox 64, Totals 192), plus 32 (sibling count), plus 32 per
//!   sibling, plus 32 (leaf tag), plus 64 if the proof ends at another key's leaf. The frontier
//!   adds 32 plus 32 per sibling. The step item itself (the transaction) comes from the
//!   batch's data and is not counted.
//!
//! [`StepCost::gas`] prices it like Ethereum: `21000 + 30 per keccak + 6 per 32-byte word
//! hashed (words = ceil(keccak_bytes / 32)) + 3000 per ecrecover + 16 per witness byte`.

use std::collections::BTreeSet;

use alloy_primitives::{keccak256, Bytes, B256};
use alloy_sol_types::{SolCall, SolValue};
use braid_merkle::{empty_root, AppendWitness, MerkleError};
use braid_primitives::{Block, Deposit, IMessenger, ImportKind, ImportedRoot, MESSENGER_ADDRESS};
use braid_state::{PartialSmt, PartialSmtError, SmtProof};
use serde::{Deserialize, Serialize};

use crate::state::{AccessRecord, WitnessContents};
use crate::{
    apply_deposit, apply_import, apply_transaction, BlockEnv, ChainState, ExecutionError,
    ImportKey, RecoveredTx, StateKey, StateValue, WitnessItem,
};

/// One item of a batch applied to state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepItem {
    /// A system transaction importing a root ([`apply_import`]).
    Import(ImportedRoot),
    /// A forced deposit from the settlement layer ([`apply_deposit`]).
    Deposit(Deposit),
    /// A raw signed user transaction ([`apply_transaction`]).
    Transaction(Bytes),
}

/// A step with its block context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The block the step belongs to.
    pub env: BlockEnv,
    /// Whether this is the block's first step (it resets the block's gas counter).
    pub first_in_block: bool,
    /// What the step applies.
    pub item: StepItem,
}

/// The steps of a batch in execution order: per block, its imports, then deposits, then
/// transactions (as [`crate::execute_block`] applies them). `first_in_block` marks the block's
/// first step. Empty blocks give no steps.
pub fn batch_steps(blocks: &[Block]) -> Vec<Step> {
    let mut steps = Vec::new();
    for block in blocks {
        let env = BlockEnv::from_header(&block.header);
        let items = block
            .imports
            .iter()
            .cloned()
            .map(StepItem::Import)
            .chain(block.deposits.iter().cloned().map(StepItem::Deposit))
            .chain(
                block
                    .transactions
                    .iter()
                    .cloned()
                    .map(StepItem::Transaction),
            );
        for (i, item) in items.enumerate() {
            steps.push(Step {
                env,
                first_in_block: i == 0,
                item,
            });
        }
    }
    steps
}

/// The machine state between steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MachineState {
    /// Every step so far was valid.
    Running {
        /// The state root.
        state_root: B256,
        /// Gas used by earlier transactions of the current block.
        block_gas_used: u64,
    },
    /// A step failed: the batch is invalid (absorbing).
    Invalid,
}

/// Domain string whose keccak is the commitment of [`MachineState::Invalid`].
pub const INVALID_BATCH_DOMAIN: &[u8] = b"braid.optimistic.invalid-batch";

impl MachineState {
    /// The trace entry `s_i`: `keccak256(abi.encode(bytes32 state_root, uint64 block_gas_used))`
    /// for `Running`, `keccak256("braid.optimistic.invalid-batch")` for `Invalid`.
    pub fn commitment(&self) -> B256 {
        match self {
            MachineState::Running {
                state_root,
                block_gas_used,
            } => keccak256((*state_root, *block_gas_used).abi_encode()),
            MachineState::Invalid => keccak256(INVALID_BATCH_DOMAIN),
        }
    }
}

/// Applies `step`'s item with `gas` already used in the block; returns the block gas after it.
/// The shared transition of [`run_step`], [`step_witness`] and [`verify_step`].
fn apply_step(state: &mut ChainState, step: &Step, gas: u64) -> Result<u64, ExecutionError> {
    apply_step_decoded(state, step, gas, &mut None)
}

/// [`apply_step`], keeping the decoded transaction (for cost accounting).
fn apply_step_decoded(
    state: &mut ChainState,
    step: &Step,
    gas: u64,
    decoded: &mut Option<RecoveredTx>,
) -> Result<u64, ExecutionError> {
    if step.env.chain_id != state.chain_id() {
        return Err(ExecutionError::WrongChainId {
            expected: state.chain_id(),
            got: step.env.chain_id,
        });
    }
    match &step.item {
        StepItem::Import(import) => apply_import(state, import).map(|()| gas),
        StepItem::Deposit(deposit) => apply_deposit(state, deposit).map(|()| gas),
        StepItem::Transaction(raw) => {
            let tx = decoded.insert(RecoveredTx::decode(raw)?);
            apply_transaction(state, &step.env, tx, gas).map(|r| r.cumulative_gas_used)
        }
    }
}

/// Block gas before `step` from the machine state (`None` for `Invalid`).
fn gas_before(machine: &MachineState, step: &Step) -> Option<u64> {
    match machine {
        MachineState::Running { block_gas_used, .. } => Some(if step.first_in_block {
            0
        } else {
            *block_gas_used
        }),
        MachineState::Invalid => None,
    }
}

/// Full-state execution for proposers and challengers: applies `step` to `state` (whose root is
/// `machine`'s). Any failing item makes the result `Invalid` (the state is then unchanged, and
/// irrelevant), and `Invalid` stays `Invalid` without touching the state.
pub fn run_step(state: &mut ChainState, machine: &MachineState, step: &Step) -> MachineState {
    let Some(gas) = gas_before(machine, step) else {
        return MachineState::Invalid;
    };
    match apply_step(state, step, gas) {
        Ok(block_gas_used) => MachineState::Running {
            state_root: state.state_root(),
            block_gas_used,
        },
        Err(_) => MachineState::Invalid,
    }
}

/// `s_0..s_n` for a batch starting from `state` (`s_0 = Running { state.state_root(), 0 }`), and
/// the final state.
pub fn trace_batch(state: &ChainState, steps: &[Step]) -> (Vec<MachineState>, ChainState) {
    let mut state = state.clone();
    let mut machine = MachineState::Running {
        state_root: state.state_root(),
        block_gas_used: 0,
    };
    let mut trace = Vec::with_capacity(steps.len() + 1);
    trace.push(machine);
    for step in steps {
        machine = run_step(&mut state, &machine, step);
        trace.push(machine);
    }
    (trace, state)
}

/// One witnessed state item: its value before the step and a proof against the pre-state root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessEntry {
    /// The item.
    pub key: StateKey,
    /// Its value before the step (`None` = absent).
    pub value: Option<StateValue>,
    /// Proof of `key.smt_key() ↦ value.smt_value()` (or absence) against the pre-state root.
    pub proof: SmtProof,
}

/// Everything [`verify_step`] needs besides the step; see the [module docs](self) for the
/// format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepWitness {
    /// The touched state items, strictly ascending by key.
    pub entries: Vec<WitnessEntry>,
    /// The outgoing tree's frontier, for a step that appends a message.
    pub outbox_frontier: Option<AppendWitness>,
}

impl StepWitness {
    /// The items this witness holds.
    pub fn items(&self) -> Vec<WitnessItem> {
        let mut items: Vec<WitnessItem> = self
            .entries
            .iter()
            .map(|e| WitnessItem::State(e.key))
            .collect();
        if self.outbox_frontier.is_some() {
            items.push(WitnessItem::OutboxFrontier);
        }
        items
    }

    /// Calldata size of the witness in the ABI-style encoding of the [module docs](self).
    pub fn encoded_len(&self) -> u64 {
        let entries: u64 = self
            .entries
            .iter()
            .map(|e| {
                let key = match e.key {
                    StateKey::Account(_) => 32,
                    StateKey::Executed(_) => 64,
                    StateKey::Imported(_) => 96,
                    StateKey::Outbox | StateKey::Totals => 0,
                };
                let value = e.value.as_ref().map_or(0, value_abi_len);
                let other_leaf = match e.proof.leaf {
                    Some((k, _)) if k != e.key.smt_key() => 64,
                    _ => 0,
                };
                32 + key + 32 + value + 32 + 32 * e.proof.siblings.len() as u64 + 32 + other_leaf
            })
            .sum();
        let frontier = self
            .outbox_frontier
            .as_ref()
            .map_or(0, |f| 32 + 32 * f.left_siblings.len() as u64);
        entries + frontier
    }
}

fn value_abi_len(value: &StateValue) -> u64 {
    match value {
        StateValue::Account(_) | StateValue::Outbox { .. } => 64,
        StateValue::Executed(_) => 32,
        StateValue::Imported(_) => 160,
        StateValue::Totals(_) => 192,
    }
}

fn key_preimage_len(key: &StateKey) -> u64 {
    match key {
        StateKey::Account(_) => 64,
        StateKey::Executed(_) => 96,
        StateKey::Imported(_) => 128,
        StateKey::Outbox | StateKey::Totals => 32,
    }
}

/// The witness needed to verify `step` statelessly from `pre_state` (the full state before the
/// step, whose root is `machine`'s): runs the step on a recording copy and proves every item it
/// touched. Empty for an `Invalid` machine state.
pub fn step_witness(pre_state: &ChainState, machine: &MachineState, step: &Step) -> StepWitness {
    let Some(gas) = gas_before(machine, step) else {
        return StepWitness::default();
    };
    let (mut recording, log) = pre_state.recording();
    let _ = apply_step(&mut recording, step, gas);
    drop(recording);
    let items = take_record(&log).items;
    let mut pre = pre_state.clone();
    let mut witness = StepWitness::default();
    for item in items {
        match item {
            WitnessItem::State(key) => {
                let (_, value, proof) = pre.prove(&key);
                witness.entries.push(WitnessEntry { key, value, proof });
            }
            WitnessItem::OutboxFrontier => {
                witness.outbox_frontier = Some(pre.outbox().append_witness());
            }
        }
    }
    witness
}

fn take_record(log: &std::sync::Mutex<AccessRecord>) -> AccessRecord {
    std::mem::take(&mut *log.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The verifier's work; see the [module docs](self) for what is counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCost {
    /// Number of keccak256 calls.
    pub keccak_calls: u64,
    /// Total bytes hashed.
    pub keccak_bytes: u64,
    /// Number of secp256k1 public-key recoveries.
    pub ecrecovers: u64,
    /// Calldata size of the witness ([`StepWitness::encoded_len`]).
    pub witness_bytes: u64,
}

/// Base cost of a verifier transaction.
pub const STEP_BASE_GAS: u64 = 21_000;
/// Gas per keccak call.
pub const KECCAK_GAS: u64 = 30;
/// Gas per 32-byte word hashed.
pub const KECCAK_WORD_GAS: u64 = 6;
/// Gas per ecrecover.
pub const ECRECOVER_GAS: u64 = 3_000;
/// Gas per calldata byte (non-zero byte price).
pub const CALLDATA_BYTE_GAS: u64 = 16;

impl StepCost {
    fn keccak(&mut self, bytes: u64) {
        self.keccak_calls += 1;
        self.keccak_bytes += bytes;
    }

    fn keccaks(&mut self, calls: u64, bytes_each: u64) {
        self.keccak_calls += calls;
        self.keccak_bytes += calls * bytes_each;
    }

    /// Ethereum-like gas of the verification: `21000 + 30 × keccak_calls + 6 ×
    /// ceil(keccak_bytes / 32) + 3000 × ecrecovers + 16 × witness_bytes` (per-call word rounding
    /// is ignored, every calldata byte is priced as non-zero).
    pub fn gas(&self) -> u64 {
        let words = self.keccak_bytes.div_ceil(32);
        STEP_BASE_GAS
            .saturating_add(KECCAK_GAS.saturating_mul(self.keccak_calls))
            .saturating_add(KECCAK_WORD_GAS.saturating_mul(words))
            .saturating_add(ECRECOVER_GAS.saturating_mul(self.ecrecovers))
            .saturating_add(CALLDATA_BYTE_GAS.saturating_mul(self.witness_bytes))
    }
}

/// Why [`verify_step`] refused a witness. An invalid *step* is not an error (it gives
/// [`MachineState::Invalid`]); these all mean the witness cannot decide the step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The step touches an item the witness does not hold.
    #[error("the step touches {item:?}, which the witness does not hold")]
    MissingWitness {
        /// The first such item.
        item: WitnessItem,
    },
    /// An entry's proof does not verify against the pre-state root (wrong pre-state, tampered
    /// proof or value).
    #[error("witness entry {key:?} does not verify against the pre-state root: {source}")]
    BadProof {
        /// The entry.
        key: StateKey,
        /// Why.
        source: PartialSmtError,
    },
    /// Entries not strictly ascending by key.
    #[error("witness entries are not strictly ascending at {key:?}")]
    UnsortedEntries {
        /// The first out-of-order (or repeated) key.
        key: StateKey,
    },
    /// An entry whose value variant does not match its key (or an import record stored under
    /// another key).
    #[error("witness entry {key:?} holds a value of another kind")]
    ValueKindMismatch {
        /// The entry.
        key: StateKey,
    },
    /// A frontier without an `Outbox` entry to check it against.
    #[error("the witness holds an outgoing-tree frontier but no Outbox entry")]
    FrontierWithoutOutbox,
    /// The frontier does not match the witnessed outgoing tree.
    #[error("the outgoing-tree frontier does not match the Outbox entry: {0}")]
    BadFrontier(MerkleError),
    /// The step needed more than any witness can hold (a transition bug, not a witness problem).
    #[error("the step needs more than a witness can hold: {what}")]
    Unsupported {
        /// The operation.
        what: &'static str,
    },
    /// Writing the step's changes into the partial tree failed.
    #[error("cannot apply the write of {key:?} to the witnessed tree: {source}")]
    PostState {
        /// The written item.
        key: StateKey,
        /// Why.
        source: PartialSmtError,
    },
}

fn kind_matches(key: &StateKey, value: &StateValue) -> bool {
    match (key, value) {
        (StateKey::Account(_), StateValue::Account(_))
        | (StateKey::Executed(_), StateValue::Executed(_))
        | (StateKey::Outbox, StateValue::Outbox { .. })
        | (StateKey::Totals, StateValue::Totals(_)) => true,
        (StateKey::Imported(k), StateValue::Imported(r)) => ImportKey::of(r).ok() == Some(*k),
        _ => false,
    }
}

/// The stateless verifier (what the settlement layer runs): from the agreed pre machine state
/// and the witness, the post machine state and the cost.
///
/// `Err` only for a bad witness (a proof that does not verify against the pre-state root, a
/// touched item missing, a malformed witness); an invalid step gives `Ok(Invalid)`. From
/// `Invalid` it returns `Ok(Invalid)` without looking at the witness. The step runs for chain
/// `step.env.chain_id`: the caller must check that it is the disputed chain.
pub fn verify_step(
    pre: &MachineState,
    step: &Step,
    witness: &StepWitness,
) -> Result<(MachineState, StepCost), StepError> {
    let MachineState::Running { state_root, .. } = pre else {
        return Ok((MachineState::Invalid, StepCost::default()));
    };
    let gas = gas_before(pre, step).unwrap_or_default();
    let mut cost = StepCost {
        witness_bytes: witness.encoded_len(),
        ..StepCost::default()
    };

    // 1. Check the entries and build the partial tree and the witnessed contents.
    let mut smt = PartialSmt::new(*state_root);
    let mut contents = WitnessContents::default();
    let mut outbox: Option<(B256, u64)> = None;
    let mut previous: Option<StateKey> = None;
    for entry in &witness.entries {
        let key = entry.key;
        if previous.is_some_and(|p| p >= key) {
            return Err(StepError::UnsortedEntries { key });
        }
        previous = Some(key);
        if let Some(value) = &entry.value {
            if !kind_matches(&key, value) {
                return Err(StepError::ValueKindMismatch { key });
            }
            if !matches!(value, StateValue::Executed(_)) {
                cost.keccak(value_abi_len(value));
            }
        }
        cost.keccak(key_preimage_len(&key));
        smt.add_proof(
            key.smt_key(),
            entry.value.as_ref().map(StateValue::smt_value),
            &entry.proof,
        )
        .map_err(|source| StepError::BadProof { key, source })?;
        match (key, entry.value.clone()) {
            (StateKey::Account(a), Some(StateValue::Account(acct))) => {
                contents.accounts.insert(a, acct);
            }
            (StateKey::Executed(id), Some(StateValue::Executed(leaf))) => {
                contents.executed.insert(id, leaf);
            }
            (StateKey::Imported(k), Some(StateValue::Imported(r))) => {
                contents.imported.insert(k, r);
            }
            (StateKey::Totals, Some(StateValue::Totals(t))) => contents.totals = t,
            (StateKey::Outbox, Some(StateValue::Outbox { root, count })) => {
                outbox = Some((root, count));
            }
            // A proven-absent outgoing tree is the empty one.
            (StateKey::Outbox, None) => outbox = Some((empty_root(), 0)),
            // Proven absent: the witness-mode state reads it as absent/default.
            _ => {}
        }
    }
    if let Some((root, count)) = outbox {
        contents.outbox_root = root;
        contents.outbox_count = count;
    }

    // 2. The frontier must be that of the witnessed outgoing tree.
    if let Some(frontier) = &witness.outbox_frontier {
        let (root, count) = outbox.ok_or(StepError::FrontierWithoutOutbox)?;
        if frontier.size != count {
            return Err(StepError::BadFrontier(MerkleError::SizeOutOfRange {
                size: frontier.size,
                len: count,
            }));
        }
        let computed = frontier.root().map_err(StepError::BadFrontier)?;
        cost.keccaks(33, 64);
        if computed != root {
            return Err(StepError::BadFrontier(MerkleError::AppendRootMismatch {
                expected: root,
                computed,
            }));
        }
        contents.frontier = Some(frontier.clone());
    }

    let verification_hashes = smt.hash_count();
    cost.keccaks(verification_hashes, 65);

    // 3. Run the step on the witness-mode state: the same transition as full execution.
    let allowed: BTreeSet<WitnessItem> = witness.items().into_iter().collect();
    let (mut state, log) = ChainState::from_witness(step.env.chain_id, contents);
    let mut decoded = None;
    let result = apply_step_decoded(&mut state, step, gas, &mut decoded);
    add_execution_cost(&mut cost, step, decoded.as_ref());
    let record = take_record(&log);
    if let Some(what) = record.unsupported {
        return Err(StepError::Unsupported { what });
    }
    if let Some(item) = record.items.iter().find(|i| !allowed.contains(i)) {
        return Err(StepError::MissingWitness { item: *item });
    }
    if record.items.contains(&WitnessItem::OutboxFrontier) {
        cost.keccaks(33, 64); // the new root after the append
    }
    let block_gas_used = match result {
        Ok(gas) => gas,
        Err(_) => return Ok((MachineState::Invalid, cost)),
    };

    // 4. The post-state root: the step's writes applied to the partial tree.
    for (key, value) in state.dirty_values() {
        let smt_value = match &value {
            Some(v) => {
                if !matches!(v, StateValue::Executed(_)) {
                    cost.keccak(value_abi_len(v));
                }
                v.smt_value()
            }
            None => B256::ZERO,
        };
        smt.insert(key.smt_key(), smt_value)
            .map_err(|source| StepError::PostState { key, source })?;
    }
    cost.keccaks(smt.hash_count() - verification_hashes, 65);
    Ok((
        MachineState::Running {
            state_root: smt.root(),
            block_gas_used,
        },
        cost,
    ))
}

/// Transaction decoding and messenger hashing of a step (see the [module docs](self)).
fn add_execution_cost(cost: &mut StepCost, step: &Step, decoded: Option<&RecoveredTx>) {
    let StepItem::Transaction(raw) = &step.item else {
        return;
    };
    let len = raw.len() as u64;
    cost.ecrecovers += 1;
    cost.keccak(len); // transaction hash
    cost.keccak(len); // signing hash
    cost.keccak(64); // address of the recovered key
    let Some(tx) = decoded else {
        return;
    };
    if tx.to() != Some(MESSENGER_ADDRESS) {
        return;
    }
    let input = tx.input();
    if let Ok(c) = IMessenger::sendMessageCall::abi_decode(input) {
        cost.keccak(message_len(c.payload.len()));
    } else if let Ok(c) = IMessenger::sendMessageWithModeCall::abi_decode(input) {
        cost.keccak(message_len(c.payload.len()));
    } else if let Ok(c) = IMessenger::executeMessageCall::abi_decode(input) {
        cost.keccak(message_len(c.message.payload.len()));
        cost.keccaks(33, 64);
        if c.proof.kind == ImportKind::Proof as u8 {
            cost.keccak(128); // the batch leaf of the SL message root
            cost.keccaks(33, 64);
        }
    }
}

/// ABI length of a `Message` with a payload of `payload` bytes (`abi.encode(message)`).
fn message_len(payload: usize) -> u64 {
    // the struct's offset word, its 8 head words (one the payload offset), the payload's length
    // word and the padded payload
    (32 + 8 * 32 + 32 + payload.div_ceil(32) * 32) as u64
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
#[path = "step_tests.rs"]
mod tests;
