//! The messenger system contract: `sendMessage` and `executeMessage`.
//!
//! Calls are handled in two phases: [`plan_call`] decodes and checks everything against the
//! current state without writing, and [`commit_effect`] writes the planned effect. That split is
//! what guarantees a rejected call leaves the state unchanged.

use alloy_primitives::{Address, Log, B256, U256};
use alloy_sol_types::{SolCall, SolEvent};
use braid_merkle::{verify_inclusion, InclusionProof};
use braid_primitives::aggregation::AggregatedPath;
use braid_primitives::{
    message_root_leaf, IMessenger, ImportKind, Message, MessageProof, MESSENGER_ADDRESS,
    SETTLEMENT_LAYER_CHAIN_ID,
};

use crate::{state::ValueTotals, ChainState, ExecutionError, ImportKey, TxReceipt};

/// Largest message payload.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Most siblings accepted in one level of a message proof (the tree depth).
pub const MAX_PROOF_SIBLINGS: usize = braid_merkle::TREE_DEPTH;
/// Execution gas of `sendMessage` on top of the intrinsic cost.
pub const SEND_MESSAGE_GAS: u64 = 25_000;
/// Execution gas of `executeMessage`, plus [`EXECUTE_GAS_PER_SIBLING`] per proof hash.
pub const EXECUTE_MESSAGE_GAS: u64 = 30_000;
/// Gas per proof hash verified.
pub const EXECUTE_GAS_PER_SIBLING: u64 = 1_000;

/// The effect of a call, checked but not yet written.
#[derive(Debug)]
pub(crate) enum CallEffect {
    /// A plain value transfer to the recipient.
    Transfer,
    /// `sendMessage`: append this message to the outgoing tree.
    Send { message: Message, leaf: B256 },
    /// `executeMessage`: mark executed and credit the recipient.
    Execute {
        message: Message,
        leaf: B256,
        proof_hashes: u64,
    },
}

impl CallEffect {
    pub(crate) fn execution_gas(&self) -> u64 {
        match self {
            CallEffect::Transfer => 0,
            CallEffect::Send { .. } => SEND_MESSAGE_GAS,
            CallEffect::Execute { proof_hashes, .. } => {
                EXECUTE_MESSAGE_GAS + proof_hashes * EXECUTE_GAS_PER_SIBLING
            }
        }
    }
}

fn malformed(e: alloy_sol_types::Error) -> ExecutionError {
    ExecutionError::MalformedCall {
        reason: e.to_string(),
    }
}

/// Decodes and checks a messenger call without writing anything.
pub(crate) fn plan_call(
    state: &ChainState,
    sender: Address,
    value: U256,
    input: &[u8],
) -> Result<CallEffect, ExecutionError> {
    let selector: [u8; 4] = match input.get(..4).and_then(|s| s.try_into().ok()) {
        Some(s) => s,
        None => {
            return Err(ExecutionError::UnknownSelector {
                selector: input.to_vec(),
            })
        }
    };
    match selector {
        IMessenger::sendMessageCall::SELECTOR => {
            let c = IMessenger::sendMessageCall::abi_decode(input).map_err(malformed)?;
            let mode = ImportKind::Proof as u8;
            plan_send(
                state,
                sender,
                value,
                (c.destChain, c.recipient, c.payload, mode),
            )
        }
        IMessenger::sendMessageWithModeCall::SELECTOR => {
            let c = IMessenger::sendMessageWithModeCall::abi_decode(input).map_err(malformed)?;
            plan_send(
                state,
                sender,
                value,
                (c.destChain, c.recipient, c.payload, c.mode),
            )
        }
        IMessenger::executeMessageCall::SELECTOR => {
            if !value.is_zero() {
                return Err(ExecutionError::ValueNotAccepted);
            }
            let call = IMessenger::executeMessageCall::abi_decode(input).map_err(malformed)?;
            plan_execute(state, call.message, &call.proof)
        }
        other => Err(ExecutionError::UnknownSelector {
            selector: other.to_vec(),
        }),
    }
}

