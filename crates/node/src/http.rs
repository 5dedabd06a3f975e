//! The devnet's status page (`/`, server-rendered HTML that refreshes itself), its JSON
//! (`/status.json`) and Prometheus metrics (`/metrics`).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use braid_primitives::ChainId;
use serde_json::json;

use crate::world::Devnet;

type Shared = Arc<Mutex<Devnet>>;

/// A snapshot of what the status page shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusSnapshot {
    /// SL height.
    pub sl_height: u64,
    /// SL MessageRoot size.
    pub message_root_size: u64,
    /// Per chain.
    pub chains: Vec<ChainStatus>,
    /// Newest messages first.
    pub messages: Vec<crate::world::MessageView>,
    /// Newest log lines last.
    pub log: Vec<crate::world::LogLine>,
}

/// One chain on the status page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChainStatus {
    /// The chain.
    pub chain_id: ChainId,
    /// Head block.
    pub head: u64,
    /// Sealed batches.
    pub batches_sealed: u64,
    /// Last batch committed on the SL.
    pub last_committed: u64,
    /// Last batch executed on the SL.
    pub last_executed: u64,
    /// Messages sent from it.
    pub outbox_size: u64,
    /// Recent batches with their SL status.
    pub recent_batches: Vec<(u64, String)>,
}

/// Takes a snapshot of the devnet for the status page.
pub fn snapshot(d: &Devnet) -> StatusSnapshot {
    let sl = d.sl.sl();
    let chains = d
        .chains
        .iter()
        .map(|(id, n)| {
            let rec = sl.chain(*id);
            let last = n.seq().last_batch();
            let recent_batches = (last.saturating_sub(4).max(1)..=last)
                .rev()
                .filter(|b| *b > 0)
                .map(|b| (b, d.batch_status(*id, b).unwrap_or("sealed").to_string()))
                .collect();
            ChainStatus {
                chain_id: *id,
                head: n.seq().head().number,
                batches_sealed: last,
                last_committed: rec.map_or(0, |r| r.last_committed),
                last_executed: rec.map_or(0, |r| r.last_executed),
                outbox_size: n.seq().state().outbox().len(),
                recent_batches,
            }
        })
        .collect();
    let mut messages = d.messages();
    messages.truncate(50);
    let log: Vec<_> = d.log().cloned().collect();
    let log = log[log.len().saturating_sub(30)..].to_vec();
    StatusSnapshot {
        sl_height: sl.height(),
        message_root_size: sl.message_tree().len(),
        chains,
        messages,
        log,
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders the status page.
pub fn render_html(s: &StatusSnapshot) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>Braid devnet</title><style>
body{{font-family:system-ui,sans-serif;margin:1.5em;color:#222}} table{{border-collapse:collapse;margin-bottom:1.5em}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left}} th{{background:#f3f3f3}}
.executed{{color:#070}} .mono{{font-family:monospace}}
</style></head><body><h1>Braid devnet</h1>
<p id="sl">Settlement layer height <b>{}</b>, MessageRoot size <b>{}</b></p>
<h2>Chains</h2><table id="chains"><tr><th>chain</th><th>head</th><th>batches sealed</th><th>committed</th><th>executed</th><th>messages sent</th><th>recent batches</th></tr>"#,
        s.sl_height, s.message_root_size
    );
    for c in &s.chains {
        let batches: Vec<String> = c
            .recent_batches
            .iter()
            .map(|(b, st)| format!("#{b} {st}"))
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.chain_id,
            c.head,
            c.batches_sealed,
            c.last_committed,
            c.last_executed,
            c.outbox_size,
            escape(&batches.join(", "))
        );
    }
    h.push_str("</table><h2>Recent messages</h2><table id=\"messages\"><tr><th>id</th><th>route</th><th>mode</th><th>value (wei)</th><th>status</th><th>latency</th></tr>");
    for m in &s.messages {
        let latency = m
            .latency_ms
            .map_or("—".to_string(), |l| format!("{:.1} s", l as f64 / 1000.0));
        let class = if m.status.starts_with("executed") {
            "executed"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr><td class=\"mono\">{}</td><td>{} → {}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{latency}</td></tr>",
            escape(&m.id),
            m.source,
            m.dest,
            m.mode,
            escape(&m.value),
            escape(&m.status)
        );
    }
    h.push_str("</table><h2>Log</h2><pre id=\"log\">");
    for l in &s.log {
        let _ = writeln!(h, "{}", escape(&l.text));
    }
    h.push_str("</pre></body></html>\n");
    h
}

/// Renders Prometheus metrics.
pub fn render_metrics(d: &Devnet) -> String {
    let c = d.counters();
    let mut m = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = writeln!(m, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    };
    counter(
        "braid_blocks_total",
        "Blocks produced by all chains.",
        c.blocks,
    );
    counter(
        "braid_transactions_total",
        "Transactions included by all chains.",
        c.transactions,
    );
    counter(
        "braid_batches_sealed_total",
        "Batches sealed by all chains.",
        c.batches_sealed,
    );
    counter(
        "braid_batches_executed_total",
        "Batches executed on the settlement layer.",
        c.batches_executed,
    );
    counter(
        "braid_batches_reverted_total",
        "Batches reverted on the settlement layer.",
        c.batches_reverted,
    );
    counter(
        "braid_messages_sent_total",
        "Cross-chain messages sent.",
        c.messages_sent,
    );
    counter(
        "braid_relayer_errors_total",
        "Inconsistencies the relayer detected.",
        c.relayer_errors,
    );
    let _ = writeln!(m, "# HELP braid_messages_executed_total Cross-chain messages executed, by mode.\n# TYPE braid_messages_executed_total counter");
    for (mode, v) in &c.messages_executed {
        let _ = writeln!(m, "braid_messages_executed_total{{mode=\"{mode}\"}} {v}");
    }
    let _ = writeln!(m, "# HELP braid_message_latency_ms_sum Sum of send-to-execution latencies, by mode.\n# TYPE braid_message_latency_ms_sum counter");
    for (mode, v) in &c.latency_ms_sum {
        let _ = writeln!(m, "braid_message_latency_ms_sum{{mode=\"{mode}\"}} {v}");
    }
    let _ = writeln!(
        m,
        "# HELP braid_chain_head Head block number, by chain.\n# TYPE braid_chain_head gauge"
    );
    for (id, n) in &d.chains {
        let _ = writeln!(
            m,
            "braid_chain_head{{chain=\"{id}\"}} {}",
            n.seq().head().number
        );
    }
    let _ = writeln!(m, "# HELP braid_sl_height Settlement layer height.\n# TYPE braid_sl_height gauge\nbraid_sl_height {}", d.sl.sl().height());
    m
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Devnet> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

async fn page(State(s): State<Shared>) -> Response {
    let html = render_html(&snapshot(&lock(&s)));
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

async fn status_json(State(s): State<Shared>) -> Response {
    let body = serde_json::to_string(&snapshot(&lock(&s)))
        .unwrap_or_else(|e| json!({"error": e.to_string()}).to_string());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metrics(State(s): State<Shared>) -> Response {
    let body = render_metrics(&lock(&s));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The status router.
pub fn router(devnet: Shared) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/status.json", get(status_json))
        .route("/metrics", get(metrics))
        .with_state(devnet)
}
