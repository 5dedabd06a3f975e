//! The status page of a running devnet: what it serves over HTTP, and what a real browser
//! (headless Chromium) shows of it.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use alloy_primitives::U256;
use braid_node::{DevnetConfig, Ports};
use braid_primitives::ImportKind;

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// Loads `url` in headless Chromium and returns the DOM after scripts ran.
fn dump_dom(browser: &str, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
            url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_chains_batches_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = DevnetConfig::new(dir.path());
    config.chains = vec![901, 902];
    config.block_time_ms = 200;
    config.sl_block_time_ms = 200;
    config.batch_blocks = 2;
    let handle = braid_node::start(
        config,
        Ports {
            rpc_base: 0,
            status: 0,
        },
        false,
    )
    .await
    .unwrap();
    handle
        .devnet
        .lock()
        .unwrap()
        .demo_message(0, 901, 902, ImportKind::Commit, U256::from(12345u64))
        .unwrap();
    // wait until the message executed and a batch of each chain executed on the SL
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        {
            let d = handle.devnet.lock().unwrap();
            let done = d
                .messages()
                .iter()
                .any(|m| m.status.starts_with("executed"))
                && d.chains
                    .keys()
                    .all(|id| d.batch_status(*id, 1) == Some("executed"));
            if done {
                break;
            }
        }
        assert!(Instant::now() < deadline, "devnet made no progress");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let addr = handle.status_addr;
    let page = tokio::task::spawn_blocking(move || http_get(addr, "/"))
        .await
        .unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("text/html"));
    assert!(
        page.contains("<td>901</td>") && page.contains("<td>commit</td>"),
        "{page}"
    );
    let json = tokio::task::spawn_blocking(move || http_get(addr, "/status.json"))
        .await
        .unwrap();
    assert!(
        json.contains("\"chain_id\":901") && json.contains("\"chain_id\":902"),
        "{json}"
    );
    let metrics = tokio::task::spawn_blocking(move || http_get(addr, "/metrics"))
        .await
        .unwrap();
    assert!(
        metrics.contains("braid_messages_executed_total{mode=\"commit\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("braid_chain_head{chain=\"902\"}"));

    // what a person sees: the page rendered by a real browser
    let required = std::env::var_os("BRAID_REQUIRE_CHROMIUM").is_some();
    match chromium() {
        Some(browser) => {
            let url = format!("http://{addr}/");
            let dom = tokio::task::spawn_blocking(move || dump_dom(browser, &url))
                .await
                .unwrap();
            assert!(dom.contains("<h1>Braid devnet</h1>"), "{dom}");
            let chains = dom
                .split("id=\"chains\"")
                .nth(1)
                .unwrap()
                .split("</table>")
                .next()
                .unwrap();
            assert!(
                chains.contains("<td>901</td>") && chains.contains("<td>902</td>"),
                "{chains}"
            );
            assert!(
                chains.contains("#1 executed"),
                "batch 1 shown as executed: {chains}"
            );
            let messages = dom
                .split("id=\"messages\"")
                .nth(1)
                .unwrap()
                .split("</table>")
                .next()
                .unwrap();
            assert!(messages.contains("901:0"), "{messages}");
            assert!(messages.contains("<td>commit</td>"), "{messages}");
            assert!(messages.contains("12345"), "{messages}");
            assert!(messages.contains("executed in block"), "{messages}");
        }
        None if required => panic!("BRAID_REQUIRE_CHROMIUM is set but no Chromium is installed"),
        None => eprintln!("Chromium not installed: checked the served HTML only (CI installs it)"),
    }
    handle.shutdown().await;
}
