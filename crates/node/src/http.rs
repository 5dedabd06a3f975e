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
    /// Per interop mode: traffic, latency percentiles, stuck messages.
    pub modes: Vec<ModeStatus>,
    /// The devnet's time (newest block timestamp), in ms.
    pub now_ms: u64,
}

/// A message waiting longer than this (or undeliverable through the system's fault) is stuck.
pub const STUCK_AFTER_MS: u64 = 60_000;

/// One interop mode on the status page.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ModeStatus {
    /// The mode's name.
    pub mode: &'static str,
    /// Messages sent in it.
    pub sent: u64,
    /// Executed on their destination.
    pub executed: u64,
    /// Not executed yet.
    pub pending: u64,
    /// Pending for longer than [`STUCK_AFTER_MS`], or undeliverable through the system's fault.
    pub stuck: u64,
    /// Send-to-execution latency percentiles (ms) of the executed ones: p50, p90, p99.
    pub latency_ms: Option<[u64; 3]>,
    /// Value carried, in ETH (decimal string).
    pub value_eth: String,
    /// (sent at ms, latency ms) of the newest executed messages, for the chart.
    pub samples: Vec<(u64, u64)>,
}

/// Whether `m` is stuck at `now_ms` (see [`STUCK_AFTER_MS`]).
pub fn is_stuck(m: &crate::world::MessageView, now_ms: u64) -> bool {
    m.executed_at_ms.is_none()
        && (m.fault == Some("system")
            || (m.undeliverable.is_none()
                && m.sent_at_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) > STUCK_AFTER_MS)))
}

/// `wei` (decimal) as ETH with up to 6 decimals; an amount below 0.000001 ETH (but not zero)
/// in wei, e.g. `"12345 wei"`; `"—"` if it does not parse.
pub fn wei_to_eth(wei: &str) -> String {
    let Ok(v) = wei.parse::<u128>() else {
        return "—".to_string();
    };
    if v > 0 && v < 1_000_000_000_000 {
        return format!("{v} wei");
    }
    let whole = v / 1_000_000_000_000_000_000;
    let micro = (v % 1_000_000_000_000_000_000) / 1_000_000_000_000;
    if micro == 0 {
        format!("{whole}")
    } else {
        let frac = format!("{micro:06}");
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
}

fn percentile(sorted: &[u64], p: usize) -> u64 {
    let i = (sorted.len() * p).div_ceil(100).saturating_sub(1);
    sorted[i.min(sorted.len() - 1)]
}

/// Per-mode statistics of `messages` at `now_ms`, in the modes' tag order.
pub fn mode_statuses(messages: &[crate::world::MessageView], now_ms: u64) -> Vec<ModeStatus> {
    const CHART_SAMPLES: usize = 200;
    let mut out: Vec<ModeStatus> = braid_primitives::ImportKind::ALL
        .iter()
        .map(|k| ModeStatus {
            mode: k.name(),
            ..ModeStatus::default()
        })
        .collect();
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); out.len()];
    let mut value: Vec<u128> = vec![0; out.len()];
    for m in messages {
        let Some(i) = out.iter().position(|s| s.mode == m.mode) else {
            continue;
        };
        let s = &mut out[i];
        s.sent += 1;
        value[i] = value[i].saturating_add(m.value.parse::<u128>().unwrap_or(0));
        match m.latency_ms {
            Some(l) if m.executed_at_ms.is_some() => {
                s.executed += 1;
                latencies[i].push(l);
                if s.samples.len() < CHART_SAMPLES {
                    s.samples.push((m.sent_at_ms.unwrap_or(0), l));
                }
            }
            _ => {
                s.pending += 1;
                if is_stuck(m, now_ms) {
                    s.stuck += 1;
                }
            }
        }
    }
    for ((s, mut l), v) in out.iter_mut().zip(latencies).zip(value) {
        s.value_eth = wei_to_eth(&v.to_string());
        if !l.is_empty() {
            l.sort_unstable();
            s.latency_ms = Some([percentile(&l, 50), percentile(&l, 90), percentile(&l, 99)]);
        }
    }
    out
}