/// The ABI result of a messenger call, without writing anything.
pub(crate) fn view(
    state: &ChainState,
    from: Address,
    value: U256,
    input: &[u8],
) -> Result<alloy_primitives::Bytes, ExecutionError> {
    let selector: Option<[u8; 4]> = input.get(..4).and_then(|s| s.try_into().ok());
    match selector {
        Some(IMessenger::isExecutedCall::SELECTOR) => {
            let c = IMessenger::isExecutedCall::abi_decode(input).map_err(malformed)?;
            let id = braid_primitives::MessageId {
                source_chain: c.sourceChain,
                nonce: c.nonce,
            };
            Ok(IMessenger::isExecutedCall::abi_encode_returns(&state.is_executed(&id)).into())
        }
        Some(IMessenger::localRootCall::SELECTOR) => {
            let ret = IMessenger::localRootReturn {
                root: state.outbox().root(),
                messageCount: state.outbox().len(),
            };
            Ok(
                IMessenger::localRootCall::abi_encode_returns_tuple(&(ret.root, ret.messageCount))
                    .into(),
            )
        }
        _ => match plan_call(state, from, value, input)? {
            CallEffect::Send { message, .. } => {
                Ok(IMessenger::sendMessageCall::abi_encode_returns(&message.nonce).into())
            }
            _ => Ok(alloy_primitives::Bytes::new()),
        },
    }
}

