//! Braid's native state transition: signed transactions, value transfers and the messenger.
//!
//! A chain's state ([`ChainState`]) holds accounts, the messenger system contract's storage
//! (imported roots, executed message ids), the outgoing message tree, and value totals; a keccak
//! sparse Merkle tree commits to all of it ([`ChainState::state_root`]).
//!
//! Users send standard signed EIP-1559 or legacy EIP-155 transactions ([`RecoveredTx::decode`]).
//! [`apply_transaction`] checks chain id, nonce, gas and fees, then either transfers value or
//! calls the messenger at [`MESSENGER_ADDRESS`] (`sendMessage` / `executeMessage`, Solidity ABI
//! in [`braid_primitives::IMessenger`]). A rejected transaction returns a typed
//! [`ExecutionError`] and leaves the state exactly as it was: every check runs before the first
//! write. Imported roots arrive as system transactions ([`apply_import`]).
//!
//! Fees follow EIP-1559: the sender pays `gas_used × (base_fee + tip)`; the base-fee part is
//! burned on the chain and owed to the settlement layer ([`ValueTotals::burned_fees`]); the tip
//! goes to the block's sequencer.
//!
//! Optimistic settlement re-executes one step of a batch statelessly from Merkle witnesses: see
//! [`verify_step`] and the `step` module docs ([`StepWitness`] format, [`StepCost`]).

mod error;
mod messenger;
mod state;
pub mod step;
mod tx;

pub use error::ExecutionError;
pub use messenger::{
    aggregated_proof, single_level_proof, two_level_proof, verify_message_proof,
    EXECUTE_GAS_PER_SIBLING, EXECUTE_MESSAGE_GAS, MAX_PAYLOAD_BYTES, MAX_PROOF_SIBLINGS,
    SEND_MESSAGE_GAS,
};
pub use state::{
    Account, ChainState, ImportKey, StateChanges, StateKey, StateValue, ValueTotals, WitnessItem,
};
pub use step::{
    batch_steps, run_step, step_witness, trace_batch, verify_step, MachineState, Step, StepCost,
    StepError, StepItem, StepWitness, WitnessEntry, CALLDATA_BYTE_GAS, ECRECOVER_GAS,
    INVALID_BATCH_DOMAIN, KECCAK_GAS, KECCAK_WORD_GAS, STEP_BASE_GAS,
};
pub use tx::{RecoveredTx, TxSigner, MAX_TX_BYTES};

use alloy_primitives::{Address, Log, B256, U256};
use braid_primitives::{
    aggregation, deposits_hash, imports_hash, tx_root, Block, BlockHeader, ChainId, Deposit,
    ImportKind, ImportedRoot, MessageId, MESSENGER_ADDRESS, SETTLEMENT_LAYER_CHAIN_ID,
};
use serde::{Deserialize, Serialize};

/// Gas of a plain transfer (Ethereum's intrinsic cost).
pub const TX_BASE_GAS: u64 = 21_000;
/// Gas per zero calldata byte.
pub const CALLDATA_ZERO_BYTE_GAS: u64 = 4;
/// Gas per non-zero calldata byte.
pub const CALLDATA_NONZERO_BYTE_GAS: u64 = 16;

/// The block-level context a transaction executes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEnv {
    /// The chain.
    pub chain_id: ChainId,
    /// Block height.
    pub number: u64,
    /// Block timestamp.
    pub timestamp_ms: u64,
    /// Receives the priority fees.
    pub sequencer: Address,
    /// Base fee per gas.
    pub base_fee: u128,
    /// Block gas limit.
    pub gas_limit: u64,
}

impl BlockEnv {
    /// The context of the block with this header.
    pub fn from_header(h: &BlockHeader) -> Self {
        Self {
            chain_id: h.chainId,
            number: h.number,
            timestamp_ms: h.timestampMs,
            sequencer: h.sequencer,
            base_fee: h.baseFee,
            gas_limit: h.gasLimit,
        }
    }
}

