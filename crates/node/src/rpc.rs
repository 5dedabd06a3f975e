//! A devnet chain as a JSON-RPC backend: the standard `eth_` methods read the chain's sequencer
//! and store; the `braid_` namespace exposes messages, proofs, imports and batch status.

use std::sync::{Arc, Mutex, MutexGuard};

use alloy_primitives::{Address, Bytes, B256, U256};
use braid_driver::ChainEffect;
use braid_execution::{RecoveredTx, TxReceipt};
use braid_primitives::{Block, ChainId, ImportKind, ImportedRoot, MessageId, MessageProof};
use braid_rpc::{ChainRpcBackend, RpcError};
use braid_sequencer::SequencerOutput;
use serde_json::{json, Value};

use crate::world::{ChainNode, Devnet};

/// What hosts chains for the RPC: the devnet world (every chain) or a single-chain node process.
pub trait ChainHost: Send + 'static {
    /// The chain's node, if hosted here.
    fn node(&self, chain: ChainId) -> Option<&ChainNode>;
    /// The chain's node, mutably.
    fn node_mut(&mut self, chain: ChainId) -> Option<&mut ChainNode>;
    /// `braid_` methods beyond the per-chain ones every host answers.
    fn host_extension(
        &mut self,
        chain: ChainId,
        method: &str,
        params: &Value,
    ) -> Option<Result<Value, RpcError>>;
}

/// One chain of a host, seen through JSON-RPC.
pub struct ChainRpc<H: ChainHost> {
    host: Arc<Mutex<H>>,
    chain: ChainId,
}

impl<H: ChainHost> Clone for ChainRpc<H> {
    fn clone(&self) -> Self {
        Self {
            host: self.host.clone(),
            chain: self.chain,
        }
    }
}

impl<H: ChainHost> ChainRpc<H> {
    /// The RPC view of `chain`.
    pub fn new(host: Arc<Mutex<H>>, chain: ChainId) -> Self {
        Self { host, chain }
    }

    fn lock(&self) -> MutexGuard<'_, H> {
        // a poisoned lock means a step panicked; the data is still the last consistent state
        self.host.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ChainHost for Devnet {
    fn node(&self, chain: ChainId) -> Option<&ChainNode> {
        self.chains.get(&chain)
    }
    fn node_mut(&mut self, chain: ChainId) -> Option<&mut ChainNode> {
        self.chains.get_mut(&chain)
    }
    fn host_extension(
        &mut self,
        chain: ChainId,
        method: &str,
        params: &Value,
    ) -> Option<Result<Value, RpcError>> {
        devnet_extension(self, chain, method, params)
    }
}

fn parse_id(v: &Value) -> Result<MessageId, RpcError> {
    let s = v
        .as_str()
        .ok_or_else(|| RpcError::invalid_params("message id must be \"source:nonce\""))?;
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| RpcError::invalid_params("message id must be \"source:nonce\""))?;
    let source_chain = a
        .parse()
        .map_err(|_| RpcError::invalid_params("bad source chain in message id"))?;
    let nonce = b
        .parse()
        .map_err(|_| RpcError::invalid_params("bad nonce in message id"))?;
    Ok(MessageId {
        source_chain,
        nonce,
    })
}

fn param(params: &Value, i: usize) -> Option<&Value> {
    params.as_array().and_then(|a| a.get(i))
}

/// The root a destination must import before `proof` verifies there.
pub fn import_for(
    devnet: &Devnet,
    id: MessageId,
    mode: ImportKind,
    proof: &MessageProof,
) -> Option<ImportedRoot> {
    let record = devnet.relayer.core().message(&id)?;
    let (source, height, count) = match mode {
        ImportKind::Precommit => (id.source_chain, record.source_block, proof.treeSize),
        ImportKind::Qc | ImportKind::Aggregated => return None,
        ImportKind::Commit | ImportKind::Optimistic => {
            let batch = devnet
                .relayer
                .core()
                .batch_of_block(id.source_chain, record.source_block)?;
            (id.source_chain, batch.number, proof.treeSize)
        }
        ImportKind::Proof => (
            braid_primitives::SETTLEMENT_LAYER_CHAIN_ID,
            devnet.sl.sl().height(),
            proof.outerSize,
        ),
    };
    Some(ImportedRoot {
        kind: mode as u8,
        sourceChain: source,
        sourceHeight: height,
        root: proof.root,
        messageCount: count,
    })
}

