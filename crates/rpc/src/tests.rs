#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use alloy_consensus::TxEip1559;
use alloy_primitives::{keccak256, Address, Bytes, TxKind, B256, U256};
use alloy_sol_types::{SolCall, SolEvent};
use braid_execution::{RecoveredTx, TxReceipt, TxSigner};
use braid_primitives::{Block, IMessenger, MESSENGER_ADDRESS};
use braid_sequencer::{Sequencer, SequencerConfig, SequencerInput, SequencerOutput};
use serde_json::{json, Value};

use crate::{handle, ChainRpcBackend, RpcError, RpcLimits, CLIENT_VERSION};

const CHAIN: u64 = 901;
const ETH: u128 = 1_000_000_000_000_000_000;
const GWEI: u128 = 1_000_000_000;
const FEE_RECIPIENT: Address = Address::repeat_byte(0xfe);

// ---------------------------------------------------------------------------------------------
// An in-memory chain over a real `Sequencer`.

struct MemChain {
    seq: Sequencer,
    blocks: Vec<(Block, Vec<TxReceipt>)>,
    by_hash: HashMap<B256, u64>,
    txs: HashMap<B256, (u64, u32)>,
}

struct MemBackend {
    chain: Mutex<MemChain>,
    /// Answer `braid_echo` in `extension` (tests the namespace hook).
    with_extension: bool,
}

impl MemBackend {
    fn new() -> Self {
        let mut config = SequencerConfig::new(CHAIN);
        config.fee_recipient = FEE_RECIPIENT;
        config.batch_blocks = 1_000;
        let alloc: Vec<(Address, U256)> = (0..3)
            .map(|i| (TxSigner::dev(i).address(), U256::from(10 * ETH)))
            .collect();
        let (seq, genesis) = Sequencer::genesis(config, &alloc).unwrap();
        let mut chain = MemChain {
            seq,
            blocks: vec![],
            by_hash: HashMap::new(),
            txs: HashMap::new(),
        };
        chain.by_hash.insert(genesis.hash, 0);
        chain.blocks.push((genesis.block, genesis.receipts));
        Self {
            chain: Mutex::new(chain),
            with_extension: false,
        }
    }

    /// Produces the next block; returns its number and how many transactions it included.
    fn produce_block(&self) -> (u64, usize) {
        let mut c = self.chain.lock().unwrap();
        let now_ms = c.seq.next_block_at_ms();
        let out = c.seq.handle(SequencerInput::Tick { now_ms });
        let mut produced = None;
        for o in out {
            if let SequencerOutput::BlockSealed(sealed) = o {
                let n = sealed.block.header.number;
                c.by_hash.insert(sealed.hash, n);
                for (i, r) in sealed.receipts.iter().enumerate() {
                    c.txs.insert(r.tx_hash, (n, i as u32));
                }
                produced = Some((n, sealed.receipts.len()));
                c.blocks.push((sealed.block, sealed.receipts));
            }
        }
        produced.unwrap()
    }

    fn pool_len(&self) -> usize {
        self.chain.lock().unwrap().seq.mempool().len()
    }

    fn state_root(&self) -> B256 {
        self.chain.lock().unwrap().seq.state_mut().state_root()
    }
}

impl ChainRpcBackend for MemBackend {
    fn chain_id(&self) -> u64 {
        CHAIN
    }
    fn head_number(&self) -> u64 {
        self.chain.lock().unwrap().seq.head().number
    }
    fn block_by_number(&self, n: u64) -> Option<(Block, Vec<TxReceipt>)> {
        let c = self.chain.lock().unwrap();
        c.blocks.get(usize::try_from(n).ok()?).cloned()
    }
    fn block_number_by_hash(&self, hash: B256) -> Option<u64> {
        self.chain.lock().unwrap().by_hash.get(&hash).copied()
    }
    fn tx_location(&self, hash: B256) -> Option<(u64, u32)> {
        self.chain.lock().unwrap().txs.get(&hash).copied()
    }
    fn pending_tx(&self, hash: B256) -> Option<RecoveredTx> {
        self.chain.lock().unwrap().seq.mempool().get(&hash).cloned()
    }
    fn balance(&self, a: Address) -> U256 {
        self.chain.lock().unwrap().seq.state().account(&a).balance
    }
    fn nonce(&self, a: Address, pending: bool) -> u64 {
        let c = self.chain.lock().unwrap();
        let nonce = c.seq.state().account(&a).nonce;
        if !pending {
            return nonce;
        }
        let state = c.seq.state();
        let pooled = c
            .seq
            .mempool()
            .ready(|x| state.account(x).nonce, 0)
            .iter()
            .filter(|t| t.sender == a)
            .count() as u64;
        nonce + pooled
    }
    fn next_base_fee(&self) -> u128 {
        self.chain.lock().unwrap().seq.next_base_fee()
    }
    fn send_raw_transaction(&self, raw: Bytes) -> Result<B256, String> {
        let mut c = self.chain.lock().unwrap();
        match c.seq.handle(SequencerInput::SubmitTx { raw }).pop() {
            Some(SequencerOutput::TxAccepted { hash, .. }) => Ok(hash),
            Some(SequencerOutput::TxRejected { error, .. }) => Err(error.to_string()),
            other => Err(format!("unexpected sequencer output {other:?}")),
        }
    }
    fn estimate_gas(
        &self,
        from: Address,
        to: Option<Address>,
        value: U256,
        input: Bytes,
    ) -> Result<u64, String> {
        let c = self.chain.lock().unwrap();
        braid_execution::estimate_gas(c.seq.state(), from, to, value, &input)
            .map_err(|e| e.to_string())
    }
    fn call(&self, from: Address, to: Address, value: U256, input: Bytes) -> Result<Bytes, String> {
        let c = self.chain.lock().unwrap();
        braid_execution::call_view(c.seq.state(), from, to, value, &input)
            .map_err(|e| e.to_string())
    }
    fn extension(&self, method: &str, params: &Value) -> Option<Result<Value, RpcError>> {
        if !self.with_extension {
            return None;
        }
        match method {
            "braid_echo" => Some(Ok(params.clone())),
            "braid_fail" => Some(Err(RpcError::server("braid failure"))),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn limits() -> RpcLimits {
    RpcLimits {
        max_block_range: 50,
        ..RpcLimits::default()
    }
}

fn raw_call(b: &MemBackend, body: &str) -> Value {
    let out = handle(b, body.as_bytes(), &limits());
    serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "response is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&out)
        )
    })
}

fn rpc(b: &MemBackend, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    raw_call(b, &body.to_string())
}

fn ok(b: &MemBackend, method: &str, params: Value) -> Value {
    let r = rpc(b, method, params.clone());
    assert_eq!(r["jsonrpc"], "2.0");
    assert_eq!(r["id"], 7);
    assert!(
        r.get("error").is_none(),
        "{method} {params} failed: {}",
        r["error"]
    );
    r["result"].clone()
}