/// The outcome of an included transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxReceipt {
    /// Transaction hash.
    pub tx_hash: B256,
    /// The sender.
    pub from: Address,
    /// The recipient.
    pub to: Address,
    /// Gas this transaction used.
    pub gas_used: u64,
    /// Gas used in the block up to and including this transaction.
    pub cumulative_gas_used: u64,
    /// Price per gas paid (base fee + tip).
    pub effective_gas_price: u128,
    /// Solidity-compatible logs (`MessageSent`, `MessageExecuted`).
    pub logs: Vec<Log>,
    /// The message this transaction sent, if any.
    pub message_sent: Option<MessageId>,
    /// The message this transaction executed, if any.
    pub message_executed: Option<MessageId>,
}

/// Intrinsic gas: base cost plus calldata.
pub fn intrinsic_gas(input: &[u8]) -> u64 {
    let zeros = input.iter().filter(|b| **b == 0).count() as u64;
    let nonzeros = input.len() as u64 - zeros;
    TX_BASE_GAS + zeros * CALLDATA_ZERO_BYTE_GAS + nonzeros * CALLDATA_NONZERO_BYTE_GAS
}

/// Gas a call would use (for `eth_estimateGas`): intrinsic cost plus execution, after the same
/// checks as [`apply_transaction`] except signature, nonce and fees. Reads `state` only.
pub fn estimate_gas(
    state: &ChainState,
    from: Address,
    to: Option<Address>,
    value: U256,
    input: &[u8],
) -> Result<u64, ExecutionError> {
    let to = to.ok_or(ExecutionError::ContractCreationUnsupported)?;
    let balance = state.account(&from).balance;
    if balance < value {
        return Err(ExecutionError::InsufficientBalance {
            sender: from,
            needed: value,
            available: balance,
        });
    }
    let effect = if to == MESSENGER_ADDRESS {
        messenger::plan_call(state, from, value, input)?
    } else {
        messenger::CallEffect::Transfer
    };
    Ok(intrinsic_gas(input) + effect.execution_gas())
}

/// Answers a read-only call (for `eth_call`): the messenger's views `isExecuted` and `localRoot`
/// return ABI-encoded results; a call to any other address returns empty bytes (accounts have
/// no code); a state-changing messenger call is checked as by [`estimate_gas`] and returns its
/// ABI result (`sendMessage` returns the nonce the message would get).
pub fn call_view(
    state: &ChainState,
    from: Address,
    to: Address,
    value: U256,
    input: &[u8],
) -> Result<alloy_primitives::Bytes, ExecutionError> {
    if to != MESSENGER_ADDRESS {
        return Ok(alloy_primitives::Bytes::new());
    }
    messenger::view(state, from, value, input)
}

