//! `report.html`: a self-contained page (inline SVG, no scripts, no network) with the latency CDF
//! of every mode and a timeline of batch executions, reverts and faults per chain.

use std::fmt::Write as _;

use crate::Report;

const COLORS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the report as one HTML page.
pub fn render_html(r: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Braid simulation: {name}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5em;color:#222}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:right}} th{{background:#f3f3f3}} .bad{{color:#b00}} .ok{{color:#070}}
svg{{background:#fcfcfc;border:1px solid #ddd}} text{{font-size:11px}}</style></head><body>
<h1>Braid simulation: {name}</h1>
<p>seed {seed} · {events} events · {virt:.1} s virtual · replay: <code>{replay}</code></p>
"#,
        name = esc(&r.scenario),
        seed = r.seed,
        events = r.events_processed,
        virt = r.virtual_duration_ms as f64 / 1000.0,
        replay = esc(&r.replay),
    );
    if r.invariant_violations.is_empty() {
        h.push_str("<p id=\"invariants\" class=\"ok\">All invariants held.</p>");
    } else {
        let _ = write!(
            h,
            "<p id=\"invariants\" class=\"bad\">{} invariant violations:</p><ul>",
            r.invariant_violations.len()
        );
        for v in &r.invariant_violations {
            let _ = write!(h, "<li>{}</li>", esc(&format!("{v:?}")));
        }
        h.push_str("</ul>");
    }
    // per-mode table
    h.push_str("<table id=\"modes\"><tr><th>mode</th><th>sent</th><th>executed</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th><th>settled</th><th>settle p50 ms</th></tr>");
    for (mode, m) in &r.modes {
        let _ = write!(
            h,
            "<tr{}><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if r.liveness.stuck_messages.iter().any(|x| x.mode == *mode) { " class=\"bad\"" } else { "" },
            esc(mode), m.sent, m.executed, m.latency_ms.p50, m.latency_ms.p90, m.latency_ms.p99, m.latency_ms.max, m.settled, m.settle_latency_ms.p50
        );
    }
    h.push_str("</table>");
    h.push_str(&liveness_section(r));
    if let Some(f) = &r.finality {
        h.push_str(&finality_table(f));
    }
    if let Some(o) = &r.optimistic {
        h.push_str(&optimistic_table(o));
    }
    if let Some(a) = &r.aggregation {
        h.push_str(&aggregation_table(a));
    }
    h.push_str(&cdf_svg(r));
    h.push_str(&timeline_svg(r));
    h.push_str("</body></html>\n");
    h
}

/// The liveness check: stuck messages and stalled chains, in red.
fn liveness_section(r: &Report) -> String {
    let l = &r.liveness;
    let mut h = String::new();
    let _ = write!(
        h,
        "<h2>Liveness</h2><p id=\"liveness\" class=\"{}\">checked at {} ms, after the quiet point at {} ms and a drain window of {} ms: \
         {} stuck message(s), {} stalled chain(s)</p>",
        if l.stuck_count == 0 && l.stalled_chains.is_empty() { "ok" } else { "bad" },
        l.checked_at_ms, l.quiet_at_ms, l.drain_ms, l.stuck_count, l.stalled_chains.len()
    );
    if !l.stalled_chains.is_empty() {
        h.push_str("<table id=\"stalled\" class=\"bad\"><tr><th>stalled chain</th><th>last batch executed at ms</th><th>batches executed</th><th>head</th><th>waiting</th></tr>");
        for c in &l.stalled_chains {
            let _ = write!(
                h,
                "<tr class=\"bad\"><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                c.chain,
                c.last_batch_executed_at_ms
                    .map_or("never".to_string(), |t| t.to_string()),
                c.batches_executed,
                c.head,
                esc(&c.waiting)
            );
        }
        h.push_str("</table>");
    }
    if !l.stuck_messages.is_empty() {
        h.push_str("<table id=\"stuck\" class=\"bad\"><tr><th>stuck message</th><th>mode</th><th>to</th><th>sent ms</th><th>settled ms</th><th>waiting for</th></tr>");
        for m in &l.stuck_messages {
            let _ = write!(
                h,
                "<tr class=\"bad\"><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
                esc(&m.id), esc(&m.mode), m.dest, m.sent_at_ms, m.settled_at_ms, esc(&m.waiting)
            );
        }
        h.push_str("</table>");
    }
    h
}