/// Builds the proof of a message for `mode` from what the devnet holds, if the mode's root
/// exists yet (`precommit`: the source block; `commit`: its batch is committed; `proof`: its
/// batch is executed on the SL).
pub fn message_proof(
    devnet: &Devnet,
    id: MessageId,
    mode: ImportKind,
) -> Result<MessageProof, String> {
    let record = devnet
        .relayer
        .core()
        .message(&id)
        .ok_or_else(|| format!("unknown message {id}"))?;
    let source = devnet
        .chains
        .get(&id.source_chain)
        .ok_or("unknown source chain")?;
    let outbox = source.seq().state().outbox();
    let block = source
        .store
        .block(record.source_block)
        .map_err(|e| e.to_string())?
        .ok_or("source block not stored")?;
    let batch = devnet
        .relayer
        .core()
        .batch_of_block(id.source_chain, record.source_block)
        .cloned();
    match mode {
        ImportKind::Qc => {
            Err("the devnet runs no validators yet: no block has a quorum certificate".into())
        }
        ImportKind::Optimistic => Err(
            "the devnet settles its chains with proofs, not optimistic proposals: use proof".into(),
        ),
        ImportKind::Aggregated => Err(
            "the devnet runs no shared aggregator: aggregated mode is in the simulator (see \
             docs/aggregator.md); use proof"
                .into(),
        ),
        ImportKind::Precommit => {
            let p = outbox
                .inclusion_proof(id.nonce, block.header.messageCount)
                .map_err(|e| e.to_string())?;
            Ok(braid_execution::single_level_proof(
                mode,
                block.header.localRoot,
                p,
            ))
        }
        ImportKind::Commit => {
            let batch = batch.ok_or("the message's batch is not sealed yet")?;
            devnet
                .sl
                .sl()
                .batch(id.source_chain, batch.number)
                .ok_or("the message's batch is not committed yet")?;
            let p = outbox
                .inclusion_proof(id.nonce, batch.messageCount)
                .map_err(|e| e.to_string())?;
            Ok(braid_execution::single_level_proof(
                mode,
                batch.chainBatchRoot,
                p,
            ))
        }
        ImportKind::Proof => {
            let batch = batch.ok_or("the message's batch is not sealed yet")?;
            let size = devnet.sl.sl().message_tree().len();
            let (root, outer) = devnet
                .sl
                .sl()
                .batch_leaf_proof(id.source_chain, batch.number, size)
                .ok_or("the message's batch is not executed on the SL yet")?;
            let inner = outbox
                .inclusion_proof(id.nonce, batch.messageCount)
                .map_err(|e| e.to_string())?;
            Ok(braid_execution::two_level_proof(
                root,
                batch.number,
                batch.chainBatchRoot,
                inner,
                outer,
            ))
        }
    }
}

/// Per-chain `braid_` methods every host answers: `braid_importRoot`, `braid_importedRoots`,
/// `braid_blocks` (Braid blocks with receipts, for relayers and watchers), `braid_batch`.
pub fn chain_extension(
    node: &mut ChainNode,
    method: &str,
    params: &Value,
) -> Option<Result<Value, RpcError>> {
    let result = match method {
        "braid_importedRoots" => Ok(Value::Array(
            node.seq()
                .state()
                .imports()
                .map(|i| serde_json::to_value(i).unwrap_or(Value::Null))
                .collect(),
        )),
        "braid_importRoot" => (|| {
            let import: ImportedRoot =
                serde_json::from_value(param(params, 0).cloned().unwrap_or(Value::Null)).map_err(
                    |e| RpcError::invalid_params(format!("an ImportedRoot object expected: {e}")),
                )?;
            // optional: the reverts of the source the sender had seen (its source epoch)
            let epoch = match param(params, 1) {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    RpcError::invalid_params("source epoch: a non-negative integer expected")
                })?),
            };
            match node.role.import(import, epoch, &braid_driver::NoTree).pop() {
                Some(ChainEffect::Output(SequencerOutput::ImportQueued(_))) => Ok(json!("queued")),
                Some(ChainEffect::ImportRefused { reason, .. }) => {
                    Err(RpcError::server(reason.to_string()))
                }
                Some(ChainEffect::Output(SequencerOutput::ImportRejected { error, .. })) => {
                    Err(RpcError::server(error.to_string()))
                }
                other => Err(RpcError::internal(format!("unexpected answer {other:?}"))),
            }
        })(),
        "braid_blocks" => (|| {
            let from = param(params, 0)
                .and_then(Value::as_u64)
                .ok_or_else(|| RpcError::invalid_params("first block number expected"))?;
            let max = param(params, 1)
                .and_then(Value::as_u64)
                .unwrap_or(100)
                .clamp(1, 500);
            let head = node.seq().head().number;
            let mut out = Vec::new();
            for n in from..=head.min(from.saturating_add(max - 1)) {
                let block = node
                    .store
                    .block(n)
                    .map_err(|e| RpcError::internal(e.to_string()))?;
                let receipts = node
                    .store
                    .receipts(n)
                    .map_err(|e| RpcError::internal(e.to_string()))?;
                let Some(block) = block else { break };
                out.push(json!({ "block": block, "receipts": receipts.unwrap_or_default() }));
            }
            Ok(json!({ "head": head, "blocks": out }))
        })(),
        "braid_batch" => (|| {
            let n = param(params, 0)
                .and_then(Value::as_u64)
                .ok_or_else(|| RpcError::invalid_params("batch number expected"))?;
            let header = node
                .store
                .batch(n)
                .map_err(|e| RpcError::internal(e.to_string()))?;
            Ok(serde_json::to_value(header).unwrap_or(Value::Null))
        })(),
        _ => return None,
    };
    Some(result)
}