fn plan_send(
    state: &ChainState,
    sender: Address,
    value: U256,
    (dest_chain, recipient, payload, mode): (U256, Address, alloy_primitives::Bytes, u8),
) -> Result<CallEffect, ExecutionError> {
    ImportKind::try_from(mode).map_err(|_| ExecutionError::MalformedCall {
        reason: format!("unknown interop mode {mode}"),
    })?;
    let dest: u64 = dest_chain
        .try_into()
        .map_err(|_| ExecutionError::InvalidDestination { dest: dest_chain })?;
    // chain 0 is the SL: a message to it is a withdrawal, claimed on the SL (`withdraw`)
    if dest == state.chain_id() {
        return Err(ExecutionError::InvalidDestination { dest: dest_chain });
    }
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(ExecutionError::PayloadTooLarge {
            size: payload.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    if state.outbox_len() >= braid_merkle::MAX_LEAVES {
        return Err(ExecutionError::MessageTreeFull);
    }
    let message = Message {
        sourceChain: state.chain_id(),
        nonce: state.outbox_len(),
        sender,
        destChain: dest,
        recipient,
        value,
        mode,
        payload,
    };
    let leaf = message.leaf_hash();
    Ok(CallEffect::Send { message, leaf })
}

/// A single-level message proof (`precommit` or `commit` mode): `inner` proves the message leaf
/// against `root`, the source's message-tree root the destination imported.
pub fn single_level_proof(kind: ImportKind, root: B256, inner: InclusionProof) -> MessageProof {
    MessageProof {
        kind: kind as u8,
        sourceHeight: 0,
        root,
        leafIndex: inner.index,
        treeSize: inner.size,
        siblings: inner.siblings,
        batchNumber: 0,
        chainBatchRoot: B256::ZERO,
        outerIndex: 0,
        outerSize: 0,
        outerSiblings: vec![],
    }
}

/// A two-level `proof`-mode message proof: `inner` proves the message against the source batch's
/// `chain_batch_root`; `outer` proves that batch's leaf against the SL `message_root`.
pub fn two_level_proof(
    message_root: B256,
    batch_number: u64,
    chain_batch_root: B256,
    inner: InclusionProof,
    outer: InclusionProof,
) -> MessageProof {
    MessageProof {
        kind: ImportKind::Proof as u8,
        sourceHeight: 0,
        root: message_root,
        leafIndex: inner.index,
        treeSize: inner.size,
        siblings: inner.siblings,
        batchNumber: batch_number,
        chainBatchRoot: chain_batch_root,
        outerIndex: outer.index,
        outerSize: outer.size,
        outerSiblings: outer.siblings,
    }
}

/// Verifies `proof` for `message` against the roots `state` imported. Returns the message leaf
/// and the number of hashes the proof made the verifier check.
pub fn verify_message_proof(
    state: &ChainState,
    message: &Message,
    proof: &MessageProof,
) -> Result<(B256, u64), ExecutionError> {
    let kind = ImportKind::try_from(proof.kind).map_err(|e| ExecutionError::ProofMismatch {
        reason: e.to_string(),
    })?;
    let requested =
        ImportKind::try_from(message.mode).map_err(|e| ExecutionError::ProofMismatch {
            reason: e.to_string(),
        })?;
    if !kind.satisfies(requested) {
        return Err(ExecutionError::ModeTooWeak {
            requested,
            proven: kind,
        });
    }
    let max_outer = match kind {
        // the source block's header, then two words per tree level
        ImportKind::Aggregated => braid_primitives::aggregation::HEADER_WORDS + 2 * 16,
        _ => MAX_PROOF_SIBLINGS,
    };
    if proof.siblings.len() > MAX_PROOF_SIBLINGS || proof.outerSiblings.len() > max_outer {
        return Err(ExecutionError::ProofMismatch {
            reason: "too many proof hashes".into(),
        });
    }
    if proof.leafIndex != message.nonce {
        return Err(ExecutionError::ProofMismatch {
            reason: format!(
                "leaf index {} but message nonce {}",
                proof.leafIndex, message.nonce
            ),
        });
    }
    let import_source = match kind {
        ImportKind::Proof | ImportKind::Aggregated => SETTLEMENT_LAYER_CHAIN_ID,
        _ => message.sourceChain,
    };
    let key = ImportKey {
        kind,
        source_chain: import_source,
        root: proof.root,
    };
    let imported = state
        .imported(&key)
        .ok_or(ExecutionError::RootNotImported {
            kind,
            source_chain: import_source,
            root: proof.root,
        })?;
    let leaf = message.leaf_hash();
    let inner = InclusionProof {
        index: proof.leafIndex,
        size: proof.treeSize,
        siblings: proof.siblings.clone(),
    };
    match kind {
        ImportKind::Precommit | ImportKind::Qc | ImportKind::Commit | ImportKind::Optimistic => {
            if proof.batchNumber != 0
                || proof.chainBatchRoot != B256::ZERO
                || proof.outerIndex != 0
                || proof.outerSize != 0
                || !proof.outerSiblings.is_empty()
            {
                return Err(ExecutionError::ProofMismatch {
                    reason: "single-level proof carries outer fields".into(),
                });
            }
            if imported.messageCount != proof.treeSize {
                return Err(ExecutionError::ProofMismatch {
                    reason: format!(
                        "imported root holds {} messages, proof claims {}",
                        imported.messageCount, proof.treeSize
                    ),
                });
            }
            verify_inclusion(proof.root, leaf, &inner)?;
            Ok((leaf, inner.siblings.len() as u64))
        }
        ImportKind::Proof => {
            verify_inclusion(proof.chainBatchRoot, leaf, &inner)?;
            let batch_leaf = message_root_leaf(
                message.sourceChain,
                proof.batchNumber,
                proof.chainBatchRoot,
                proof.treeSize,
            );
            let outer = InclusionProof {
                index: proof.outerIndex,
                size: proof.outerSize,
                siblings: proof.outerSiblings.clone(),
            };
            verify_inclusion(proof.root, batch_leaf, &outer)?;
            Ok((leaf, (inner.siblings.len() + outer.siblings.len()) as u64))
        }
        ImportKind::Aggregated => {
            let mismatch = |reason: String| ExecutionError::ProofMismatch { reason };
            if proof.batchNumber != 0 || proof.chainBatchRoot != B256::ZERO {
                return Err(mismatch("aggregated proof carries batch fields".into()));
            }
            let chain = u32::try_from(proof.outerIndex)
                .map_err(|_| mismatch("tree position out of range".into()))?;
            let chains = u32::try_from(proof.outerSize)
                .map_err(|_| mismatch("tree size out of range".into()))?;
            let path = AggregatedPath::from_words(chain, chains, &proof.outerSiblings)
                .map_err(|e| mismatch(e.to_string()))?;
            if path.header.chainId != message.sourceChain {
                return Err(mismatch(format!(
                    "header of chain {} for a message from chain {}",
                    path.header.chainId, message.sourceChain
                )));
            }
            if path.header.messageCount != proof.treeSize {
                return Err(mismatch(format!(
                    "source block holds {} messages, proof claims {}",
                    path.header.messageCount, proof.treeSize
                )));
            }
            if u64::from(path.level()) != imported.messageCount
                || proof.sourceHeight != imported.sourceHeight
            {
                return Err(mismatch(format!(
                    "path to level {} at checkpoint {}, imported level {} at checkpoint {}",
                    path.level(),
                    proof.sourceHeight,
                    imported.messageCount,
                    imported.sourceHeight
                )));
            }
            verify_inclusion(path.header.localRoot, leaf, &inner)?;
            let node = path.node_hash().map_err(|e| mismatch(e.to_string()))?;
            if node != proof.root {
                return Err(mismatch(format!(
                    "path climbs to {node}, not the imported node hash {}",
                    proof.root
                )));
            }
            Ok((
                leaf,
                (inner.siblings.len() + path.steps.len() * 2 + 1) as u64,
            ))
        }
    }
}

/// An `aggregated` message proof: `inner` proves the message against the `localRoot` of
/// `path.header` (the source's block at `checkpoint`), and `path` climbs from that block's leaf
/// to the imported node hash `node_hash`.
pub fn aggregated_proof(
    node_hash: B256,
    checkpoint: u64,
    inner: InclusionProof,
    path: &AggregatedPath,
) -> MessageProof {
    MessageProof {
        kind: ImportKind::Aggregated as u8,
        sourceHeight: checkpoint,
        root: node_hash,
        leafIndex: inner.index,
        treeSize: inner.size,
        siblings: inner.siblings,
        batchNumber: 0,
        chainBatchRoot: B256::ZERO,
        outerIndex: u64::from(path.chain),
        outerSize: u64::from(path.chains),
        outerSiblings: path.to_words(),
    }
}

fn plan_execute(
    state: &ChainState,
    message: Message,
    proof: &MessageProof,
) -> Result<CallEffect, ExecutionError> {
    if message.destChain != state.chain_id() {
        return Err(ExecutionError::WrongDestination {
            expected: state.chain_id(),
            got: message.destChain,
        });
    }
    if state.is_executed(&message.id()) {
        return Err(ExecutionError::AlreadyExecuted { id: message.id() });
    }
    let (leaf, proof_hashes) = verify_message_proof(state, &message, proof)?;
    Ok(CallEffect::Execute {
        message,
        leaf,
        proof_hashes,
    })
}

/// Writes a planned effect. Only fails on conditions [`plan_call`] already excluded.
pub(crate) fn commit_effect(
    state: &mut ChainState,
    totals: &mut ValueTotals,
    effect: CallEffect,
    to: Address,
    value: U256,
    receipt: &mut TxReceipt,
) -> Result<(), ExecutionError> {
    match effect {
        CallEffect::Transfer => {
            if !value.is_zero() {
                let mut acct = state.account(&to);
                acct.balance = acct.balance.saturating_add(value);
                state.set_account(to, acct);
            }
        }
        CallEffect::Send { message, leaf } => {
            state.append_outgoing(leaf)?;
            totals.sent_out = totals.sent_out.saturating_add(message.value);
            let event = IMessenger::MessageSent {
                destChain: message.destChain,
                nonce: message.nonce,
                sender: message.sender,
                recipient: message.recipient,
                value: message.value,
                mode: message.mode,
                payload: message.payload.clone(),
                leaf,
            };
            receipt.logs.push(Log {
                address: MESSENGER_ADDRESS,
                data: event.encode_log_data(),
            });
            receipt.message_sent = Some(message.id());
        }
        CallEffect::Execute { message, leaf, .. } => {
            state.mark_executed(message.id(), leaf);
            if !message.value.is_zero() {
                let mut acct = state.account(&message.recipient);
                acct.balance = acct.balance.saturating_add(message.value);
                state.set_account(message.recipient, acct);
            }
            totals.received_in = totals.received_in.saturating_add(message.value);
            let event = IMessenger::MessageExecuted {
                sourceChain: message.sourceChain,
                nonce: message.nonce,
                recipient: message.recipient,
                value: message.value,
                leaf,
            };
            receipt.logs.push(Log {
                address: MESSENGER_ADDRESS,
                data: event.encode_log_data(),
            });
            receipt.message_executed = Some(message.id());
        }
    }
    Ok(())
}