/// Aggregated settlement: roots, verifications, exits, exports per level.
fn aggregation_table(a: &crate::AggregationReport) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<h2>Aggregated settlement</h2><p>{} chains, depth {}, checkpoint every {} blocks ({} ms); \
         modelled proving: leaf {} ms, node {} ms, root after {} ms</p>\
         <table id=\"aggregation\"><tr><th>roots accepted</th><th>SL verifications / checkpoint</th>\
         <th>batches proven by roots</th><th>roots refused</th><th>emergency exits</th>\
         <th>forged imports rejected by the tree</th><th>checkpoint→root p50/p99 ms</th>\
         <th>root proof bytes (re-execution / plonky2)</th><th>takeover</th></tr>\
         <tr><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td>\
         <td>{} / {}</td><td>{}</td></tr></table>",
        a.chains,
        a.depth,
        a.checkpoint_blocks,
        a.checkpoint_interval_ms,
        a.leaf_prove_ms,
        a.node_prove_ms,
        a.root_prove_ms,
        a.roots_accepted,
        a.sl_verifications_per_checkpoint,
        a.batches_proven_by_roots,
        a.roots_refused.values().sum::<u64>(),
        a.emergency_exits,
        a.forged_imports_rejected_by_tree,
        a.checkpoint_to_root_ms.p50,
        a.checkpoint_to_root_ms.p99,
        a.root_proof_bytes_reexec,
        a.root_proof_bytes_plonky2_model,
        a.takeover.as_ref().map_or_else(
            || "-".to_string(),
            |t| format!("at {} ms from checkpoint {}", t.at_ms, t.resumed_from_checkpoint)
        ),
    );
    s.push_str("<table id=\"exports\"><tr><th>level</th><th>proofs</th><th>max exports</th><th>mean</th></tr>");
    for l in &a.exports_per_level {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>",
            l.level, l.proofs, l.max, l.mean
        );
    }
    s.push_str("</table>");
    s
}

/// Optimistic settlement: proposals, games and bonds.
fn optimistic_table(o: &crate::OptimisticReport) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<h2>Optimistic settlement</h2><p>{} chains, k = {}, window {} ms, clocks {} ms + {} ms per move</p>\
         <table id=\"optimistic\"><tr><th>proposals</th><th>final</th><th>defeated</th>\
         <th>challenges</th><th>moves</th><th>final p50/p99 ms</th><th>bonds slashed (wei)</th>\
         <th>burned (wei)</th></tr><tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}/{}</td><td>{}</td><td>{}</td></tr></table>",
        o.chains,
        o.k,
        o.challenge_window_ms,
        o.clock_ms,
        o.move_ms,
        o.proposals,
        o.proposals_final,
        o.proposals_defeated,
        o.challenges,
        o.moves,
        o.time_to_final_ms.p50,
        o.time_to_final_ms.p99,
        esc(&o.bonds_slashed_wei),
        esc(&o.bonds_burned_wei),
    );
    if !o.games.is_empty() {
        s.push_str(
            "<table id=\"games\"><tr><th>chain/batch</th><th>steps</th><th>rounds (bound)</th>\
             <th>clock ms</th><th>duration ms</th><th>winner</th><th>loser</th><th>decided by</th>\
             <th>step gas</th></tr>",
        );
        for g in &o.games {
            let _ = write!(
                s,
                "<tr><td>{}/{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                g.chain,
                g.batch,
                g.steps,
                g.rounds,
                g.rounds_needed,
                g.clock_ms,
                g.duration_ms,
                esc(&g.winner_agent),
                esc(&g.loser_agent),
                esc(&g.decided_by),
                g.step_gas
                    .map_or_else(|| "-".to_string(), |x| x.to_string()),
            );
        }
        s.push_str("</table>");
    }
    s
}

/// Fast finality: certified and final blocks, latencies, postconfirmations and slashes.
fn finality_table(f: &crate::FinalityReport) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<h2>Fast finality</h2><p>{} validators, {} DA nodes, {} aggregation{}</p>\
         <table id=\"finality\"><tr><th>blocks seen</th><th>certified</th><th>L2-final</th>\
         <th>invalid shown</th><th>QC p50/p99 ms</th><th>L2-final p50/p99 ms</th>\
         <th>postconfirmed</th><th>postconfirm p50 ms</th><th>equivocations</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}/{}</td>\
         <td>{}</td><td>{}</td><td>{}</td></tr></table>",
        f.validators,
        f.da_nodes,
        esc(&f.aggregation),
        if f.byzantine.is_empty() {
            String::new()
        } else {
            let b: Vec<String> = f
                .byzantine
                .iter()
                .map(|(v, how)| format!("{v}: {how}"))
                .collect();
            esc(&format!("; Byzantine: {}", b.join(", ")))
        },
        f.blocks_seen,
        f.blocks_certified,
        f.blocks_final,
        f.invalid_blocks_proposed,
        f.time_to_qc_ms.p50,
        f.time_to_qc_ms.p99,
        f.time_to_l2_final_ms.p50,
        f.time_to_l2_final_ms.p99,
        f.postconfirmations,
        f.time_to_postconfirmation_ms.p50,
        f.equivocations_detected,
    );
    if !f.slashes.is_empty() {
        s.push_str(
            "<table id=\"slashes\"><tr><th>at ms</th><th>validator</th><th>reason</th></tr>",
        );
        for x in &f.slashes {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                x.at_ms,
                x.validator,
                esc(&x.reason)
            );
        }
        s.push_str("</table>");
    }
    s
}