fn devnet_extension(
    d: &mut Devnet,
    chain: ChainId,
    method: &str,
    params: &Value,
) -> Option<Result<Value, RpcError>> {
    let result = match method {
        "braid_messages" => {
            serde_json::to_value(d.messages()).map_err(|e| RpcError::internal(e.to_string()))
        }
        "braid_messageStatus" => (|| {
            let id = parse_id(param(params, 0).unwrap_or(&Value::Null))?;
            let view = d.messages().into_iter().find(|m| m.id == id.to_string());
            view.map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
                .ok_or_else(|| RpcError::server(format!("unknown message {id}")))
        })(),
        "braid_messageProof" => (|| {
            let id = parse_id(param(params, 0).unwrap_or(&Value::Null))?;
            let mode = match param(params, 1).and_then(|v| v.as_str()) {
                Some("precommit") => ImportKind::Precommit,
                Some("commit") => ImportKind::Commit,
                Some("proof") => ImportKind::Proof,
                Some("qc") => ImportKind::Qc,
                Some("optimistic") => ImportKind::Optimistic,
                _ => {
                    return Err(RpcError::invalid_params(
                        "mode must be precommit, commit, proof, qc or optimistic",
                    ))
                }
            };
            let proof = message_proof(d, id, mode).map_err(RpcError::server)?;
            let message = d.relayer.core().message(&id).map(|r| r.message.clone());
            let calldata = message
                .as_ref()
                .map(|m| braid_relayer::execute_message_calldata(m, &proof));
            let import = import_for(d, id, mode, &proof);
            Ok(
                json!({ "message": message, "proof": proof, "import": import, "executeCalldata": calldata }),
            )
        })(),
        "braid_batchStatus" => (|| {
            let n = param(params, 0)
                .and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
                .ok_or_else(|| RpcError::invalid_params("batch number expected"))?;
            Ok(json!({ "batch": n, "status": d.batch_status(chain, n) }))
        })(),
        _ => {
            return d
                .chains
                .get_mut(&chain)
                .and_then(|node| chain_extension(node, method, params))
        }
    };
    Some(result)
}

impl<H: ChainHost> ChainRpcBackend for ChainRpc<H> {
    fn chain_id(&self) -> u64 {
        self.chain
    }

    fn head_number(&self) -> u64 {
        self.lock()
            .node(self.chain)
            .map_or(0, |n| n.seq().head().number)
    }

    fn block_by_number(&self, n: u64) -> Option<(Block, Vec<TxReceipt>)> {
        let h = self.lock();
        let node = h.node(self.chain)?;
        let block = node.store.block(n).ok()??;
        let receipts = node.store.receipts(n).ok()?.unwrap_or_default();
        Some((block, receipts))
    }

    fn block_number_by_hash(&self, hash: B256) -> Option<u64> {
        self.lock()
            .node(self.chain)?
            .store
            .block_number(&hash)
            .ok()?
    }

    fn tx_location(&self, hash: B256) -> Option<(u64, u32)> {
        let loc = self
            .lock()
            .node(self.chain)?
            .store
            .tx_location(&hash)
            .ok()??;
        Some((loc.block, loc.index))
    }

    fn pending_tx(&self, hash: B256) -> Option<RecoveredTx> {
        self.lock()
            .node(self.chain)?
            .seq()
            .mempool()
            .get(&hash)
            .cloned()
    }

    fn balance(&self, a: Address) -> U256 {
        self.lock()
            .node(self.chain)
            .map_or(U256::ZERO, |n| n.seq().state().account(&a).balance)
    }

    fn nonce(&self, a: Address, pending: bool) -> u64 {
        let h = self.lock();
        let Some(node) = h.node(self.chain) else {
            return 0;
        };
        let account = node.seq().state().account(&a).nonce;
        if pending {
            node.seq().mempool().pending_nonce(&a, account)
        } else {
            account
        }
    }

    fn next_base_fee(&self) -> u128 {
        self.lock()
            .node(self.chain)
            .map_or(0, |n| n.seq().next_base_fee())
    }

    fn send_raw_transaction(&self, raw: Bytes) -> Result<B256, String> {
        // decoding and signature recovery, the costly part, run before taking the host's lock
        let decoded = RecoveredTx::decode(&raw);
        let mut h = self.lock();
        let node = h.node_mut(self.chain).ok_or("unknown chain")?;
        node.submit_decoded(decoded)
    }

    fn estimate_gas(
        &self,
        from: Address,
        to: Option<Address>,
        value: U256,
        input: Bytes,
    ) -> Result<u64, String> {
        let h = self.lock();
        let node = h.node(self.chain).ok_or("unknown chain")?;
        braid_execution::estimate_gas(node.seq().state(), from, to, value, &input)
            .map_err(|e| e.to_string())
    }

    fn call(&self, from: Address, to: Address, value: U256, input: Bytes) -> Result<Bytes, String> {
        let h = self.lock();
        let node = h.node(self.chain).ok_or("unknown chain")?;
        braid_execution::call_view(node.seq().state(), from, to, value, &input)
            .map_err(|e| e.to_string())
    }

    fn extension(&self, method: &str, params: &Value) -> Option<Result<Value, RpcError>> {
        self.lock().host_extension(self.chain, method, params)
    }
}
