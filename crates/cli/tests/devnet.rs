//! End-to-end tests of `braid devnet`: the real binary as a child process, driven over its
//! printed JSON-RPC endpoints by a real Ethereum client library (alloy) and by hand-written HTTP.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_network::{EthereumWallet, TransactionBuilder};
use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_provider::{Provider, ProviderBuilder};
use alloy_rpc_types_eth::{TransactionReceipt, TransactionRequest};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolEvent};
use braid_execution::TxSigner;
use braid_primitives::{IMessenger, MESSENGER_ADDRESS};
use serde_json::{json, Value};

const SOURCE: u64 = 901;
const DEST: u64 = 902;
const GWEI: u64 = 1_000_000_000;
/// Upper bound for anything the devnet should do within a few of its (200 ms) blocks.
const TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The devnet child process.

/// A running `braid devnet` child. Dropping it SIGKILLs the process (also when a test panics)
/// and, if the test is failing, prints the tail of the devnet's output.
struct Devnet {
    child: Child,
    /// JSON-RPC URL of each chain, as printed.
    rpc: BTreeMap<u64, String>,
    /// The status page address, as printed.
    status: String,
    /// Dev account 0's address, as printed.
    account0: Address,
    output: Arc<Mutex<Vec<String>>>,
}

impl Devnet {
    /// Starts a fast two-chain devnet on ephemeral ports, in `datadir` if given.
    fn start(datadir: Option<&Path>, chains: u64) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_braid"));
        cmd.args(["--log", "info", "devnet", "--chains"])
            .arg(chains.to_string())
            .args(["--rpc-port", "0", "--status-port", "0"])
            .args(["--block-time-ms", "200", "--sl-block-time-ms", "200"])
            .args(["--batch-blocks", "2"]);
        if let Some(dir) = datadir {
            cmd.arg("--datadir").arg(dir);
        }
        let mut child = cmd
            .env_remove("BRAID_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn braid");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (lines_tx, lines) = mpsc::channel::<String>();
        // Both pipes are drained for the child's whole life (a full pipe would block its logging).
        let stdout = child.stdout.take().expect("stdout");
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                out.lock().unwrap().push(line.clone());
                let _ = lines_tx.send(line);
            }
        });
        let stderr = child.stderr.take().expect("stderr");
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                out.lock().unwrap().push(format!("[stderr] {line}"));
            }
        });
        let mut devnet = Self {
            child,
            rpc: BTreeMap::new(),
            status: String::new(),
            account0: Address::ZERO,
            output,
        };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(left) {
                Ok(l) => l,
                Err(e) => panic!("devnet did not print its endpoints ({e})"),
            };
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("chain ") {
                let mut parts = rest.split_whitespace();
                let id: u64 = parts.next().unwrap().parse().unwrap();
                let url = parts.next().unwrap().to_string();
                assert!(url.starts_with("http://127.0.0.1:"), "{line}");
                devnet.rpc.insert(id, url);
            } else if let Some(rest) = t.strip_prefix("Status page: http://") {
                devnet.status = rest.split('/').next().unwrap().to_string();
            } else if let Some(rest) = t.strip_prefix("(0) ") {
                let mut parts = rest.split_whitespace();
                devnet.account0 = parts.next().unwrap().parse().unwrap();
                assert_eq!(parts.next(), Some("key"));
                let key: B256 = parts.next().unwrap().parse().unwrap();
                assert_eq!(key, TxSigner::dev_secret(0), "printed key of account 0");
            } else if t.starts_with("Autorelay") {
                break;
            }
        }
        let expected: Vec<u64> = (0..chains).map(|i| SOURCE + i).collect();
        assert_eq!(devnet.rpc.keys().copied().collect::<Vec<_>>(), expected);
        assert!(!devnet.status.is_empty(), "no status page line");
        assert_eq!(devnet.account0, TxSigner::dev(0).address());
        // port 0 means one free port per server: all distinct, none of them 0
        let mut ports: Vec<u16> = devnet
            .rpc
            .values()
            .map(|u| u.rsplit(':').next().unwrap().parse().unwrap())
            .collect();
        ports.push(devnet.status.rsplit(':').next().unwrap().parse().unwrap());
        let n = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), n, "ports must be distinct");
        assert!(!ports.contains(&0));
        devnet
    }

    fn url(&self, chain: u64) -> &str {
        &self.rpc[&chain]
    }

    /// `host:port` of a chain's JSON-RPC server.
    fn addr(&self, chain: u64) -> &str {
        self.url(chain).trim_start_matches("http://")
    }

    /// SIGKILLs the process and waits for it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let out = self.output.lock().unwrap_or_else(|p| p.into_inner());
            let tail = out.len().saturating_sub(80);
            eprintln!("---- last devnet output ----");
            for line in &out[tail..] {
                eprintln!("{line}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON-RPC helpers.

/// One HTTP/1.1 POST over a plain TCP connection; returns the status code and the body.
fn http_post(addr: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "unexpected chunked response: {head}"
    );
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    (status, body.to_string())
}

/// POSTs `body` and parses the JSON answer.
fn raw_rpc(addr: &str, body: &str) -> Value {
    let (status, body) = http_post(addr, body);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Calls `method` and returns its result (panics on an error answer).
fn rpc(addr: &str, method: &str, params: Value) -> Value {
    let req = json!({ "jsonrpc": "2.0", "id": 7, "method": method, "params": params });
    let v = raw_rpc(addr, &req.to_string());
    assert_eq!(v["id"], 7, "{v}");
    v.get("result")
        .cloned()
        .unwrap_or_else(|| panic!("{method} failed: {v}"))
}

/// Calls `method`, expects an error answer and returns its code.
fn rpc_error_code(addr: &str, body: &str) -> i64 {
    let v = raw_rpc(addr, body);
    assert!(
        v.get("result").is_none(),
        "expected an error for {body}: {v}"
    );
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    v["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no error code: {v}"))
}

fn quantity(v: &Value) -> U256 {
    v.as_str()
        .and_then(|s| U256::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| panic!("not a quantity: {v}"))
}

fn head(addr: &str) -> u64 {
    quantity(&rpc(addr, "eth_blockNumber", json!([]))).to::<u64>()
}

fn balance(addr: &str, who: Address) -> U256 {
    quantity(&rpc(addr, "eth_getBalance", json!([who, "latest"])))
}

fn nonce(addr: &str, who: Address, tag: &str) -> u64 {
    quantity(&rpc(addr, "eth_getTransactionCount", json!([who, tag]))).to::<u64>()
}

fn message_status(addr: &str, id: &str) -> Value {
    rpc(addr, "braid_messageStatus", json!([id]))
}

fn batch_status(addr: &str, batch: u64) -> Value {
    rpc(addr, "braid_batchStatus", json!([batch]))["status"].clone()
}

/// Whether message `(source, nonce)` has executed on the chain at `addr` (`isExecuted` through
/// `eth_call`).
fn is_executed(addr: &str, source: u64, nonce: u64) -> bool {
    let input = IMessenger::isExecutedCall {
        sourceChain: source,
        nonce,
    }
    .abi_encode();
    let out = rpc(
        addr,
        "eth_call",
        json!([{ "to": MESSENGER_ADDRESS, "data": Bytes::from(input) }, "latest"]),
    );
    let out: Bytes = serde_json::from_value(out).unwrap();
    IMessenger::isExecutedCall::abi_decode_returns(&out).unwrap()
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after [`TIMEOUT`].
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// As [`wait_for`], for async checks.
async fn wait_for_async<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the receipt of `hash` through the provider.
async fn receipt<P: Provider>(provider: &P, hash: B256) -> TransactionReceipt {
    wait_for_async("a receipt", || async {
        provider.get_transaction_receipt(hash).await.unwrap()
    })
    .await
}

fn send_message_tx(dest: u64, recipient: Address, value: U256, mode: u8) -> TransactionRequest {
    let input = IMessenger::sendMessageWithModeCall {
        destChain: U256::from(dest),
        recipient,
        payload: Bytes::from(format!("braid e2e mode {mode}").into_bytes()),
        mode,
    }
    .abi_encode();
    TransactionRequest::default()
        .with_to(MESSENGER_ADDRESS)
        .with_value(value)
        .with_input(input)
}

/// The `MessageSent` event of a successful send's receipt.
fn sent_event(receipt: &TransactionReceipt) -> IMessenger::MessageSent {
    assert!(receipt.status(), "send reverted: {receipt:?}");
    let logs = receipt.inner.logs();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0].address(), MESSENGER_ADDRESS);
    IMessenger::MessageSent::decode_log(&logs[0].inner)
        .unwrap()
        .data
}