/// Applies one user transaction on top of `state`. On error nothing changed.
///
/// `gas_used_in_block` is the gas already used by earlier transactions of the block.
pub fn apply_transaction(
    state: &mut ChainState,
    env: &BlockEnv,
    tx: &RecoveredTx,
    gas_used_in_block: u64,
) -> Result<TxReceipt, ExecutionError> {
    // ---- checks (no writes) ----
    let chain_id = tx.chain_id().ok_or(ExecutionError::MissingChainId)?;
    if chain_id != env.chain_id || state.chain_id() != env.chain_id {
        return Err(ExecutionError::WrongChainId {
            expected: env.chain_id,
            got: chain_id,
        });
    }
    let sender = tx.sender;
    let mut sender_acct = state.account(&sender);
    if tx.nonce() < sender_acct.nonce {
        return Err(ExecutionError::NonceTooLow {
            sender,
            expected: sender_acct.nonce,
            got: tx.nonce(),
        });
    }
    if tx.nonce() > sender_acct.nonce {
        return Err(ExecutionError::NonceGap {
            sender,
            expected: sender_acct.nonce,
            got: tx.nonce(),
        });
    }
    let gas_limit = tx.gas_limit();
    let intrinsic = intrinsic_gas(tx.input());
    if gas_limit < intrinsic {
        return Err(ExecutionError::IntrinsicGasTooLow {
            gas_limit,
            intrinsic,
        });
    }
    let available = env.gas_limit.saturating_sub(gas_used_in_block);
    if gas_limit > available {
        return Err(ExecutionError::GasLimitAboveBlock {
            gas_limit,
            available,
        });
    }
    let max_fee = tx.max_fee_per_gas();
    let tip_cap = tx.max_priority_fee_per_gas();
    if tip_cap > max_fee {
        return Err(ExecutionError::TipAboveFeeCap {
            tip: tip_cap,
            max_fee,
        });
    }
    let tip = tx
        .effective_tip(env.base_fee)
        .ok_or(ExecutionError::FeeCapBelowBaseFee {
            max_fee,
            base_fee: env.base_fee,
        })?;
    let max_cost = U256::from(gas_limit)
        .checked_mul(U256::from(max_fee))
        .and_then(|c| c.checked_add(tx.value()))
        .ok_or(ExecutionError::Overflow {
            what: "max transaction cost",
        })?;
    if sender_acct.balance < max_cost {
        return Err(ExecutionError::InsufficientBalance {
            sender,
            needed: max_cost,
            available: sender_acct.balance,
        });
    }
    let to = tx.to().ok_or(ExecutionError::ContractCreationUnsupported)?;

    // The call itself: plan all effects, check them, then write.
    let effect = if to == MESSENGER_ADDRESS {
        messenger::plan_call(state, sender, tx.value(), tx.input())?
    } else {
        messenger::CallEffect::Transfer
    };
    let gas_used = intrinsic + effect.execution_gas();
    if gas_used > gas_limit {
        return Err(ExecutionError::OutOfGas {
            gas_limit,
            needed: gas_used,
        });
    }
    let price = env.base_fee + tip;
    let fee = U256::from(gas_used) * U256::from(price);
    let burned = U256::from(gas_used) * U256::from(env.base_fee);
    let tip_total = fee - burned;

    // ---- writes (infallible from here on) ----
    sender_acct.nonce += 1;
    sender_acct.balance -= fee + tx.value();
    state.set_account(sender, sender_acct);
    let mut totals = state.totals();
    totals.burned_fees = totals.burned_fees.saturating_add(burned);
    if !tip_total.is_zero() {
        let mut seq = state.account(&env.sequencer);
        seq.balance = seq.balance.saturating_add(tip_total);
        state.set_account(env.sequencer, seq);
    }
    let mut receipt = TxReceipt {
        tx_hash: tx.hash,
        from: sender,
        to,
        gas_used,
        cumulative_gas_used: gas_used_in_block + gas_used,
        effective_gas_price: price,
        logs: vec![],
        message_sent: None,
        message_executed: None,
    };
    messenger::commit_effect(state, &mut totals, effect, to, tx.value(), &mut receipt)?;
    state.set_totals(totals);
    Ok(receipt)
}

/// Applies a system transaction importing a root from another chain (or the SL).
pub fn apply_import(state: &mut ChainState, import: &ImportedRoot) -> Result<(), ExecutionError> {
    let key = ImportKey::of(import)?;
    if import.sourceChain == state.chain_id() {
        return Err(ExecutionError::ImportFromSelf {
            chain: state.chain_id(),
        });
    }
    if import.root == B256::ZERO {
        return Err(ExecutionError::InvalidImport {
            reason: "zero root".into(),
        });
    }
    if key.kind == ImportKind::Aggregated
        && (import.sourceChain != SETTLEMENT_LAYER_CHAIN_ID
            || import.messageCount == 0
            || import.messageCount
                > u64::from(aggregation::tree_depth(aggregation::MAX_TREE_CHAINS)))
    {
        return Err(ExecutionError::InvalidImport {
            reason: format!(
                "an aggregated import is a tree node hash from chain 0 with a level in 1..=16, not \
                 chain {} level {}",
                import.sourceChain, import.messageCount
            ),
        });
    }
    if let Some(existing) = state.imported(&key) {
        if existing == import {
            return Ok(()); // idempotent: importing the same root twice changes nothing
        }
        return Err(ExecutionError::InvalidImport {
            reason: format!(
                "root {} already imported with different metadata",
                import.root
            ),
        });
    }
    state.insert_import(key, import.clone());
    Ok(())
}