/// Latency CDF: x = latency (ms), y = share of executed messages at or below it.
fn cdf_svg(r: &Report) -> String {
    let (w, ht, left, bottom) = (720.0, 300.0, 50.0, 30.0);
    let max = r
        .modes
        .values()
        .flat_map(|m| m.latency_samples_ms.last())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut s = String::new();
    let _ = write!(s, "<h2>Latency CDF by mode</h2><svg id=\"cdf\" width=\"{w}\" height=\"{ht}\" xmlns=\"http://www.w3.org/2000/svg\">");
    let (pw, ph) = (w - left - 40.0, ht - bottom - 10.0);
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#888\"/>",
        y = 10.0 + ph,
        x2 = left + pw
    );
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"10\" x2=\"{left}\" y2=\"{y}\" stroke=\"#888\"/>",
        y = 10.0 + ph
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let _ = write!(
            s,
            "<text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\">{:.0} ms</text>",
            f * max,
            x = left + f * pw,
            y = ht - 8.0
        );
        let _ = write!(
            s,
            "<text x=\"{x}\" y=\"{y}\" text-anchor=\"end\">{:.0}%</text>",
            f * 100.0,
            x = left - 4.0,
            y = 14.0 + ph * (1.0 - f)
        );
    }
    for (i, (mode, m)) in r.modes.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let n = m.latency_samples_ms.len();
        if n == 0 {
            continue;
        }
        let mut pts = format!("{left},{}", 10.0 + ph);
        for (k, v) in m.latency_samples_ms.iter().enumerate() {
            let x = left + (*v as f64 / max) * pw;
            let y_before = 10.0 + ph * (1.0 - k as f64 / n as f64);
            let y_after = 10.0 + ph * (1.0 - (k + 1) as f64 / n as f64);
            let _ = write!(pts, " {x:.1},{y_before:.1} {x:.1},{y_after:.1}");
        }
        let _ = write!(s, "<polyline class=\"cdf\" data-mode=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{pts}\"/>", esc(mode));
        let _ = write!(
            s,
            "<text x=\"{x}\" y=\"{y}\" fill=\"{color}\">{}</text>",
            esc(mode),
            x = w - 110.0,
            y = ht - bottom - 20.0 - 14.0 * i as f64
        );
    }
    s.push_str("</svg>");
    s
}

/// Timeline: one row per chain; dots for executed batches, red marks for reverts, shaded bars
/// for faults.
fn timeline_svg(r: &Report) -> String {
    let chains: Vec<u64> = r.chains.keys().copied().collect();
    let row = 22.0;
    let (w, left) = (720.0, 60.0);
    let ht = 40.0 + row * chains.len() as f64;
    let end = r.virtual_duration_ms.max(1) as f64;
    let pw = w - left - 40.0;
    let x = |t: u64| left + (t as f64 / end) * pw;
    let y =
        |c: u64| 10.0 + row * chains.iter().position(|k| *k == c).unwrap_or(0) as f64 + row / 2.0;
    let mut s = String::new();
    let _ = write!(s, "<h2>Timeline: batches executed, reverts and faults</h2><svg id=\"timeline\" width=\"{w}\" height=\"{ht}\" xmlns=\"http://www.w3.org/2000/svg\">");
    for f in &r.faults {
        let (y0, hh) = match f.chain {
            Some(c) => (y(c) - row / 2.0, row),
            None => (10.0, row * chains.len() as f64),
        };
        let _ = write!(
            s,
            "<rect class=\"fault\" x=\"{:.1}\" y=\"{y0:.1}\" width=\"{:.1}\" height=\"{hh}\" fill=\"#f5c242\" fill-opacity=\"0.35\"><title>{}</title></rect>",
            x(f.start_ms),
            (x(f.end_ms) - x(f.start_ms)).max(1.0),
            esc(&f.kind)
        );
    }
    for c in &chains {
        let _ = write!(s, "<text x=\"4\" y=\"{:.1}\">{c}</text><line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{x2}\" y2=\"{yy:.1}\" stroke=\"#eee\"/>", y(*c) + 4.0, yy = y(*c), x2 = left + pw);
    }
    for e in &r.executions {
        let _ = write!(s, "<circle class=\"executed\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#2ca02c\"><title>{} batch {}</title></circle>", x(e.at_ms), y(e.chain), e.chain, e.batch);
    }
    for rv in &r.revert_log {
        let (cx, cy) = (x(rv.at_ms), y(rv.chain));
        let _ = write!(
            s,
            "<path class=\"revert\" d=\"M{:.1},{:.1} l8,8 m0,-8 l-8,8\" stroke=\"#d62728\" stroke-width=\"2\"><title>revert {}..={} ({})</title></path>",
            cx - 4.0, cy - 4.0, rv.from, rv.to, esc(&rv.cause)
        );
    }
    for i in 0..=4 {
        let t = (end * f64::from(i) / 4.0) as u64;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.0} s</text>",
            x(t),
            ht - 8.0,
            t as f64 / 1000.0
        );
    }
    s.push_str("</svg>");
    s
}