fn err(b: &MemBackend, method: &str, params: Value) -> (i64, String) {
    let r = rpc(b, method, params.clone());
    assert!(
        r.get("result").is_none(),
        "{method} {params} unexpectedly succeeded: {}",
        r["result"]
    );
    (
        r["error"]["code"].as_i64().unwrap(),
        r["error"]["message"].as_str().unwrap().to_string(),
    )
}

fn q(n: u128) -> String {
    format!("{n:#x}")
}

fn addr(a: Address) -> String {
    format!("{a:#x}")
}

fn transfer(signer: u32, nonce: u64, to: Address, value: u128, tip: u128) -> Bytes {
    TxSigner::dev(signer)
        .sign_eip1559(TxEip1559 {
            chain_id: CHAIN,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: 100 * GWEI,
            max_priority_fee_per_gas: tip,
            to: TxKind::Call(to),
            value: U256::from(value),
            access_list: Default::default(),
            input: Bytes::new(),
        })
        .unwrap()
}

fn send_message_input(dest: u64, recipient: Address) -> Bytes {
    IMessenger::sendMessageCall {
        destChain: U256::from(dest),
        recipient,
        payload: Bytes::from_static(b"hi"),
    }
    .abi_encode()
    .into()
}

fn send_message(signer: u32, nonce: u64, recipient: Address, value: u128) -> Bytes {
    TxSigner::dev(signer)
        .call(
            CHAIN,
            nonce,
            MESSENGER_ADDRESS,
            U256::from(value),
            send_message_input(902, recipient),
            200_000,
        )
        .unwrap()
}

fn send_raw(b: &MemBackend, raw: &Bytes) -> B256 {
    let hash: B256 = serde_json::from_value(ok(b, "eth_sendRawTransaction", json!([raw]))).unwrap();
    assert_eq!(hash, keccak256(raw));
    hash
}

fn dev(i: u32) -> Address {
    TxSigner::dev(i).address()
}

/// A chain with: block 1 = two transfers (dev0 → 0x77, dev1 → 0x77), block 2 = empty,
/// block 3 = dev0 sendMessage + dev2 sendMessage (logs), block 4 = dev1 transfer.
struct Fixture {
    b: MemBackend,
    transfer0: B256,
    transfer1: B256,
    msg0: B256,
    msg2: B256,
    late: B256,
}

fn fixture() -> Fixture {
    let b = MemBackend::new();
    let transfer0 = send_raw(&b, &transfer(0, 0, Address::repeat_byte(0x77), 1_000, GWEI));
    let transfer1 = send_raw(
        &b,
        &transfer(1, 0, Address::repeat_byte(0x77), 2_000, 2 * GWEI),
    );
    assert_eq!(b.produce_block(), (1, 2));
    assert_eq!(b.produce_block(), (2, 0));
    let msg0 = send_raw(&b, &send_message(0, 1, Address::repeat_byte(0xaa), 5));
    let msg2 = send_raw(&b, &send_message(2, 0, Address::repeat_byte(0xbb), 0));
    assert_eq!(b.produce_block(), (3, 2));
    let late = send_raw(&b, &transfer(1, 1, Address::repeat_byte(0x78), 3, GWEI));
    assert_eq!(b.produce_block(), (4, 1));
    Fixture {
        b,
        transfer0,
        transfer1,
        msg0,
        msg2,
        late,
    }
}

/// What must not change when a request is rejected.
#[derive(Debug, PartialEq)]
struct Snapshot {
    head: u64,
    balances: Vec<U256>,
    nonces: Vec<u64>,
    pool: usize,
    state_root: B256,
}

fn snapshot(b: &MemBackend) -> Snapshot {
    Snapshot {
        head: b.head_number(),
        balances: (0..3).map(|i| b.balance(dev(i))).collect(),
        nonces: (0..3).map(|i| b.nonce(dev(i), true)).collect(),
        pool: b.pool_len(),
        state_root: b.state_root(),
    }
}

// ---------------------------------------------------------------------------------------------
// Simple methods.