/// Applies a forced deposit from the settlement layer: credits the recipient. Deposits apply
/// strictly in index order; on error nothing changed.
pub fn apply_deposit(state: &mut ChainState, deposit: &Deposit) -> Result<(), ExecutionError> {
    let mut totals = state.totals();
    if deposit.chainId != state.chain_id() || deposit.index != totals.deposit_count {
        return Err(ExecutionError::BadDeposit {
            got: deposit.index,
            chain: deposit.chainId,
            expected: totals.deposit_count,
            this_chain: state.chain_id(),
        });
    }
    let mut acct = state.account(&deposit.recipient);
    acct.balance = acct.balance.saturating_add(deposit.amount);
    state.set_account(deposit.recipient, acct);
    totals.deposited_in = totals.deposited_in.saturating_add(deposit.amount);
    totals.deposit_count += 1;
    state.set_totals(totals);
    Ok(())
}

/// What a block builder needs after executing a block's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    /// Receipts of the transactions, in order.
    pub receipts: Vec<TxReceipt>,
    /// Total gas used.
    pub gas_used: u64,
}

/// Fills a header's computed fields (roots, counts, gas) from `state` after the block's
/// imports, deposits and transactions were applied.
pub fn seal_header(
    state: &mut ChainState,
    env: &BlockEnv,
    parent_hash: B256,
    imports: &[ImportedRoot],
    deposits: &[Deposit],
    tx_hashes: &[B256],
    gas_used: u64,
) -> BlockHeader {
    BlockHeader {
        chainId: env.chain_id,
        number: env.number,
        parentHash: parent_hash,
        timestampMs: env.timestamp_ms,
        sequencer: env.sequencer,
        txRoot: tx_root(tx_hashes),
        stateRoot: state.state_root(),
        localRoot: state.outbox().root(),
        messageCount: state.outbox().len(),
        importsHash: imports_hash(imports),
        depositsHash: deposits_hash(deposits),
        depositCount: state.totals().deposit_count,
        gasUsed: gas_used,
        gasLimit: env.gas_limit,
        baseFee: env.base_fee,
    }
}

/// Re-executes `block` on top of `state` (the state after its parent) and checks every computed
/// header field. On error the state is partly modified and must be discarded (callers execute on
/// a copy when they cannot trust the block).
pub fn execute_block(
    state: &mut ChainState,
    parent_hash: B256,
    block: &Block,
) -> Result<BlockOutcome, ExecutionError> {
    let h = &block.header;
    let env = BlockEnv::from_header(h);
    for import in &block.imports {
        apply_import(state, import)?;
    }
    for deposit in &block.deposits {
        apply_deposit(state, deposit)?;
    }
    let mut gas_used = 0u64;
    let mut receipts = Vec::with_capacity(block.transactions.len());
    let mut hashes = Vec::with_capacity(block.transactions.len());
    for (index, raw) in block.transactions.iter().enumerate() {
        let wrap = |e: ExecutionError| ExecutionError::InvalidBlockTx {
            block: h.number,
            index,
            source: Box::new(e),
        };
        let tx = RecoveredTx::decode(raw).map_err(wrap)?;
        let receipt = apply_transaction(state, &env, &tx, gas_used).map_err(wrap)?;
        gas_used = receipt.cumulative_gas_used;
        hashes.push(tx.hash);
        receipts.push(receipt);
    }
    let computed = seal_header(
        state,
        &env,
        parent_hash,
        &block.imports,
        &block.deposits,
        &hashes,
        gas_used,
    );
    check_header(h, &computed)?;
    Ok(BlockOutcome { receipts, gas_used })
}

fn check_header(claimed: &BlockHeader, computed: &BlockHeader) -> Result<(), ExecutionError> {
    macro_rules! field {
        ($name:literal, $f:ident) => {
            if claimed.$f != computed.$f {
                return Err(ExecutionError::HeaderMismatch {
                    field: $name,
                    claimed: format!("{:?}", claimed.$f),
                    computed: format!("{:?}", computed.$f),
                });
            }
        };
    }
    field!("parentHash", parentHash);
    field!("txRoot", txRoot);
    field!("importsHash", importsHash);
    field!("depositsHash", depositsHash);
    field!("depositCount", depositCount);
    field!("gasUsed", gasUsed);
    field!("localRoot", localRoot);
    field!("messageCount", messageCount);
    field!("stateRoot", stateRoot);
    Ok(())
}

#[cfg(test)]
mod tests;
