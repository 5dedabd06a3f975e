//! Every role as its own process over the network: a settlement-layer node, two chain nodes and a
//! relayer. Messages flow in every mode; a chain node killed with SIGKILL restarts with nothing
//! lost and the network keeps going.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::SolCall;
use braid_execution::TxSigner;
use braid_node::client::{call, quantity};
use braid_primitives::{IMessenger, MESSENGER_ADDRESS};
use serde_json::json;

const NET: [&str; 8] = [
    "--chains",
    "901,902",
    "--block-time-ms",
    "200",
    "--sl-block-time-ms",
    "200",
    "--batch-blocks",
    "2",
];

/// Kills every child on drop, so a failing test leaves no process behind.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `braid args…` and waits for its "listening"/"running" line.
fn spawn(args: &[String]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(args)
        .env("BRAID_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("process exited before it was ready")
            .unwrap();
        if line.contains("listening on") || line.contains("running") {
            break;
        }
    }
    // keep draining so the child never blocks on a full pipe
    std::thread::spawn(move || for _ in lines.by_ref() {});
    child
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn chain_args(
    id: u64,
    dir: &std::path::Path,
    port: u16,
    sl: &str,
    peer: (u64, u16),
) -> Vec<String> {
    let mut a = s(&["node", "chain"]);
    a.extend(s(&NET));
    a.extend([
        "--id".into(),
        id.to_string(),
        "--datadir".into(),
        dir.join(format!("chain-{id}")).display().to_string(),
        "--port".into(),
        port.to_string(),
        "--sl".into(),
        sl.into(),
        "--peer".into(),
        format!("{}=http://127.0.0.1:{}", peer.0, peer.1),
    ]);
    a
}

fn send_message(url: &str, nonce: u64, recipient: Address, value: u64, mode: u8) {
    let input = IMessenger::sendMessageWithModeCall {
        destChain: U256::from(902u64),
        recipient,
        payload: Bytes::from_static(b"processes"),
        mode,
    }
    .abi_encode();
    let raw = TxSigner::dev(0)
        .call(
            901,
            nonce,
            MESSENGER_ADDRESS,
            U256::from(value),
            input.into(),
            300_000,
        )
        .unwrap();
    call(url, "eth_sendRawTransaction", json!([raw])).unwrap();
}

fn executed(url: &str, nonce: u64) -> bool {
    let data: Bytes = IMessenger::isExecutedCall {
        sourceChain: 901,
        nonce,
    }
    .abi_encode()
    .into();
    let out = call(
        url,
        "eth_call",
        json!([{"to": MESSENGER_ADDRESS, "data": data}, "latest"]),
    );
    out.ok()
        .and_then(|v| v.as_str().map(|s| s.ends_with('1')))
        .unwrap_or(false)
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn balance(url: &str, a: Address) -> String {
    call(url, "eth_getBalance", json!([a, "latest"]))
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

/// The body of `GET url` (plain HTTP/1.1 over a socket: no client library needed).
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

fn head(url: &str) -> u64 {
    quantity(&call(url, "eth_blockNumber", json!([])).unwrap()).unwrap()
}

#[test]
fn roles_as_processes_relay_every_mode_and_survive_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (sl_port, a_port, b_port, relayer_port) =
        (free_port(), free_port(), free_port(), free_port());
    let sl = format!("http://127.0.0.1:{sl_port}");
    let (a_url, b_url) = (
        format!("http://127.0.0.1:{a_port}"),
        format!("http://127.0.0.1:{b_port}"),
    );
    let mut sl_args = s(&["node", "sl"]);
    sl_args.extend(s(&NET));
    sl_args.extend([
        "--datadir".into(),
        dir.path().join("sl").display().to_string(),
        "--port".into(),
        sl_port.to_string(),
    ]);
    let mut procs = Procs(vec![spawn(&sl_args)]);
    procs.0.push(spawn(&chain_args(
        901,
        dir.path(),
        a_port,
        &sl,
        (902, b_port),
    )));
    procs.0.push(spawn(&chain_args(
        902,
        dir.path(),
        b_port,
        &sl,
        (901, a_port),
    )));
    procs.0.push(spawn(&s(&[
        "relayer",
        "--chain",
        &format!("901={a_url}"),
        "--chain",
        &format!("902={b_url}"),
        "--sl",
        &sl,
        "--poll-ms",
        "50",
        "--port",
        &relayer_port.to_string(),
    ])));
    let relayer_url = format!("http://127.0.0.1:{relayer_port}");

    let recipient = Address::repeat_byte(0x77);
    for (nonce, mode) in [(0u64, 0u8), (1, 1), (2, 2)] {
        send_message(&a_url, nonce, recipient, 1_000 + nonce, mode);
    }
    wait_until("all three messages executed on chain 902", 40, || {
        (0..3).all(|n| executed(&b_url, n))
    });
    assert_eq!(balance(&b_url, recipient), format!("{:#x}", 3_003u64));
    // the relayer says where each message is, and exposes its metrics
    let status = call(&relayer_url, "braid_messageStatus", json!(["901:0"])).unwrap();
    assert!(
        status["status"].as_str().unwrap().starts_with("executed"),
        "{status}"
    );
    assert_eq!(status["mode"], "precommit");
    let bad = call(&relayer_url, "braid_messageStatus", json!(["nonsense"]));
    assert!(bad.unwrap_err().contains("source:nonce"));
    let unknown = call(&relayer_url, "braid_messageStatus", json!(["901:99"]));
    assert!(unknown.unwrap_err().contains("unknown message"));
    let metrics = http_get(&format!("{relayer_url}/metrics"));
    assert!(
        metrics.contains("braid_relayer_oldest_pending_seconds"),
        "{metrics}"
    );
    assert!(metrics.contains("braid_relayer_execute_retries_total"));
    assert_eq!(http_get(&format!("{relayer_url}/health")).trim(), "ok");
    // the SL executes batches of both chains
    for chain in [901u64, 902] {
        wait_until("a batch executed on the SL", 20, || {
            let view = call(&sl, "sl_view", json!([chain])).unwrap();
            view["batches"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b[1] == "executed")
        });
    }

    // SIGKILL chain 902, restart it on the same data
    let before_head = head(&b_url);
    let before_balance = balance(&b_url, recipient);
    procs.0[2].kill().unwrap();
    procs.0[2].wait().unwrap();
    procs.0[2] = spawn(&chain_args(902, dir.path(), b_port, &sl, (901, a_port)));
    assert!(
        head(&b_url) >= before_head,
        "lost blocks across the restart"
    );
    assert_eq!(balance(&b_url, recipient), before_balance);
    assert!((0..3).all(|n| executed(&b_url, n)));
    // and the network keeps going: a proof-mode message after the restart
    send_message(&a_url, 3, recipient, 10, 2);
    wait_until("the message sent after the restart executed", 40, || {
        executed(&b_url, 3)
    });
    assert_eq!(balance(&b_url, recipient), format!("{:#x}", 3_013u64));
    assert!(head(&b_url) > before_head);
}

/// Runs `braid args…`, which must refuse to start (exit non-zero within 60 s); returns its
/// stderr.
fn refused(args: &[String]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(args)
        .env("BRAID_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{args:?} exited 0: {stderr}");
    stderr
}

/// Starts `braid args…`, waits until it is ready, and kills it with SIGKILL.
fn start_and_kill(args: &[String]) {
    let mut p = Procs(vec![spawn(args)]);
    p.0[0].kill().unwrap();
    p.0[0].wait().unwrap();
}

#[test]
fn a_node_refuses_a_datadir_it_cannot_trust_and_a_new_one_starts() {
    let dir = tempfile::tempdir().unwrap();
    let sl_dir = dir.path().join("sl");
    let sl_args = |net: &[&str]| {
        let mut a = s(&["node", "sl"]);
        a.extend(s(net));
        a.extend([
            "--datadir".into(),
            sl_dir.display().to_string(),
            "--port".into(),
            "0".into(),
        ]);
        a
    };
    let (sl_port, a_port) = (free_port(), free_port());
    let sl = format!("http://127.0.0.1:{sl_port}");
    let chain = chain_args(901, dir.path(), a_port, &sl, (902, free_port()));
    let chain_dir = dir.path().join("chain-901");
    let db = chain_dir.join("chain-901.redb");

    // first start on new directories initialises them; SIGKILL; the same commands resume
    let mut procs = Procs(vec![spawn(&sl_args(&NET)), spawn(&chain)]);
    let a_url = format!("http://127.0.0.1:{a_port}");
    wait_until("chain 901 to produce blocks", 20, || head(&a_url) >= 3);
    for p in &mut procs.0 {
        p.kill().unwrap();
        p.wait().unwrap();
    }
    drop(procs);
    start_and_kill(&sl_args(&NET));
    start_and_kill(&chain);

    // another network: other chains, other batch size
    let mut more = NET.to_vec();
    more[1] = "901,902,903";
    let err = refused(&sl_args(&more));
    assert!(
        err.contains("belongs to network") && err.contains("[901, 902] vs [901, 902, 903]"),
        "{err}"
    );
    let mut slower = NET.to_vec();
    slower[7] = "4";
    let err = refused(&sl_args(&slower));
    assert!(err.contains("batch_blocks 2 vs 4"), "{err}");
    // another chain, another role
    let mut other_chain = chain.clone();
    let at = other_chain.iter().position(|a| a == "--id").unwrap() + 1;
    other_chain[at] = "902".into();
    let err = refused(&other_chain);
    assert!(err.contains("holds chain 901, not chain 902"), "{err}");
    let mut chain_as_sl = sl_args(&NET);
    let at = chain_as_sl.iter().position(|a| a == "--datadir").unwrap() + 1;
    chain_as_sl[at] = chain_dir.display().to_string();
    let err = refused(&chain_as_sl);
    assert!(
        err.contains("holds chain 901, not the settlement layer"),
        "{err}"
    );

    // the chain's database truncated to zero bytes, then missing: refused, never a fresh chain
    let saved = std::fs::read(&db).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(0)
        .unwrap();
    let err = refused(&chain);
    assert!(
        err.contains(&db.display().to_string()) && err.contains("empty (0 bytes)"),
        "{err}"
    );
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);
    std::fs::remove_file(&db).unwrap();
    let err = refused(&chain);
    assert!(
        err.contains(&db.display().to_string()) && err.contains("is missing"),
        "{err}"
    );
    // restored, it starts again where it was
    std::fs::write(&db, &saved).unwrap();
    let mut back = Procs(vec![spawn(&chain)]);
    assert!(head(&a_url) >= 3, "the restored chain went back");
    back.0[0].kill().unwrap();
    back.0[0].wait().unwrap();
}

#[test]
fn a_transaction_accepted_before_a_sigkill_is_mined_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    // no SL is needed for the chain to produce blocks
    let chain = chain_args(
        901,
        dir.path(),
        port,
        "http://127.0.0.1:9",
        (902, free_port()),
    );
    let signer = TxSigner::dev(4);
    let tx = |nonce: u64| {
        signer
            .call(
                901,
                nonce,
                Address::repeat_byte(0x44),
                U256::from(1_000u64),
                Bytes::new(),
                21_000,
            )
            .unwrap()
    };
    let mut procs = Procs(vec![spawn(&chain)]);
    // nonce 1 waits in the pool behind the gap at nonce 0
    let hash = call(&url, "eth_sendRawTransaction", json!([tx(1)])).unwrap();
    let pending = || call(&url, "eth_getTransactionByHash", json!([hash])).unwrap();
    let receipt = || call(&url, "eth_getTransactionReceipt", json!([hash])).unwrap();
    let at = head(&url);
    wait_until("two more blocks", 20, || head(&url) >= at + 2);
    assert!(!pending().is_null() && receipt().is_null());
    procs.0[0].kill().unwrap();
    procs.0[0].wait().unwrap();

    procs.0[0] = spawn(&chain);
    assert!(!pending().is_null(), "the accepted transaction was lost");
    call(&url, "eth_sendRawTransaction", json!([tx(0)])).unwrap();
    wait_until("the transaction accepted before the kill mined", 20, || {
        !receipt().is_null()
    });
    assert_eq!(receipt()["status"], "0x1");
    assert_eq!(
        balance(&url, Address::repeat_byte(0x44)),
        format!("{:#x}", 2_000u64)
    );
}