fn fee(receipt: &TransactionReceipt) -> U256 {
    U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price)
}

/// A wallet provider for dev account 0 on `url`.
fn wallet_provider(url: &str) -> impl Provider {
    let signer = PrivateKeySigner::from_bytes(&TxSigner::dev_secret(0)).unwrap();
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url.parse().unwrap())
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_and_messages_flow_a_to_b_in_every_mode() {
    let devnet = Devnet::start(None, 2);
    let me = devnet.account0;
    let p901 = wallet_provider(devnet.url(SOURCE));
    let p902 = ProviderBuilder::new().connect_http(devnet.url(DEST).parse().unwrap());
    assert_eq!(p901.get_chain_id().await.unwrap(), SOURCE);
    assert_eq!(p902.get_chain_id().await.unwrap(), DEST);

    // a plain value transfer on 901, filled and signed by alloy
    let payee = Address::repeat_byte(0x5a);
    let start_balance = p901.get_balance(me).await.unwrap();
    assert_eq!(p901.get_balance(payee).await.unwrap(), U256::ZERO);
    let amount = U256::from(123_456_789u64 * GWEI);
    let tx = TransactionRequest::default()
        .with_to(payee)
        .with_value(amount);
    let hash = *p901.send_transaction(tx).await.unwrap().tx_hash();
    let r = receipt(&p901, hash).await;
    assert!(r.status());
    assert_eq!(r.gas_used, 21_000);
    assert_eq!(r.from, me);
    assert_eq!(r.to, Some(payee));
    assert_eq!(p901.get_balance(payee).await.unwrap(), amount);
    let mut spent = amount + fee(&r);
    assert_eq!(p901.get_balance(me).await.unwrap(), start_balance - spent);

    // one message per mode, 901 -> 902, each with its own value, to a fresh recipient
    let recipient = Address::repeat_byte(0xb7);
    assert_eq!(p902.get_balance(recipient).await.unwrap(), U256::ZERO);
    let values: Vec<U256> = [1u64, 2, 3]
        .iter()
        .map(|k| U256::from(k * 1_000_000 * GWEI))
        .collect();
    let mut hashes = Vec::new();
    for (mode, value) in values.iter().enumerate() {
        let tx = send_message_tx(DEST, recipient, *value, mode as u8);
        hashes.push(*p901.send_transaction(tx).await.unwrap().tx_hash());
    }
    let mut nonces = Vec::new();
    for (mode, hash) in hashes.iter().enumerate() {
        let r = receipt(&p901, *hash).await;
        let event = sent_event(&r);
        assert_eq!(event.destChain, DEST);
        assert_eq!(event.sender, me);
        assert_eq!(event.recipient, recipient);
        assert_eq!(event.value, values[mode]);
        assert_eq!(usize::from(event.mode), mode);
        spent += values[mode] + fee(&r);
        nonces.push(event.nonce);
    }
    let mut distinct = nonces.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "message nonces {nonces:?}");
    assert_eq!(p901.get_balance(me).await.unwrap(), start_balance - spent);

    // the relayer executes all three on 902
    let executed = |nonce: u64| {
        let p = &p902;
        async move {
            let input = IMessenger::isExecutedCall {
                sourceChain: SOURCE,
                nonce,
            }
            .abi_encode();
            let call = TransactionRequest::default()
                .with_to(MESSENGER_ADDRESS)
                .with_input(input);
            let out = p.call(call).await.unwrap();
            IMessenger::isExecutedCall::abi_decode_returns(&out).unwrap()
        }
    };
    let started = Instant::now();
    wait_for_async("all three messages to execute on 902", || async {
        for n in &nonces {
            if !executed(*n).await {
                return None;
            }
        }
        Some(())
    })
    .await;
    eprintln!(
        "three messages executed on 902 {:.1} s after their receipts",
        started.elapsed().as_secs_f64()
    );
    let total = values.iter().fold(U256::ZERO, |a, v| a + *v);
    assert_eq!(p902.get_balance(recipient).await.unwrap(), total);
    assert_eq!(p901.get_balance(recipient).await.unwrap(), U256::ZERO);
    // nothing else executed from 901 (the next nonce is not executed)
    let next = nonces.iter().max().unwrap() + 1;
    assert!(!executed(next).await);

    // the braid_ namespace agrees, per message
    for (mode, nonce) in nonces.iter().enumerate() {
        let id = format!("{SOURCE}:{nonce}");
        let status = message_status(devnet.addr(DEST), &id);
        let expected_mode = ["precommit", "commit", "proof"][mode];
        assert_eq!(status["id"], id.as_str(), "{status}");
        assert_eq!(status["mode"], expected_mode, "{status}");
        assert_eq!(status["source"], SOURCE, "{status}");
        assert_eq!(status["dest"], DEST, "{status}");
        assert_eq!(status["value"], values[mode].to_string(), "{status}");
        let s = status["status"].as_str().unwrap();
        assert!(s.starts_with("executed in block "), "{status}");
        assert!(status["latency_ms"].is_u64(), "{status}");
        // the source chain's RPC serves the same view
        assert_eq!(message_status(devnet.addr(SOURCE), &id), status);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_devnet_restarts_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut devnet = Devnet::start(Some(dir.path()), 2);
    let me = devnet.account0;
    let (a, b) = (
        devnet.addr(SOURCE).to_string(),
        devnet.addr(DEST).to_string(),
    );
    let p901 = wallet_provider(devnet.url(SOURCE));

    // a few transfers and a commit-mode message
    let payee = Address::repeat_byte(0x3c);
    let recipient = Address::repeat_byte(0x4d);
    let mut hashes = Vec::new();
    for k in 1..=3u64 {
        let tx = TransactionRequest::default()
            .with_to(payee)
            .with_value(U256::from(k * GWEI));
        hashes.push(*p901.send_transaction(tx).await.unwrap().tx_hash());
    }
    let value = U256::from(5_000_000 * GWEI);
    let msg = send_message_tx(DEST, recipient, value, 1);
    hashes.push(*p901.send_transaction(msg).await.unwrap().tx_hash());
    let mut last_block = 0;
    for h in &hashes {
        let r = receipt(&p901, *h).await;
        assert!(r.status());
        last_block = last_block.max(r.block_number.unwrap());
    }
    let msg_receipt = receipt(&p901, hashes[3]).await;
    let msg_nonce = sent_event(&msg_receipt).nonce;
    let msg_id = format!("{SOURCE}:{msg_nonce}");

    // wait for the message to execute and the batch holding the txs to be executed on the SL
    let last_batch = last_block.div_ceil(2);
    let (a2, b2) = (a.clone(), b.clone());
    tokio::task::spawn_blocking(move || {
        wait_for("the message to execute", || {
            is_executed(&b2, SOURCE, msg_nonce).then_some(())
        });
        wait_for("the txs' batch to be executed on the SL", || {
            (batch_status(&a2, last_batch) == "executed").then_some(())
        });
    })
    .await
    .unwrap();

    // a proof-mode message still in flight when the process dies
    let late = Address::repeat_byte(0x7f);
    let late_value = U256::from(3_000_000 * GWEI);
    let hash = *p901
        .send_transaction(send_message_tx(DEST, late, late_value, 2))
        .await
        .unwrap()
        .tx_hash();
    hashes.push(hash);
    let late_nonce = sent_event(&receipt(&p901, hash).await).nonce;
    assert_eq!(late_nonce, msg_nonce + 1);

    // what must survive
    let before_heads = (head(&a), head(&b));
    let receipts_before: Vec<Value> = hashes
        .iter()
        .map(|h| rpc(&a, "eth_getTransactionReceipt", json!([h])))
        .collect();
    let block_before = rpc(
        &a,
        "eth_getBlockByNumber",
        json!([format!("{last_block:#x}"), false]),
    );
    let balances_before = (
        balance(&a, me),
        balance(&a, payee),
        balance(&b, recipient),
        balance(&b, me),
    );
    assert_eq!(balances_before.1, U256::from(6 * GWEI));
    assert_eq!(balances_before.2, value);
    let nonce_before = nonce(&a, me, "latest");
    assert_eq!(nonce_before, 5);
    let status_before = message_status(&b, &msg_id);
    assert!(
        status_before["status"]
            .as_str()
            .unwrap()
            .starts_with("executed in block "),
        "{status_before}"
    );
    let executed_batches: Vec<(u64, u64)> = [(SOURCE, &a), (DEST, &b)]
        .iter()
        .flat_map(|(chain, addr)| {
            (1..)
                .take_while(|n| batch_status(addr, *n) == "executed")
                .map(|n| (*chain, n))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(executed_batches.contains(&(SOURCE, last_batch)));
    drop(p901);

    // SIGKILL, then the same datadir again
    let late_id = format!("{SOURCE}:{late_nonce}");
    let late_status = message_status(&b, &late_id)["status"].clone();
    devnet.kill();
    eprintln!("killed with message {late_id} in status {late_status}");
    let killed_at = Instant::now();
    drop(devnet);
    let devnet = Devnet::start(Some(dir.path()), 2);
    eprintln!("restarted in {} ms", killed_at.elapsed().as_millis());
    let (a, b) = (
        devnet.addr(SOURCE).to_string(),
        devnet.addr(DEST).to_string(),
    );

    assert!(head(&a) >= before_heads.0, "head of 901 went back");
    assert!(head(&b) >= before_heads.1, "head of 902 went back");
    for (h, before) in hashes.iter().zip(&receipts_before) {
        assert_eq!(&rpc(&a, "eth_getTransactionReceipt", json!([h])), before);
    }
    assert_eq!(
        rpc(
            &a,
            "eth_getBlockByNumber",
            json!([format!("{last_block:#x}"), false])
        ),
        block_before
    );
    assert_eq!(
        (
            balance(&a, me),
            balance(&a, payee),
            balance(&b, recipient),
            balance(&b, me),
        ),
        balances_before
    );
    assert_eq!(nonce(&a, me, "latest"), nonce_before);
    assert_eq!(nonce(&a, me, "pending"), nonce_before);
    assert!(is_executed(&b, SOURCE, msg_nonce));
    assert_eq!(message_status(&b, &msg_id), status_before);
    for (chain, n) in &executed_batches {
        let addr = if *chain == SOURCE { &a } else { &b };
        assert_eq!(
            batch_status(addr, *n),
            "executed",
            "chain {chain} batch {n}"
        );
    }

    // the message in flight at the kill is delivered, exactly once
    let b2 = b.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("the message in flight at the kill", || {
            is_executed(&b2, SOURCE, late_nonce).then_some(())
        })
    })
    .await
    .unwrap();
    assert_eq!(balance(&b, late), late_value);

    // the network keeps going: blocks, batches, and a new proof-mode message end to end
    let resumed = (head(&a), head(&b));
    let (a2, b2) = (a.clone(), b.clone());
    tokio::task::spawn_blocking(move || {
        wait_for("both chains to produce blocks after the restart", || {
            (head(&a2) > resumed.0 + 2 && head(&b2) > resumed.1 + 2).then_some(())
        })
    })
    .await
    .unwrap();
    let p901 = wallet_provider(devnet.url(SOURCE));
    let second = Address::repeat_byte(0x6e);
    let value2 = U256::from(7_000_000 * GWEI);
    let hash = *p901
        .send_transaction(send_message_tx(DEST, second, value2, 2))
        .await
        .unwrap()
        .tx_hash();
    let r = receipt(&p901, hash).await;
    let event = sent_event(&r);
    assert_eq!(event.nonce, late_nonce + 1, "message nonces continue");
    assert_eq!(r.inner.logs()[0].inner.address, MESSENGER_ADDRESS);
    let b2 = b.clone();
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        wait_for("the proof-mode message after the restart", || {
            is_executed(&b2, SOURCE, event.nonce).then_some(())
        })
    })
    .await
    .unwrap();
    eprintln!(
        "proof-mode message executed {:.1} s after its receipt",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(balance(&b, second), value2);
    assert_eq!(balance(&b, recipient), value);
    assert_eq!(balance(&b, late), late_value);
    let status = message_status(&b, &format!("{SOURCE}:{}", event.nonce));
    assert_eq!(status["mode"], "proof", "{status}");
    assert!(
        status["status"]
            .as_str()
            .unwrap()
            .starts_with("executed in block "),
        "{status}"
    );
}

