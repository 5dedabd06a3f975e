//! A small deterministic world around the SL: two chains run by real sequencers, registered by
//! the security council, with honest operators committing, proving and executing every batch
//! (adapted from `crates/settlement/tests/harness`). Users only make plain transfers, so the
//! chains never depend on the SL and can be rebuilt by running them again from genesis.
#![allow(clippy::unwrap_used, clippy::panic, dead_code)]

use std::collections::BTreeMap;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use braid_execution::TxSigner;
use braid_primitives::{BatchNumber, ChainId};
use braid_proof::{ProofSystem, ReExecution};
use braid_sequencer::{SealedBatch, Sequencer, SequencerConfig, SequencerInput, SequencerOutput};
use braid_settlement::{BatchStatus, ChainGenesis, SettlementLayer, SlCall, SlConfig, SlTx};

pub const ETH: u128 = 1_000_000_000_000_000_000;
/// Chain block time and SL block time: one chain block and one SL block per step.
pub const BLOCK_MS: u64 = 1_000;
pub const CHAINS: [ChainId; 2] = [11, 22];

pub fn secret(tag: &str) -> B256 {
    keccak256(tag.as_bytes())
}

pub fn address_of(secret: &B256) -> Address {
    TxSigner::from_secret(*secret).unwrap().address()
}

pub fn alice() -> TxSigner {
    TxSigner::dev(0)
}

pub fn bob() -> Address {
    Address::repeat_byte(0xb0)
}

pub fn council() -> B256 {
    secret("council")
}

pub fn sl_config() -> SlConfig {
    let mut config = SlConfig::new(address_of(&council()));
    config.sl_block_time_ms = BLOCK_MS;
    config.timeout_operator_ms = 20_000;
    config.timeout_council_ms = 40_000;
    config
}

pub fn fresh_proofs() -> Box<dyn ProofSystem + Send> {
    Box::new(ReExecution::new())
}

fn chain_config(id: ChainId) -> SequencerConfig {
    let mut c = SequencerConfig::new(id);
    c.block_time_ms = BLOCK_MS;
    c.batch_blocks = 2;
    c.fee_recipient = Address::repeat_byte(0xfe);
    c
}

fn alloc() -> Vec<(Address, U256)> {
    vec![(alice().address(), U256::from(100 * ETH))]
}

pub struct ChainNode {
    pub seq: Sequencer,
    pub operator: B256,
    pub genesis: braid_primitives::BlockHeader,
    /// Every batch the sequencer sealed, by number.
    pub batches: BTreeMap<BatchNumber, SealedBatch>,
}

/// The chains and their operators; time advances one block per [`Chains::advance`].
pub struct Chains {
    pub now: u64,
    pub nodes: BTreeMap<ChainId, ChainNode>,
}

impl Chains {
    pub fn new() -> Self {
        let mut nodes = BTreeMap::new();
        for id in CHAINS {
            let (seq, genesis) = Sequencer::genesis(chain_config(id), &alloc()).unwrap();
            nodes.insert(
                id,
                ChainNode {
                    seq,
                    operator: secret(&format!("operator {id}")),
                    genesis: genesis.block.header,
                    batches: BTreeMap::new(),
                },
            );
        }
        Self { now: 0, nodes }
    }

    /// The council's registrations of every chain: the content of SL block 1 (at time 0).
    pub fn registration_txs(&self) -> Vec<SlTx> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, (id, node))| {
                let call = SlCall::RegisterChain(ChainGenesis {
                    chain_id: *id,
                    operator: address_of(&node.operator),
                    alloc: alloc(),
                    genesis_header: node.genesis.clone(),
                });
                SlTx::sign(&council(), i as u64, call).unwrap()
            })
            .collect()
    }

    /// One block time later: alice pays bob on every chain and every sequencer produces a block.
    pub fn advance(&mut self) {
        self.now += BLOCK_MS;
        for (id, node) in &mut self.nodes {
            let nonce = node.seq.state().account(&alice().address()).nonce
                + node.seq.mempool().len() as u64;
            let raw = alice()
                .call(
                    *id,
                    nonce,
                    bob(),
                    U256::from(1_000u64),
                    Bytes::new(),
                    21_000,
                )
                .unwrap();
            let out = node.seq.handle(SequencerInput::SubmitTx { raw });
            assert!(
                matches!(&out[..], [SequencerOutput::TxAccepted { .. }]),
                "{out:?}"
            );
            for out in node.seq.handle(SequencerInput::Tick { now_ms: self.now }) {
                if let SequencerOutput::BatchSealed(batch) = out {
                    node.batches.insert(batch.header.number, *batch);
                }
            }
        }
    }

    /// Runs the chains (alone: they do not depend on the SL) until `now_ms`.
    pub fn fast_forward(&mut self, now_ms: u64) {
        while self.now < now_ms {
            self.advance();
        }
        assert_eq!(
            self.now, now_ms,
            "SL block times are multiples of the block time"
        );
    }

    /// The honest operators' next SL transactions, from what `sl` holds now: commit the next
    /// batch, prove committed ones, request execution of proven ones.
    pub fn operator_txs(&self, sl: &SettlementLayer) -> Vec<SlTx> {
        let mut txs = vec![];
        for (id, node) in &self.nodes {
            let Some(record) = sl.chain(*id) else {
                continue;
            };
            let mut nonce = sl.nonce(&address_of(&node.operator));
            for (n, batch) in &node.batches {
                let call = match sl
                    .batch(*id, *n)
                    .map(|b| (b.status.clone(), b.execute_request.is_some()))
                {
                    None if *n == record.last_committed + 1 => {
                        let imports = batch
                            .blocks
                            .iter()
                            .flat_map(|b| b.imports.clone())
                            .collect();
                        Some(SlCall::CommitBatch {
                            header: batch.header.clone(),
                            imports,
                            blocks: batch.blocks.clone(),
                        })
                    }
                    Some((BatchStatus::Committed, _)) => Some(SlCall::ProveBatch {
                        chain_id: *id,
                        batch: *n,
                        proof: Bytes::new(),
                    }),
                    Some((BatchStatus::Proven, false)) => Some(SlCall::ExecuteBatch {
                        chain_id: *id,
                        batch: *n,
                        extension_proofs: vec![],
                    }),
                    _ => None,
                };
                if let Some(call) = call {
                    let commit = matches!(call, SlCall::CommitBatch { .. });
                    txs.push(SlTx::sign(&node.operator, nonce, call).unwrap());
                    nonce += 1;
                    if commit {
                        break; // one commit per SL block keeps prove/execute ordering simple
                    }
                }
            }
        }
        txs
    }
}