#[test]
fn constant_methods_answer_with_ethereum_shapes() {
    let b = MemBackend::new();
    assert_eq!(ok(&b, "eth_chainId", json!([])), "0x385");
    assert_eq!(ok(&b, "net_version", json!([])), "901");
    assert_eq!(ok(&b, "web3_clientVersion", json!([])), CLIENT_VERSION);
    assert!(CLIENT_VERSION.starts_with("braid/0."));
    assert_eq!(ok(&b, "eth_syncing", json!([])), false);
    assert_eq!(ok(&b, "eth_accounts", json!([])), json!([]));
    assert_eq!(ok(&b, "eth_blockNumber", json!([])), "0x0");
    // params may be omitted entirely
    let r = raw_call(&b, r#"{"jsonrpc":"2.0","id":"s","method":"eth_chainId"}"#);
    assert_eq!(r, json!({"jsonrpc":"2.0","id":"s","result":"0x385"}));
    let next = b.next_base_fee();
    assert_eq!(next, GWEI, "an empty chain sits at the minimum base fee");
    assert_eq!(ok(&b, "eth_gasPrice", json!([])), q(next + GWEI));
    assert_eq!(ok(&b, "eth_maxPriorityFeePerGas", json!([])), q(GWEI));
    b.produce_block();
    assert_eq!(ok(&b, "eth_blockNumber", json!([])), "0x1");
}

#[test]
fn code_and_storage_mark_the_messenger_as_a_contract() {
    let b = MemBackend::new();
    assert_eq!(
        ok(
            &b,
            "eth_getCode",
            json!([addr(MESSENGER_ADDRESS), "latest"])
        ),
        "0xfe"
    );
    assert_eq!(ok(&b, "eth_getCode", json!([addr(dev(0))])), "0x");
    assert_eq!(
        ok(
            &b,
            "eth_getStorageAt",
            json!([addr(MESSENGER_ADDRESS), "0x0", "latest"])
        ),
        format!("0x{}", "0".repeat(64))
    );
    let (code, _) = err(&b, "eth_getCode", json!([addr(dev(0)), "0x5"]));
    assert_eq!(code, -32000, "block 5 does not exist yet");
    let (code, _) = err(&b, "eth_getStorageAt", json!([addr(dev(0))]));
    assert_eq!(code, -32602);
}

// ---------------------------------------------------------------------------------------------
// State: balances and nonces.

#[test]
fn balances_follow_the_latest_state_and_reject_history() {
    let f = fixture();
    let b = &f.b;
    let bal = |a: Address, tag: Value| -> U256 {
        serde_json::from_value(ok(b, "eth_getBalance", json!([addr(a), tag]))).unwrap()
    };
    let recipient = Address::repeat_byte(0x77);
    assert_eq!(bal(recipient, json!("latest")), U256::from(3_000u64));
    assert_eq!(bal(recipient, json!("pending")), U256::from(3_000u64));
    assert_eq!(bal(recipient, json!("0x4")), U256::from(3_000u64));
    assert_eq!(bal(recipient, Value::Null), U256::from(3_000u64));
    let head_hash = b.block_by_number(4).unwrap().0.header.hash();
    assert_eq!(
        bal(recipient, json!({"blockHash": head_hash})),
        U256::from(3_000u64)
    );
    // dev0 paid 1000 wei, a 5-wei message and fees at (base fee + 1 gwei tip)
    let dev0 = bal(dev(0), json!("latest"));
    assert_eq!(dev0, b.balance(dev(0)));
    assert!(dev0 < U256::from(10 * ETH - 1_005));
    let (code, msg) = err(b, "eth_getBalance", json!([addr(recipient), "0x1"]));
    assert_eq!(code, -32000);
    assert!(msg.contains("historical state"), "{msg}");
    let (code, msg) = err(b, "eth_getBalance", json!([addr(recipient), "0x9"]));
    assert_eq!(code, -32000);
    assert!(msg.contains("not found"), "{msg}");
    let (code, _) = err(b, "eth_getBalance", json!([addr(recipient), "earliest"]));
    assert_eq!(code, -32000);
}

#[test]
fn transaction_counts_for_every_block_tag() {
    let f = fixture();
    let b = &f.b;
    let count = |a: Address, tag: Value| -> Value {
        ok(b, "eth_getTransactionCount", json!([addr(a), tag]))
    };
    // dev0: nonce 0 in block 1, nonce 1 in block 3
    assert_eq!(count(dev(0), json!("latest")), "0x2");
    assert_eq!(count(dev(0), json!("earliest")), "0x0");
    assert_eq!(count(dev(0), json!("0x0")), "0x0");
    assert_eq!(count(dev(0), json!("0x1")), "0x1");
    assert_eq!(count(dev(0), json!("0x2")), "0x1");
    assert_eq!(count(dev(0), json!("0x3")), "0x2");
    assert_eq!(count(dev(1), json!("0x3")), "0x1");
    assert_eq!(count(dev(1), json!("safe")), "0x2");
    assert_eq!(count(dev(1), json!("finalized")), "0x2");
    let h2 = b.block_by_number(2).unwrap().0.header.hash();
    assert_eq!(count(dev(0), json!({ "blockHash": h2 })), "0x1");
    // pending counts consecutive pooled transactions only
    send_raw(b, &transfer(0, 2, Address::repeat_byte(1), 1, GWEI));
    send_raw(b, &transfer(0, 3, Address::repeat_byte(1), 1, GWEI));
    send_raw(b, &transfer(0, 5, Address::repeat_byte(1), 1, GWEI)); // gap: not counted
    assert_eq!(count(dev(0), json!("pending")), "0x4");
    assert_eq!(count(dev(0), json!("latest")), "0x2");
    let (code, _) = err(b, "eth_getTransactionCount", json!([addr(dev(0)), "0x10"]));
    assert_eq!(code, -32000);
}

#[test]
fn historical_nonce_reconstruction_is_bounded() {
    let b = MemBackend::new();
    for _ in 0..60 {
        b.produce_block();
    }
    let (code, _) = err(&b, "eth_getTransactionCount", json!([addr(dev(0)), "0x1"]));
    assert_eq!(code, -32005, "59 blocks back is over the limit of 50");
    assert_eq!(
        ok(&b, "eth_getTransactionCount", json!([addr(dev(0)), "0xa"])),
        "0x0"
    );
}

// ---------------------------------------------------------------------------------------------
// Transactions and receipts.

#[test]
fn pending_then_included_transaction_by_hash() {
    let b = MemBackend::new();
    let raw = transfer(0, 0, Address::repeat_byte(0x77), 1_000, GWEI);
    let hash = send_raw(&b, &raw);
    let tx = ok(&b, "eth_getTransactionByHash", json!([hash]));
    assert_eq!(tx["hash"], json!(hash));
    assert_eq!(tx["from"], addr(dev(0)));
    assert_eq!(tx["to"], addr(Address::repeat_byte(0x77)));
    assert_eq!(tx["value"], "0x3e8");
    assert_eq!(tx["nonce"], "0x0");
    assert_eq!(tx["type"], "0x2");
    assert_eq!(tx["chainId"], "0x385");
    assert_eq!(tx["blockHash"], Value::Null);
    assert_eq!(tx["blockNumber"], Value::Null);
    assert_eq!(tx["transactionIndex"], Value::Null);
    assert_eq!(
        ok(&b, "eth_getTransactionReceipt", json!([hash])),
        Value::Null,
        "no receipt while pending"
    );
    let parsed: alloy_rpc_types_eth::Transaction = serde_json::from_value(tx).unwrap();
    assert_eq!(parsed.inner.signer(), dev(0));

    b.produce_block();
    let tx = ok(&b, "eth_getTransactionByHash", json!([hash]));
    let block1 = b.block_by_number(1).unwrap().0.header.hash();
    assert_eq!(tx["blockHash"], json!(block1));
    assert_eq!(tx["blockNumber"], "0x1");
    assert_eq!(tx["transactionIndex"], "0x0");
    assert_eq!(
        tx["gasPrice"],
        q(2 * GWEI),
        "effective price: 1 gwei base + 1 gwei tip"
    );
    assert_eq!(tx["from"], addr(dev(0)));
    let unknown = B256::repeat_byte(9);
    assert_eq!(
        ok(&b, "eth_getTransactionByHash", json!([unknown])),
        Value::Null
    );
    assert_eq!(
        ok(&b, "eth_getTransactionReceipt", json!([unknown])),
        Value::Null
    );
}

#[test]
fn receipts_carry_status_gas_fees_and_positioned_logs() {
    let f = fixture();
    let b = &f.b;
    let r = ok(b, "eth_getTransactionReceipt", json!([f.transfer1]));
    let block1 = b.block_by_number(1).unwrap();
    // higher tip goes first
    assert_eq!(r["transactionIndex"], "0x0");
    assert_eq!(r["status"], "0x1");
    assert_eq!(r["type"], "0x2");
    assert_eq!(r["gasUsed"], "0x5208");
    assert_eq!(r["cumulativeGasUsed"], "0x5208");
    assert_eq!(r["effectiveGasPrice"], q(GWEI + 2 * GWEI));
    assert_eq!(r["from"], addr(dev(1)));
    assert_eq!(r["to"], addr(Address::repeat_byte(0x77)));
    assert_eq!(r["contractAddress"], Value::Null);
    assert_eq!(r["blockHash"], json!(block1.0.header.hash()));
    assert_eq!(r["logs"], json!([]));
    let r0 = ok(b, "eth_getTransactionReceipt", json!([f.transfer0]));
    assert_eq!(r0["transactionIndex"], "0x1");
    assert_eq!(r0["cumulativeGasUsed"], q(42_000));

    // block 3: two sendMessage calls, one MessageSent log each
    let block3 = b.block_by_number(3).unwrap();
    let (first, second) = if block3.1[0].tx_hash == f.msg0 {
        (f.msg0, f.msg2)
    } else {
        (f.msg2, f.msg0)
    };
    let r1 = ok(b, "eth_getTransactionReceipt", json!([first]));
    let r2 = ok(b, "eth_getTransactionReceipt", json!([second]));
    for (r, tx_index) in [(&r1, 0), (&r2, 1)] {
        assert_eq!(r["status"], "0x1");
        assert_eq!(r["to"], addr(MESSENGER_ADDRESS));
        assert_eq!(r["gasUsed"], q(block3.1[tx_index].gas_used as u128));
        let logs = r["logs"].as_array().unwrap();
        assert_eq!(logs.len(), 1);
        let log = &logs[0];
        assert_eq!(log["address"], addr(MESSENGER_ADDRESS));
        assert_eq!(
            log["topics"][0],
            json!(IMessenger::MessageSent::SIGNATURE_HASH)
        );
        assert_eq!(log["blockHash"], json!(block3.0.header.hash()));
        assert_eq!(log["blockNumber"], "0x3");
        assert_eq!(log["transactionIndex"], q(tx_index as u128));
        assert_eq!(
            log["logIndex"],
            q(tx_index as u128),
            "log index counts across the block"
        );
        assert_eq!(log["transactionHash"], r["transactionHash"]);
        assert_eq!(log["removed"], false);
    }
    assert!(block3.1[0].gas_used > 21_000);
    // a real client type parses it
    let parsed: alloy_rpc_types_eth::TransactionReceipt = serde_json::from_value(r2).unwrap();
    assert!(parsed.status());
    assert_eq!(parsed.inner.logs()[0].log_index, Some(1));
    assert_eq!(
        ok(b, "eth_getTransactionReceipt", json!([f.late]))["blockNumber"],
        "0x4"
    );
}

// ---------------------------------------------------------------------------------------------
// Blocks.

#[test]
fn blocks_by_number_tag_and_hash() {
    let f = fixture();
    let b = &f.b;
    let (block3, receipts3) = b.block_by_number(3).unwrap();
    let h = &block3.header;
    let json3 = ok(b, "eth_getBlockByNumber", json!(["0x3", false]));
    assert_eq!(json3["hash"], json!(h.hash()));
    assert_eq!(json3["parentHash"], json!(h.parentHash));
    assert_eq!(json3["number"], "0x3");
    assert_eq!(json3["timestamp"], q((h.timestampMs / 1000) as u128));
    assert_eq!(json3["stateRoot"], json!(h.stateRoot));
    assert_eq!(json3["transactionsRoot"], json!(h.txRoot));
    assert_eq!(json3["miner"], addr(FEE_RECIPIENT));
    assert_eq!(json3["gasLimit"], q(h.gasLimit as u128));
    assert_eq!(json3["gasUsed"], q(h.gasUsed as u128));
    assert_eq!(json3["baseFeePerGas"], q(h.baseFee));
    assert_eq!(json3["difficulty"], "0x0");
    assert_eq!(json3["extraData"], "0x");
    assert_eq!(json3["uncles"], json!([]));
    let hashes: Vec<B256> = receipts3.iter().map(|r| r.tx_hash).collect();
    assert_eq!(json3["transactions"], json!(hashes));
    // the bloom contains the messenger address; the receipts root is not the empty trie
    let parsed: alloy_rpc_types_eth::Block = serde_json::from_value(json3.clone()).unwrap();
    assert!(parsed
        .header
        .logs_bloom
        .contains_input(alloy_primitives::BloomInput::Raw(
            MESSENGER_ADDRESS.as_slice()
        )));
    assert_ne!(
        parsed.header.receipts_root,
        alloy_consensus::constants::EMPTY_RECEIPTS
    );
    let empty = ok(b, "eth_getBlockByNumber", json!(["0x2", false]));
    assert_eq!(
        empty["receiptsRoot"],
        json!(alloy_consensus::constants::EMPTY_RECEIPTS)
    );
    assert_eq!(empty["logsBloom"], json!(alloy_primitives::Bloom::ZERO));

    // full transactions
    let full = ok(b, "eth_getBlockByNumber", json!(["0x3", true]));
    let txs = full["transactions"].as_array().unwrap();
    assert_eq!(txs.len(), 2);
    for (i, tx) in txs.iter().enumerate() {
        assert_eq!(tx["hash"], json!(hashes[i]));
        assert_eq!(tx["blockNumber"], "0x3");
        assert_eq!(tx["transactionIndex"], q(i as u128));
        assert_eq!(tx["from"], addr(receipts3[i].from));
    }
    let _: alloy_rpc_types_eth::Block = serde_json::from_value(full.clone()).unwrap();
    assert_eq!(ok(b, "eth_getBlockByHash", json!([h.hash(), true])), full);
    assert_eq!(ok(b, "eth_getBlockByHash", json!([h.hash()])), json3);

    // tags
    let head_hash = json!(b.block_by_number(4).unwrap().0.header.hash());
    for tag in ["latest", "pending", "safe", "finalized"] {
        assert_eq!(
            ok(b, "eth_getBlockByNumber", json!([tag, false]))["hash"],
            head_hash,
            "{tag}"
        );
    }
    let genesis = ok(b, "eth_getBlockByNumber", json!(["earliest", false]));
    assert_eq!(genesis["number"], "0x0");
    assert_eq!(genesis["parentHash"], json!(B256::ZERO));
    assert_eq!(
        ok(b, "eth_getBlockByNumber", json!(["0x5", false])),
        Value::Null
    );
    assert_eq!(
        ok(
            b,
            "eth_getBlockByHash",
            json!([B256::repeat_byte(3), false])
        ),
        Value::Null
    );
    assert_eq!(
        ok(b, "eth_getBlockTransactionCountByNumber", json!(["0x3"])),
        "0x2"
    );
    assert_eq!(
        ok(b, "eth_getBlockTransactionCountByHash", json!([h.hash()])),
        "0x2"
    );
    let (code, _) = err(b, "eth_getBlockByNumber", json!(["newest", false]));
    assert_eq!(code, -32602, "unknown block tag");
}

// ---------------------------------------------------------------------------------------------
// Logs.

#[test]
fn get_logs_filters_by_range_hash_address_and_topics() {
    let f = fixture();
    let b = &f.b;
    let all = ok(
        b,
        "eth_getLogs",
        json!([{"fromBlock": "earliest", "toBlock": "latest"}]),
    );
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[0]["blockNumber"], "0x3");
    assert_eq!(all[0]["logIndex"], "0x0");
    assert_eq!(all[1]["logIndex"], "0x1");
    let _: Vec<alloy_rpc_types_eth::Log> = serde_json::from_value(all.clone()).unwrap();
    // default range is the head only (block 4: no logs)
    assert_eq!(ok(b, "eth_getLogs", json!([{}])), json!([]));
    assert_eq!(
        ok(
            b,
            "eth_getLogs",
            json!([{"fromBlock": "0x1", "toBlock": "0x2"}])
        ),
        json!([])
    );
    let h3 = b.block_by_number(3).unwrap().0.header.hash();
    assert_eq!(ok(b, "eth_getLogs", json!([{"blockHash": h3}])), all);
    let (code, _) = err(
        b,
        "eth_getLogs",
        json!([{"blockHash": B256::repeat_byte(1)}]),
    );
    assert_eq!(code, -32000);

    // address: single, array (OR), non-matching
    let m = addr(MESSENGER_ADDRESS);
    let range = |extra: Value| {
        let mut filter = json!({"fromBlock": "0x0", "toBlock": "0x4"});
        for (k, v) in extra.as_object().unwrap() {
            filter[k] = v.clone();
        }
        ok(b, "eth_getLogs", json!([filter]))
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(range(json!({"address": m})), 2);
    assert_eq!(
        range(json!({"address": [addr(Address::repeat_byte(5)), m]})),
        2
    );
    assert_eq!(range(json!({"address": addr(Address::repeat_byte(5))})), 0);

    // topics: MessageSent(uint64 indexed destChain, uint64 indexed nonce, address indexed sender)
    let sig = IMessenger::MessageSent::SIGNATURE_HASH;
    let sender_topic = |a: Address| B256::left_padding_from(a.as_slice());
    assert_eq!(range(json!({"topics": [sig]})), 2);
    assert_eq!(range(json!({"topics": [B256::repeat_byte(1)]})), 0);
    assert_eq!(
        range(json!({"topics": [null, null, null, sender_topic(dev(0))]})),
        1
    );
    assert_eq!(
        range(json!({"topics": [sig, null, null, [sender_topic(dev(0)), sender_topic(dev(2))]]})),
        2
    );
    assert_eq!(
        range(json!({"topics": [sig, null, null, sender_topic(dev(1))]})),
        0
    );
    let nonce1 = B256::from(U256::from(1u64));
    assert_eq!(range(json!({"topics": [null, null, nonce1]})), 1);
    // trailing null positions are wildcards
    assert_eq!(range(json!({"topics": [sig, null, null, null]})), 2);

    // bounds and bad ranges
    for _ in 0..60 {
        b.produce_block();
    }
    let (code, msg) = err(
        b,
        "eth_getLogs",
        json!([{"fromBlock": "0x0", "toBlock": "latest"}]),
    );
    assert_eq!(code, -32005, "{msg}");
    let (code, _) = err(
        b,
        "eth_getLogs",
        json!([{"fromBlock": "0x4", "toBlock": "0x3"}]),
    );
    assert_eq!(code, -32602);
    let (code, _) = err(
        b,
        "eth_getLogs",
        json!([{"fromBlock": "0x3", "blockHash": h3}]),
    );
    assert_eq!(code, -32602, "blockHash excludes a range");
    let (code, _) = err(b, "eth_getLogs", json!([{"topics": ["0x12"]}]));
    assert_eq!(code, -32602);
}

#[test]
fn get_logs_bounds_the_result_size() {
    let f = fixture();
    let small = RpcLimits {
        max_logs: 1,
        ..limits()
    };
    let body =
        json!({"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{"fromBlock":"0x0"}]});
    let out: Value =
        serde_json::from_slice(&handle(&f.b, body.to_string().as_bytes(), &small)).unwrap();
    assert_eq!(out["error"]["code"], -32005);
}

// ---------------------------------------------------------------------------------------------
// Fees.

#[test]
fn fee_history_reports_base_fees_ratios_and_tip_percentiles() {
    let f = fixture();
    let b = &f.b;
    let h = ok(
        b,
        "eth_feeHistory",
        json!(["0x4", "latest", [0.0, 50.0, 100.0]]),
    );
    assert_eq!(h["oldestBlock"], "0x1");
    let base: Vec<u128> = (1..=4)
        .map(|n| b.block_by_number(n).unwrap().0.header.baseFee)
        .collect();
    let mut expected_base: Vec<String> = base.iter().map(|x| q(*x)).collect();
    expected_base.push(q(b.next_base_fee()));
    assert_eq!(h["baseFeePerGas"], json!(expected_base));
    let ratios = h["gasUsedRatio"].as_array().unwrap();
    assert_eq!(ratios.len(), 4);
    assert_eq!(ratios[0].as_f64().unwrap(), 42_000.0 / 30_000_000.0);
    assert_eq!(ratios[1].as_f64().unwrap(), 0.0);
    // block 1: tips 2 gwei (first) and 1 gwei, equal gas: p0 = 1 gwei, p50 = 1 gwei, p100 = 2 gwei
    assert_eq!(h["reward"][0], json!([q(GWEI), q(GWEI), q(2 * GWEI)]));
    assert_eq!(h["reward"][1], json!(["0x0", "0x0", "0x0"]), "empty block");
    let parsed: alloy_rpc_types_eth::FeeHistory = serde_json::from_value(h).unwrap();
    assert_eq!(parsed.next_block_base_fee(), Some(b.next_base_fee()));

    // an older newest block takes the next base fee from the stored block
    let h = ok(b, "eth_feeHistory", json!([2, "0x2"]));
    assert_eq!(h["oldestBlock"], "0x1");
    assert_eq!(
        h["baseFeePerGas"],
        json!([q(base[0]), q(base[1]), q(base[2])])
    );
    assert!(h.get("reward").is_none() || h["reward"].is_null());
    // counts beyond the chain start at genesis
    let h = ok(b, "eth_feeHistory", json!(["0x64", "latest"]));
    assert_eq!(h["oldestBlock"], "0x0");
    assert_eq!(h["gasUsedRatio"].as_array().unwrap().len(), 5);
    for bad in [
        json!(["0x2", "latest", [50.0, 10.0]]),
        json!(["0x2", "latest", [101.0]]),
        json!(["2x", "latest"]),
        json!(["0x2"]),
        json!(["0x2", "bogus"]),
    ] {
        let (code, _) = err(b, "eth_feeHistory", bad.clone());
        assert_eq!(code, -32602, "{bad}");
    }
    let (code, _) = err(b, "eth_feeHistory", json!(["0x2", "0x9"]));
    assert_eq!(code, -32000);
}

// ---------------------------------------------------------------------------------------------
// Calls and gas estimation.

#[test]
fn estimate_gas_and_call_use_the_latest_state() {
    let b = MemBackend::new();
    let to = addr(Address::repeat_byte(0x77));
    let from = addr(dev(0));
    assert_eq!(
        ok(
            &b,
            "eth_estimateGas",
            json!([{"from": from, "to": to, "value": "0x1"}])
        ),
        "0x5208"
    );
    let input = send_message_input(902, Address::repeat_byte(1));
    let expected = braid_execution::intrinsic_gas(&input) + braid_execution::SEND_MESSAGE_GAS;
    assert_eq!(
        ok(
            &b,
            "eth_estimateGas",
            json!([{"from": from, "to": addr(MESSENGER_ADDRESS), "data": input}, "latest"])
        ),
        q(expected as u128)
    );
    // `input` and `data` both accepted; conflicting values rejected
    assert_eq!(
        ok(
            &b,
            "eth_estimateGas",
            json!([{"from": from, "to": addr(MESSENGER_ADDRESS), "input": input}, "pending"])
        ),
        q(expected as u128)
    );
    let (code, _) = err(
        &b,
        "eth_estimateGas",
        json!([{"from": from, "to": to, "input": "0x01", "data": "0x02"}]),
    );
    assert_eq!(code, -32602);
    let (code, msg) = err(
        &b,
        "eth_estimateGas",
        json!([{"from": from, "to": to, "value": q(100 * ETH)}]),
    );
    assert_eq!(code, -32000);
    assert!(msg.contains("insufficient balance"), "{msg}");
    let (code, _) = err(&b, "eth_estimateGas", json!([{"from": from}]));
    assert_eq!(code, -32000, "contract creation");
    let mut overrides = serde_json::Map::new();
    overrides.insert(addr(dev(0)), json!({"balance": "0x1"}));
    let (code, _) = err(
        &b,
        "eth_estimateGas",
        json!([{"from": from, "to": to}, "latest", overrides]),
    );
    assert_eq!(code, -32602, "state overrides are refused");

    // localRoot() view
    let call_input: Bytes = IMessenger::localRootCall {}.abi_encode().into();
    let out: Bytes = serde_json::from_value(ok(
        &b,
        "eth_call",
        json!([{"to": addr(MESSENGER_ADDRESS), "data": call_input}, "latest"]),
    ))
    .unwrap();
    let decoded = IMessenger::localRootCall::abi_decode_returns(&out).unwrap();
    assert_eq!(decoded.messageCount, 0);
    assert_eq!(ok(&b, "eth_call", json!([{"to": to, "data": "0x"}])), "0x");
    let (code, _) = err(&b, "eth_call", json!([{"data": "0x"}]));
    assert_eq!(code, -32000);
    let (code, msg) = err(
        &b,
        "eth_call",
        json!([{"to": addr(MESSENGER_ADDRESS), "data": "0xdeadbeef"}]),
    );
    assert_eq!(code, -32000);
    assert!(msg.contains("selector"), "{msg}");
    b.produce_block();
    let (code, _) = err(&b, "eth_call", json!([{"to": to}, "0x0"]));
    assert_eq!(code, -32000, "historical state");
}

// ---------------------------------------------------------------------------------------------
// Malformed input: right codes, no state change.

#[test]
fn malformed_requests_get_the_right_codes_and_change_nothing() {
    let f = fixture();
    let b = &f.b;
    send_raw(b, &transfer(2, 1, Address::repeat_byte(0x33), 1, GWEI));
    let before = snapshot(b);
    let code_of = |body: &str| -> i64 {
        let r = raw_call(b, body);
        r["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("no error for {body}: {r}"))
    };
    assert_eq!(code_of("{not json"), -32700);
    assert_eq!(code_of(""), -32700);
    assert_eq!(code_of("\u{0}\u{1}garbage"), -32700);
    assert_eq!(code_of("[1,2"), -32700);
    assert_eq!(raw_call(b, "{not json")["id"], Value::Null);
    assert_eq!(code_of("42"), -32600);
    assert_eq!(code_of("\"eth_chainId\""), -32600);
    assert_eq!(code_of("[]"), -32600);
    assert_eq!(
        code_of(r#"{"jsonrpc":"1.0","id":1,"method":"eth_chainId","params":[]}"#),
        -32600
    );
    let r = raw_call(b, r#"{"jsonrpc":"1.0","id":"x","method":"eth_chainId"}"#);
    assert_eq!(r["id"], "x", "the id is echoed when it is valid");
    assert_eq!(code_of(r#"{"id":1,"method":"eth_chainId"}"#), -32600);
    assert_eq!(code_of(r#"{"jsonrpc":"2.0","id":1,"method":5}"#), -32600);
    assert_eq!(code_of(r#"{"jsonrpc":"2.0","id":1}"#), -32600);
    assert_eq!(
        code_of(r#"{"jsonrpc":"2.0","id":{"a":1},"method":"eth_chainId"}"#),
        -32600
    );
    assert_eq!(
        code_of(r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":"x"}"#),
        -32600
    );
    // unknown methods
    let (code, msg) = err(b, "eth_mine", json!([]));
    assert_eq!(code, -32601);
    assert!(msg.contains("eth_mine"));
    let (code, _) = err(b, "braid_status", json!([]));
    assert_eq!(code, -32601, "no extension in this backend");
    // bad params
    for (method, params) in [
        ("eth_getBalance", json!(["0x1234", "latest"])),
        (
            "eth_getBalance",
            json!(["0xzz00000000000000000000000000000000000000"]),
        ),
        ("eth_getBalance", json!([])),
        ("eth_getBalance", json!([addr(dev(0)), "latest", 1])),
        ("eth_getBalance", json!([addr(dev(0)), "recent"])),
        ("eth_getBalance", json!({"address": addr(dev(0))})),
        ("eth_chainId", json!([1])),
        ("eth_getTransactionCount", json!([addr(dev(0)), "0xg"])),
        ("eth_getBlockByNumber", json!(["0x1", "yes"])),
        ("eth_getBlockByHash", json!(["0x1234", false])),
        ("eth_getTransactionByHash", json!([42])),
        ("eth_getTransactionReceipt", json!([])),
        ("eth_sendRawTransaction", json!(["0xnothex"])),
        ("eth_sendRawTransaction", json!(["0x"])),
        ("eth_sendRawTransaction", json!(["0x02f8deadbeef"])),
        ("eth_sendRawTransaction", json!([])),
        ("eth_call", json!([{"to": "0x12"}])),
        ("eth_getLogs", json!([{"address": "0x1"}])),
        ("eth_getLogs", json!(["latest"])),
    ] {
        let (code, msg) = err(b, method, params.clone());
        assert_eq!(code, -32602, "{method} {params}: {msg}");
    }
    // pool errors are -32000 with the pool's message
    let (code, msg) = err(
        b,
        "eth_sendRawTransaction",
        json!([transfer(0, 0, Address::repeat_byte(1), 1, GWEI)]),
    );
    assert_eq!(code, -32000);
    assert!(msg.contains("nonce too low"), "{msg}");
    let (code, msg) = err(
        b,
        "eth_sendRawTransaction",
        json!([transfer(0, 2, Address::repeat_byte(1), 100 * ETH, GWEI)]),
    );
    assert_eq!(code, -32000);
    assert!(msg.contains("insufficient balance"), "{msg}");
    let wrong_chain = TxSigner::dev(0)
        .call(
            1,
            2,
            Address::repeat_byte(1),
            U256::ZERO,
            Bytes::new(),
            21_000,
        )
        .unwrap();
    let (code, msg) = err(b, "eth_sendRawTransaction", json!([wrong_chain]));
    assert_eq!(code, -32000);
    assert!(msg.contains("chain"), "{msg}");
    let pooled = b.chain.lock().unwrap().seq.mempool().len();
    assert_eq!(pooled, 1);
    let (code, msg) = err(
        b,
        "eth_sendRawTransaction",
        json!([transfer(2, 1, Address::repeat_byte(0x33), 1, GWEI)]),
    );
    assert_eq!(code, -32000);
    assert!(msg.contains("already known"), "{msg}");
    // oversize body and batch
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[],"pad":"{}"}}"#,
        "x".repeat(600)
    );
    let small = RpcLimits {
        max_body_bytes: 512,
        max_batch: 3,
        ..limits()
    };
    let out: Value = serde_json::from_slice(&handle(b, big.as_bytes(), &small)).unwrap();
    assert_eq!(out["error"]["code"], -32600);
    let one = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}"#;
    let batch4 = format!("[{one},{one},{one},{one}]");
    let out: Value = serde_json::from_slice(&handle(b, batch4.as_bytes(), &small)).unwrap();
    assert_eq!(out["error"]["code"], -32600, "{out}");
    let batch3 = format!("[{one},{one},{one}]");
    let out: Value = serde_json::from_slice(&handle(b, batch3.as_bytes(), &small)).unwrap();
    assert_eq!(out.as_array().unwrap().len(), 3);
    // a batch of sends over the limit is refused whole: nothing entered the pool
    let sends: Vec<Value> = (0..4)
        .map(|i| {
            json!({"jsonrpc":"2.0","id":i,"method":"eth_sendRawTransaction",
                   "params":[transfer(2, 2 + i, Address::repeat_byte(1), 1, GWEI)]})
        })
        .collect();
    let out: Value =
        serde_json::from_slice(&handle(b, json!(sends).to_string().as_bytes(), &small)).unwrap();
    assert_eq!(out["error"]["code"], -32600);

    assert_eq!(snapshot(b), before, "rejected requests changed state");
}

#[test]
fn batches_answer_in_order_and_skip_notifications() {
    let b = MemBackend::new();
    let body = r#"[
        {"jsonrpc":"2.0","id":1,"method":"eth_chainId"},
        {"jsonrpc":"2.0","method":"eth_blockNumber"},
        {"jsonrpc":"2.0","id":"two","method":"nope"},
        5,
        {"jsonrpc":"2.0","id":null,"method":"net_version","params":[]}
    ]"#;
    let r = raw_call(&b, body);
    let r = r.as_array().unwrap();
    assert_eq!(r.len(), 4, "the notification gets no answer");
    assert_eq!(r[0], json!({"jsonrpc":"2.0","id":1,"result":"0x385"}));
    assert_eq!(r[1]["id"], "two");
    assert_eq!(r[1]["error"]["code"], -32601);
    assert_eq!(r[2]["id"], Value::Null);
    assert_eq!(r[2]["error"]["code"], -32600);
    assert_eq!(r[3], json!({"jsonrpc":"2.0","id":null,"result":"901"}));
    // only notifications: empty body; notifications still execute
    let raw = transfer(0, 0, Address::repeat_byte(1), 1, GWEI);
    let body = json!([
        {"jsonrpc":"2.0","method":"eth_chainId"},
        {"jsonrpc":"2.0","method":"eth_sendRawTransaction","params":[raw]}
    ]);
    assert!(handle(&b, body.to_string().as_bytes(), &limits()).is_empty());
    assert_eq!(b.pool_len(), 1);
    let single = r#"{"jsonrpc":"2.0","method":"eth_chainId"}"#;
    assert!(handle(&b, single.as_bytes(), &limits()).is_empty());
}

#[test]
fn extension_methods_reach_the_backend() {
    let mut b = MemBackend::new();
    b.with_extension = true;
    assert_eq!(ok(&b, "braid_echo", json!([1, "a"])), json!([1, "a"]));
    let (code, msg) = err(&b, "braid_fail", json!([]));
    assert_eq!((code, msg.as_str()), (-32000, "braid failure"));
    let (code, _) = err(&b, "braid_unknown", json!([]));
    assert_eq!(code, -32601);
    // standard methods are not overridable through the extension
    assert_eq!(ok(&b, "eth_chainId", json!([])), "0x385");
}

#[test]
fn mutated_requests_never_panic_or_change_state() {
    let f = fixture();
    let b = &f.b;
    let before = snapshot(b);
    let seeds = [
        json!({"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{"fromBlock":"0x0","topics":[null,["0x01"]]}]}).to_string(),
        json!({"jsonrpc":"2.0","id":1,"method":"eth_feeHistory","params":["0x4","latest",[10.0,90.0]]}).to_string(),
        json!([{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0x3",true]},
               {"jsonrpc":"2.0","id":2,"method":"eth_getTransactionCount","params":[addr(dev(0)),"0x1"]}]).to_string(),
        json!({"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":[transfer(0, 0, Address::repeat_byte(1), 1, GWEI)]}).to_string(),
    ];
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for seed in &seeds {
        let bytes = seed.as_bytes();
        for cut in 0..bytes.len() {
            let _ = handle(b, &bytes[..cut], &limits());
        }
        for _ in 0..400 {
            let mut m = bytes.to_vec();
            for _ in 0..1 + next() % 4 {
                let i = (next() % m.len() as u64) as usize;
                m[i] = b"0x19af\"[]{},:nul-e"[(next() % 18) as usize];
            }
            let out = handle(b, &m, &limits());
            if !out.is_empty() {
                let _: Value = serde_json::from_slice(&out).unwrap();
            }
        }
    }
    assert_eq!(snapshot(b), before);
}

// ---------------------------------------------------------------------------------------------
// The HTTP server, driven by a real Ethereum client library.

mod http {
    use super::*;
    use alloy_network::{EthereumWallet, TransactionBuilder};
    use alloy_provider::{Provider, ProviderBuilder};
    use alloy_rpc_types_eth::{BlockNumberOrTag, TransactionRequest};
    use alloy_signer_local::PrivateKeySigner;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `TxSigner::dev(0)`'s secret, recomputed independently.
    fn dev0_secret() -> B256 {
        let mut seed = b"braid dev account".to_vec();
        seed.extend_from_slice(&0u32.to_be_bytes());
        keccak256(&seed)
    }

    async fn raw_http(addr: SocketAddr, request: String) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    fn post(body: &str) -> String {
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn alloy_provider_sends_a_transfer_and_reads_the_receipt() {
        let backend = Arc::new(MemBackend::new());
        let server = crate::serve(
            "127.0.0.1:0".parse().unwrap(),
            backend.clone(),
            RpcLimits::default(),
        )
        .await
        .unwrap();
        let url = format!("http://{}", server.local_addr());

        let signer = PrivateKeySigner::from_bytes(&dev0_secret()).unwrap();
        assert_eq!(signer.address(), dev(0));
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer))
            .connect_http(url.parse().unwrap());

        assert_eq!(provider.get_chain_id().await.unwrap(), CHAIN);
        assert_eq!(provider.get_block_number().await.unwrap(), 0);
        assert_eq!(
            provider.get_balance(dev(0)).await.unwrap(),
            U256::from(10 * ETH)
        );

        // a plain transfer, filled (nonce, gas, fees, chain id) and signed by alloy
        let recipient = Address::repeat_byte(0x42);
        let tx = TransactionRequest::default()
            .with_to(recipient)
            .with_value(U256::from(12_345u64));
        let pending = provider.send_transaction(tx).await.unwrap();
        let transfer_hash = *pending.tx_hash();
        let pooled = provider
            .get_transaction_by_hash(transfer_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(pooled.block_number, None);
        assert_eq!(
            provider
                .get_transaction_count(dev(0))
                .pending()
                .await
                .unwrap(),
            1
        );

        // a messenger call (alloy estimates its gas through eth_estimateGas)
        let msg = TransactionRequest::default()
            .with_to(MESSENGER_ADDRESS)
            .with_value(U256::from(7u64))
            .with_input(send_message_input(902, Address::repeat_byte(0xcc)));
        let msg_hash = *provider.send_transaction(msg).await.unwrap().tx_hash();
        assert_eq!(backend.produce_block(), (1, 2));

        let receipt = provider
            .get_transaction_receipt(transfer_hash)
            .await
            .unwrap()
            .expect("receipt");
        assert!(receipt.status());
        assert_eq!(receipt.gas_used, 21_000);
        assert_eq!(receipt.block_number, Some(1));
        assert_eq!(receipt.from, dev(0));
        assert_eq!(receipt.to, Some(recipient));
        assert!(receipt.inner.logs().is_empty());
        assert!(
            receipt.effective_gas_price >= backend.block_by_number(1).unwrap().0.header.baseFee
        );

        let receipt = provider
            .get_transaction_receipt(msg_hash)
            .await
            .unwrap()
            .expect("receipt");
        assert!(receipt.status());
        assert!(receipt.gas_used > 21_000);
        assert_eq!(receipt.transaction_index, Some(1));
        let logs = receipt.inner.logs();
        assert_eq!(logs.len(), 1);
        let event = logs[0].log_decode::<IMessenger::MessageSent>().unwrap();
        assert_eq!(event.inner.data.destChain, 902);
        assert_eq!(event.inner.data.sender, dev(0));
        assert_eq!(event.inner.data.recipient, Address::repeat_byte(0xcc));
        assert_eq!(event.inner.data.value, U256::from(7u64));
        assert_eq!(logs[0].block_number, Some(1));

        assert_eq!(provider.get_block_number().await.unwrap(), 1);
        assert_eq!(
            provider.get_balance(recipient).await.unwrap(),
            U256::from(12_345u64)
        );
        let block = provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .full()
            .await
            .unwrap()
            .expect("block");
        assert_eq!(block.header.number, 1);
        assert_eq!(
            block.header.hash,
            backend.block_by_number(1).unwrap().0.header.hash()
        );
        assert_eq!(block.transactions.len(), 2);
        let history = provider
            .get_fee_history(2, BlockNumberOrTag::Latest, &[50.0])
            .await
            .unwrap();
        assert_eq!(history.base_fee_per_gas.len(), 3);
        let code = provider.get_code_at(MESSENGER_ADDRESS).await.unwrap();
        assert_eq!(code.as_ref(), crate::MESSENGER_CODE_MARKER);

        // pool errors surface as RPC errors in the client
        let err = provider
            .send_raw_transaction(&transfer(0, 0, recipient, 1, GWEI))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("nonce too low"), "{err}");

        server.shutdown().await.unwrap();
        assert!(
            tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
                .await
                .is_err()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http_limits_cors_and_shutdown_signal() {
        let backend: Arc<dyn ChainRpcBackend> = Arc::new(MemBackend::new());
        let limits = RpcLimits {
            max_body_bytes: 256,
            requests_per_second: 1,
            burst: 3,
            ..RpcLimits::default()
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr, task) = crate::serve_with_shutdown(
            "127.0.0.1:0".parse().unwrap(),
            backend,
            limits,
            async move {
                let _ = stop_rx.await;
            },
        )
        .await
        .unwrap();
        let ok_body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#;
        let resp = raw_http(addr, post(ok_body)).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(
            resp.to_ascii_lowercase()
                .contains("access-control-allow-origin: *"),
            "{resp}"
        );
        let body: Value = serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body, json!({"jsonrpc":"2.0","id":1,"result":"0x385"}));
        let preflight = raw_http(
            addr,
            "OPTIONS / HTTP/1.1\r\nHost: x\r\nOrigin: http://a\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n".into(),
        )
        .await;
        assert!(preflight.starts_with("HTTP/1.1 204"), "{preflight}");
        assert!(preflight
            .to_ascii_lowercase()
            .contains("access-control-allow-methods: post"));
        let big = raw_http(addr, post(&"x".repeat(1_000))).await;
        assert!(big.starts_with("HTTP/1.1 413"), "{big}");
        assert!(big.contains("-32600"), "{big}");
        // the burst of 3 is used up by two POSTs above plus one more; then, at 1 request/s,
        // nearly everything sent right away is refused
        let mut refused = 0;
        let mut last = String::new();
        for _ in 0..6 {
            last = raw_http(addr, post(ok_body)).await;
            if last.starts_with("HTTP/1.1 429") {
                refused += 1;
                assert!(last.contains("-32005"), "{last}");
            }
        }
        assert!(refused >= 4, "only {refused} of 6 refused; last: {last}");
        stop_tx.send(()).unwrap();
        task.await.unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