#[test]
fn malformed_rpc_requests_get_errors_and_change_nothing() {
    let devnet = Devnet::start(None, 1);
    let addr = devnet.addr(SOURCE).to_string();
    let me = devnet.account0;
    let head_before = head(&addr);
    let balance_before = balance(&addr, me);
    assert_eq!(nonce(&addr, me, "latest"), 0);
    assert_eq!(nonce(&addr, me, "pending"), 0);

    let call = |method: &str, params: Value| {
        json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string()
    };
    // invalid JSON
    for body in [
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_blockNumber\"",
        "not json at all",
        "",
    ] {
        assert_eq!(rpc_error_code(&addr, body), -32700, "{body:?}");
    }
    // not a request
    for body in [
        r#"{"id":1}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
        "[]",
        "42",
    ] {
        assert_eq!(rpc_error_code(&addr, body), -32600, "{body}");
    }
    // unknown methods, standard and braid_ namespace
    for method in ["eth_fooBar", "braid_nope", "debug_traceTransaction"] {
        assert_eq!(
            rpc_error_code(&addr, &call(method, json!([]))),
            -32601,
            "{method}"
        );
    }
    // raw transactions that are not signed transactions
    for raw in ["0xdeadbeef", "0x", "0xzz", "0x02f8"] {
        let code = rpc_error_code(&addr, &call("eth_sendRawTransaction", json!([raw])));
        assert_eq!(code, -32602, "{raw}");
    }
    assert_eq!(
        rpc_error_code(&addr, &call("eth_sendRawTransaction", json!([]))),
        -32602
    );
    // well-formed transactions the pool must refuse: the wrong chain, a broken signature
    let signer = TxSigner::dev(0);
    let wrong_chain = signer
        .call(
            999,
            0,
            Address::repeat_byte(1),
            U256::from(1u64),
            Bytes::new(),
            21_000,
        )
        .unwrap();
    let code = rpc_error_code(&addr, &call("eth_sendRawTransaction", json!([wrong_chain])));
    assert!(code == -32000 || code == -32602, "wrong chain id: {code}");
    let mut tampered = signer
        .call(
            SOURCE,
            0,
            Address::repeat_byte(1),
            U256::from(1u64),
            Bytes::new(),
            21_000,
        )
        .unwrap()
        .to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff; // the signature's s
    let tampered = Bytes::from(tampered);
    let v = raw_rpc(&addr, &call("eth_sendRawTransaction", json!([tampered])));
    // either refused outright, or recovered to some other (unfunded) sender and refused there
    assert!(v.get("error").is_some(), "tampered tx accepted: {v}");
    // malformed message ids and batch numbers
    for id in [
        json!("abc"),
        json!("901"),
        json!(901),
        json!("901:x"),
        json!(":1"),
        json!(null),
    ] {
        let code = rpc_error_code(&addr, &call("braid_messageStatus", json!([id])));
        assert_eq!(code, -32602, "{id}");
    }
    assert_eq!(
        rpc_error_code(&addr, &call("braid_messageStatus", json!([]))),
        -32602
    );
    assert_eq!(
        rpc_error_code(
            &addr,
            &call("braid_messageProof", json!(["901:0", "bogus"]))
        ),
        -32602
    );
    assert_eq!(
        rpc_error_code(&addr, &call("braid_batchStatus", json!(["x"]))),
        -32602
    );
    // a well-formed id of no message is a server error, not invalid params
    assert_eq!(
        rpc_error_code(&addr, &call("braid_messageStatus", json!(["901:999"]))),
        -32000
    );
    // wrong parameters to standard methods
    assert_eq!(
        rpc_error_code(&addr, &call("eth_getBalance", json!(["0x1234"]))),
        -32602
    );
    assert_eq!(
        rpc_error_code(&addr, &call("eth_blockNumber", json!([1, 2]))),
        -32602
    );
    // a batch answers each element independently
    let batch = format!(
        "[{},{},{}]",
        call("eth_chainId", json!([])),
        call("nope", json!([])),
        call("eth_sendRawTransaction", json!(["0x00"]))
    );
    let v = raw_rpc(&addr, &batch);
    let answers = v.as_array().unwrap();
    assert_eq!(answers.len(), 3, "{v}");
    assert_eq!(answers[0]["result"], format!("{SOURCE:#x}"));
    assert_eq!(answers[1]["error"]["code"], -32601);
    assert_eq!(answers[2]["error"]["code"], -32602);

    // nothing changed: wait a few blocks so that anything pooled would have been included
    let h = head(&addr);
    wait_for("three more blocks", || (head(&addr) >= h + 3).then_some(()));
    assert_eq!(balance(&addr, me), balance_before);
    assert_eq!(nonce(&addr, me, "latest"), 0);
    assert_eq!(nonce(&addr, me, "pending"), 0);
    let head_after = head(&addr);
    for n in head_before + 1..=head_after {
        let block = rpc(
            &addr,
            "eth_getBlockByNumber",
            json!([format!("{n:#x}"), false]),
        );
        assert_eq!(
            block["transactions"],
            json!([]),
            "block {n} has transactions"
        );
    }
    // and the server still answers normally
    assert_eq!(
        rpc(&addr, "eth_chainId", json!([])),
        json!(format!("{SOURCE:#x}"))
    );
    assert!(head(&addr) >= head_after);
}

#[test]
fn bad_devnet_flags_exit_non_zero_with_a_clear_message() {
    let cases: [(&[&str], &str); 5] = [
        (&["--chains", "0"], "between 1 and 64 chains"),
        (&["--chains", "65"], "between 1 and 64 chains"),
        (
            &["--block-time-ms", "1"],
            "block times must be at least 50 ms",
        ),
        (
            &["--sl-block-time-ms", "0"],
            "block times must be at least 50 ms",
        ),
        (&["--batch-blocks", "0"], "batch_blocks must be positive"),
    ];
    for (args, expected) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_braid"))
            .args(["devnet", "--rpc-port", "0", "--status-port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            stderr.contains("invalid configuration") && stderr.contains(expected),
            "{args:?}: {stderr}"
        );
    }
    // a value clap cannot parse is refused before anything starts
    let out = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(["devnet", "--block-time-ms", "fast"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--block-time-ms"));
}