/// An SVG scatter of latency against send time, one colour per mode.
fn latency_chart(modes: &[ModeStatus]) -> String {
    const COLOURS: [&str; 6] = [
        "#d62728", "#9467bd", "#1f77b4", "#ff7f0e", "#2ca02c", "#8c564b",
    ];
    let (w, h, pad) = (640.0_f64, 220.0_f64, 36.0_f64);
    let points = modes.iter().flat_map(|m| m.samples.iter());
    let (mut t0, mut t1, mut lmax) = (u64::MAX, 0u64, 1u64);
    for (t, l) in points {
        t0 = t0.min(*t);
        t1 = t1.max(*t);
        lmax = lmax.max(*l);
    }
    let mut svg = format!(
        "<svg id=\"latency-chart\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"message latency by send time\">\
         <line x1=\"{pad}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"#888\"/>\
         <line x1=\"{pad}\" y1=\"8\" x2=\"{pad}\" y2=\"{y0}\" stroke=\"#888\"/>\
         <text x=\"2\" y=\"14\" font-size=\"10\">{top:.1} s</text><text x=\"2\" y=\"{y0}\" font-size=\"10\">0</text>",
        y0 = h - pad,
        x1 = w - 8.0,
        top = lmax as f64 / 1000.0
    );
    if t0 == u64::MAX {
        svg.push_str("<text x=\"50\" y=\"100\" font-size=\"12\">no message executed yet</text>");
    }
    let span = t1.saturating_sub(t0).max(1) as f64;
    for (i, m) in modes.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        for (t, l) in &m.samples {
            let x = pad + (t.saturating_sub(t0) as f64 / span) * (w - pad - 12.0);
            let y = (h - pad) - (*l as f64 / lmax as f64) * (h - pad - 10.0);
            let _ = write!(
                svg,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\" fill=\"{colour}\"><title>{}: {:.1} s</title></circle>",
                m.mode,
                *l as f64 / 1000.0
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{colour}\">● {}</text>",
            pad + 8.0 + 95.0 * i as f64,
            h - 10.0,
            m.mode
        );
    }
    svg.push_str("</svg>");
    svg
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
    let all = d.messages();
    let mut messages = all.clone();
    messages.truncate(50);
    let log: Vec<_> = d.log().cloned().collect();
    let log = log[log.len().saturating_sub(30)..].to_vec();
    let now_ms = d
        .chains
        .values()
        .map(|n| n.seq().head().timestampMs)
        .max()
        .unwrap_or(0);
    let modes = mode_statuses(&all, now_ms);
    StatusSnapshot {
        sl_height: sl.height(),
        message_root_size: sl.message_tree().len(),
        chains,
        messages,
        log,
        modes,
        now_ms,
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
.executed{{color:#070}} .mono{{font-family:monospace}} tr.stuck td{{background:#fdd;color:#a00}}
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
    h.push_str("</table><h2>Modes</h2><table id=\"modes\"><tr><th>mode</th><th>sent</th><th>executed</th><th>pending</th><th>stuck</th><th>latency p50</th><th>p90</th><th>p99</th><th>value (ETH)</th></tr>");
    let secs = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
    for m in &s.modes {
        let [p50, p90, p99] = m.latency_ms.map_or(
            ["—".to_string(), "—".to_string(), "—".to_string()],
            |l| l.map(secs),
        );
        let class = if m.stuck > 0 { " class=\"stuck\"" } else { "" };
        let _ = write!(
            h,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{p50}</td><td>{p90}</td><td>{p99}</td><td>{}</td></tr>",
            m.mode, m.sent, m.executed, m.pending, m.stuck, m.value_eth
        );
    }
    h.push_str("</table><h2>Latency</h2>");
    h.push_str(&latency_chart(&s.modes));
    h.push_str("<h2>Recent messages</h2><table id=\"messages\"><tr><th>id</th><th>route</th><th>mode</th><th>value (ETH)</th><th>status</th><th>latency</th></tr>");
    for m in &s.messages {
        let latency = m
            .latency_ms
            .map_or("—".to_string(), |l| format!("{:.1} s", l as f64 / 1000.0));
        let class = if m.status.starts_with("executed") {
            "executed"
        } else {
            ""
        };
        let row = if is_stuck(m, s.now_ms) {
            " class=\"stuck\""
        } else {
            ""
        };
        let status = match &m.waiting {
            Some(w) if m.executed_at_ms.is_none() => format!("{} ({w})", m.status),
            _ => m.status.clone(),
        };
        let _ = write!(
            h,
            "<tr{row}><td class=\"mono\">{}</td><td>{} → {}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{latency}</td></tr>",
            escape(&m.id),
            m.source,
            m.dest,
            m.mode,
            escape(&wei_to_eth(&m.value)),
            escape(&status)
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
    let snap = snapshot(d);
    let _ = writeln!(m, "# HELP braid_messages_pending Cross-chain messages not executed yet, by mode.\n# TYPE braid_messages_pending gauge");
    for s in &snap.modes {
        let _ = writeln!(
            m,
            "braid_messages_pending{{mode=\"{}\"}} {}",
            s.mode, s.pending
        );
    }
    let _ = writeln!(m, "# HELP braid_messages_stuck Messages pending for more than {STUCK_AFTER_MS} ms or undeliverable by the system's fault, by mode.\n# TYPE braid_messages_stuck gauge");
    for s in &snap.modes {
        let _ = writeln!(m, "braid_messages_stuck{{mode=\"{}\"}} {}", s.mode, s.stuck);
    }
    let _ = writeln!(m, "# HELP braid_message_latency_ms Send-to-execution latency percentiles of executed messages, by mode.\n# TYPE braid_message_latency_ms gauge");
    for s in &snap.modes {
        if let Some(l) = s.latency_ms {
            for (q, v) in ["0.5", "0.9", "0.99"].iter().zip(l) {
                let _ = writeln!(
                    m,
                    "braid_message_latency_ms{{mode=\"{}\",quantile=\"{q}\"}} {v}",
                    s.mode
                );
            }
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::world::MessageView;

    fn view(nonce: u64, mode: &'static str, sent: u64, executed: Option<u64>) -> MessageView {
        MessageView {
            id: format!("901:{nonce}"),
            source: 901,
            dest: 902,
            mode,
            value: "1500000000000000000".into(),
            status: if executed.is_some() {
                "executed"
            } else {
                "sent"
            }
            .into(),
            waiting: executed
                .is_none()
                .then(|| "the source batch's commit".to_string()),
            undeliverable: None,
            fault: None,
            sent_at_ms: Some(sent),
            executed_at_ms: executed,
            latency_ms: executed.map(|e| e - sent),
        }
    }

    #[test]
    fn wei_shows_as_eth() {
        assert_eq!(wei_to_eth("1500000000000000000"), "1.5");
        assert_eq!(wei_to_eth("2000000000000000000"), "2");
        assert_eq!(wei_to_eth("1000000000000"), "0.000001");
        assert_eq!(wei_to_eth("999"), "999 wei");
        assert_eq!(wei_to_eth("0"), "0");
        assert_eq!(wei_to_eth("not a number"), "—");
    }

    #[test]
    fn modes_count_latency_percentiles_and_stuck_messages() {
        let mut messages: Vec<MessageView> = (1..=10)
            .map(|i| view(i, "commit", 1_000 * i, Some(1_000 * i + 100 * i)))
            .collect();
        // pending 30 s: waiting; pending 61 s: stuck
        messages.push(view(11, "proof", 70_000, None));
        messages.push(view(12, "proof", 39_000, None));
        let modes = mode_statuses(&messages, 100_000);
        let commit = modes.iter().find(|m| m.mode == "commit").unwrap();
        assert_eq!((commit.sent, commit.executed, commit.pending), (10, 10, 0));
        assert_eq!(commit.latency_ms, Some([500, 900, 1_000]));
        assert_eq!(commit.value_eth, "15");
        assert_eq!(commit.samples.len(), 10);
        let proof = modes.iter().find(|m| m.mode == "proof").unwrap();
        assert_eq!((proof.sent, proof.pending, proof.stuck), (2, 2, 1));
        assert_eq!(proof.latency_ms, None);
        assert_eq!(modes.len(), 6, "every mode has a row, used or not");

        let snap = StatusSnapshot {
            sl_height: 1,
            message_root_size: 0,
            chains: vec![],
            messages: messages.clone(),
            log: vec![],
            modes,
            now_ms: 100_000,
        };
        let html = render_html(&snap);
        assert!(html.contains("<table id=\"modes\">"), "{html}");
        assert!(html.contains("<svg id=\"latency-chart\""));
        assert_eq!(html.matches("<circle").count(), 10);
        // the stuck message's row and its mode's row are red; the waiting one is not
        assert_eq!(html.matches("<tr class=\"stuck\">").count(), 2, "{html}");
        assert!(html.contains("<td>1.5</td>"), "values in ETH");
        let metrics_like = snap.modes.iter().map(|m| m.stuck).sum::<u64>();
        assert_eq!(metrics_like, 1);
    }
}
