//! Liveness is an invariant: after the quiet point (the last fault's end, the end of traffic)
//! and a drain window, every message whose source batch settled must be executed on its
//! destination (`message_delivered`) and every chain must still be executing batches
//! (`chain_settles`). These tests show the run is extended to the drain window's end, that a
//! clean run reports nothing stuck, and that each check fires — with its name, the message or
//! chain, and what it waits for — when its property does not hold.
#![allow(clippy::unwrap_used, clippy::panic)]

use braid_sim::{render_html, run, Scenario};

const BASE: &str = r#"
    name = "liveness"
    seed = 3
    duration_ms = 20_000
    traffic_stop_ms = 10_000
    chains = 2
    block_time_ms = 1_000
    batch_blocks = 2
    sl_block_time_ms = 1_000
    timeout_operator_ms = 20_000
    timeout_council_ms = 40_000
    [[traffic]]
    from = 901
    to = 902
    mode = "proof"
    rate_per_s = 3.0
"#;

#[test]
fn a_clean_run_drains_past_the_quiet_point_with_nothing_stuck() {
    let s = Scenario::from_toml(BASE).unwrap();
    // default drain: the council's takeover delay plus 30 s
    assert_eq!(s.quiet_at_ms(), 10_000);
    assert_eq!(s.drain_ms(), 50_000);
    assert_eq!(s.run_end_ms(), 60_000);
    let r = run(&s, s.seed).unwrap();
    assert!(
        r.invariant_violations.is_empty(),
        "{:#?}",
        r.invariant_violations
    );
    assert_eq!(
        r.virtual_duration_ms, 60_000,
        "the run lasts to the drain window's end"
    );
    assert_eq!(r.liveness.checked_at_ms, 60_000);
    assert_eq!(r.liveness.stuck_count, 0);
    assert!(r.liveness.stalled_chains.is_empty());
    let m = r.mode("proof");
    assert!(m.sent > 10, "{m:?}");
    assert_eq!(m.settled, m.sent);
    assert_eq!(m.executed, m.sent);
    let html = render_html(&r);
    assert!(html.contains("id=\"liveness\" class=\"ok\""));
}

#[test]
fn message_delivered_fires_for_a_settled_message_not_executed() {
    // a lossy network and a relayer that re-sends a lost import or execution only after ten
    // minutes: some messages settle at their source and are never executed in the run
    let text = BASE.replace(
        "timeout_council_ms = 40_000",
        "timeout_council_ms = 40_000\n[link]\nloss = 0.2\n[relayer]\nretry_ms = 600_000",
    );
    let s = Scenario::from_toml(&text).unwrap();
    let r = run(&s, s.seed).unwrap();
    let names = r.violated();
    assert_eq!(
        names,
        ["message_delivered"],
        "{:#?}",
        r.invariant_violations
    );
    let v = &r.invariant_violations[0];
    assert!(v.detail.contains("proof to chain 902"), "{}", v.detail);
    let m = r.mode("proof");
    assert!(r.liveness.stuck_count > 0);
    assert_eq!(r.liveness.stuck_count, m.settled - m.executed, "{m:?}");
    let stuck = &r.liveness.stuck_messages[0];
    assert!(stuck.id.starts_with("901:"), "{stuck:?}");
    assert_eq!(stuck.dest, 902);
    assert!(stuck.settled_at_ms <= 60_000 - 25_000, "{stuck:?}");
    let html = render_html(&r);
    assert!(html.contains("id=\"stuck\" class=\"bad\""));
    assert!(html.contains(&stuck.id));
}

#[test]
fn chain_settles_fires_for_a_chain_that_executes_no_batch_in_the_drain_window() {
    // batches of 12 one-second blocks, executed every 12 s or so: a 4 s drain window sees none
    let text = BASE
        .replace("batch_blocks = 2", "batch_blocks = 12")
        .replace("duration_ms = 20_000", "duration_ms = 30_500");
    let s = Scenario::from_toml(&format!("drain_ms = 4_000\n{text}")).unwrap();
    let r = run(&s, s.seed).unwrap();
    let v = r
        .invariant_violations
        .iter()
        .find(|v| v.invariant == "chain_settles")
        .unwrap_or_else(|| panic!("{:#?} {:#?}", r.invariant_violations, r.executions));
    assert!(
        v.detail.contains("executed no batch on the SL since"),
        "{}",
        v.detail
    );
    assert!(!r.liveness.stalled_chains.is_empty());
    for c in &r.liveness.stalled_chains {
        let last = c.last_batch_executed_at_ms.unwrap_or(0);
        assert!(last < 30_500 - 2_000, "{c:?}");
        // and the report's own execution log agrees
        assert!(r
            .executions
            .iter()
            .filter(|e| e.chain == c.chain)
            .all(|e| e.at_ms <= last));
    }
    assert!(render_html(&r).contains("id=\"stalled\" class=\"bad\""));
}

#[test]
fn a_zero_drain_window_is_refused() {
    let e = Scenario::from_toml(&format!("drain_ms = 0\n{BASE}")).unwrap_err();
    assert_eq!(e.to_string(), "drain_ms must be positive");
}
