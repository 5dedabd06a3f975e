//! `braid relay <msg-id>`: relays one message by hand through the chains' JSON-RPC — fetch its
//! proof, have the destination import the root the proof needs, then send `executeMessage`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use alloy_primitives::{Bytes, B256, U256};
use braid_execution::TxSigner;
use braid_primitives::MESSENGER_ADDRESS;
use serde_json::{json, Value};

/// Arguments of `braid relay`.
#[derive(clap::Args)]
pub struct RelayArgs {
    /// The message id, `source:nonce` (e.g. `901:0`).
    pub id: String,
    /// The mode to relay in: precommit, commit or proof (at least as strong as the message asks).
    #[arg(long, default_value = "proof")]
    pub mode: String,
    /// JSON-RPC URL of the destination chain (http://host:port).
    #[arg(long)]
    pub rpc: String,
    /// Secret key paying for the execution (default: dev account 1).
    #[arg(long)]
    pub key: Option<B256>,
    /// How long to wait for the import and the execution, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
}

/// A blocking JSON-RPC 2.0 call over plain HTTP/1.1.
pub fn call(url: &str, method: &str, params: Value) -> Result<Value, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let mut stream =
        TcpStream::connect(host).map_err(|e| format!("cannot connect to {host}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let json_body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or("malformed HTTP response")?;
    let v: Value =
        serde_json::from_str(json_body).map_err(|e| format!("malformed JSON-RPC response: {e}"))?;
    if let Some(err) = v.get("error") {
        return Err(format!("{method}: {err}"));
    }
    v.get("result")
        .cloned()
        .ok_or_else(|| format!("{method}: no result"))
}

fn quantity(v: &Value) -> Result<u64, String> {
    let s = v.as_str().ok_or("expected a hex quantity")?;
    u64::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| e.to_string())
}

/// Runs `braid relay`.
pub fn relay(args: RelayArgs) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let found = call(&args.rpc, "braid_messageProof", json!([args.id, args.mode]))?;
    let import = found
        .get("import")
        .cloned()
        .filter(|v| !v.is_null())
        .ok_or("no import for this message")?;
    let calldata: Bytes =
        serde_json::from_value(found.get("executeCalldata").cloned().unwrap_or(Value::Null))
            .map_err(|e| format!("bad calldata: {e}"))?;
    let dest = quantity(&call(&args.rpc, "eth_chainId", json!([]))?)?;
    println!(
        "message {}: {} proof against root {}",
        args.id, args.mode, import["root"]
    );
    // the destination imports the root (skipped if it already did)
    let imported = |roots: &Value| {
        roots
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r == &import))
    };
    if !imported(&call(&args.rpc, "braid_importedRoots", json!([]))?) {
        call(&args.rpc, "braid_importRoot", json!([import]))?;
        println!("asked chain {dest} to import it; waiting for the import");
        while !imported(&call(&args.rpc, "braid_importedRoots", json!([]))?) {
            if Instant::now() > deadline {
                return Err("timed out waiting for the import".into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let signer = TxSigner::from_secret(args.key.unwrap_or_else(|| TxSigner::dev_secret(1)))
        .map_err(|e| e.to_string())?;
    // a dry run gives the destination's reason if it would refuse (replay, weak mode, bad proof)
    let tx = json!({"from": signer.address(), "to": MESSENGER_ADDRESS, "data": calldata});
    call(&args.rpc, "eth_estimateGas", json!([tx]))
        .map_err(|e| format!("the destination would refuse: {e}"))?;
    let nonce = quantity(&call(
        &args.rpc,
        "eth_getTransactionCount",
        json!([signer.address(), "pending"]),
    )?)?;
    let raw = signer
        .call(
            dest,
            nonce,
            MESSENGER_ADDRESS,
            U256::ZERO,
            calldata,
            1_000_000,
        )
        .map_err(|e| e.to_string())?;
    let hash = call(&args.rpc, "eth_sendRawTransaction", json!([raw]))?;
    println!("sent executeMessage {hash}");
    loop {
        let receipt = call(&args.rpc, "eth_getTransactionReceipt", json!([hash]))?;
        if !receipt.is_null() {
            println!(
                "executed in block {} (status {})",
                receipt["blockNumber"], receipt["status"]
            );
            return Ok(());
        }
        let pending = call(&args.rpc, "eth_getTransactionByHash", json!([hash]))?;
        if pending.is_null() {
            return Err(
                "the destination dropped the transaction (see its log for the reason)".into(),
            );
        }
        if Instant::now() > deadline {
            return Err("timed out waiting for the execution".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
