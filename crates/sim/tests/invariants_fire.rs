//! Every invariant the simulator can report is shown to fire: a checker that silently stopped
//! working would leave every scenario green, so each name has a test that breaks its property
//! and asserts exactly that name is reported (with the chain or message in the detail).
//!
//! [`INDEX`] lists every name with the test that shows it firing. Properties a scenario can
//! break (a Byzantine supermajority, no honest challenger) are broken here by real runs;
//! the others cannot be broken without a bug in a core, so their tests feed the checker a
//! doctored input (`src/invariants.rs`) or doctor a real run (`src/engine/invariants_fire.rs`).
//! `every_reported_invariant_is_indexed_with_a_test` scans the simulator's sources for the names
//! it reports, so a new invariant without a listed test fails the suite.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use braid_sim::{run, Report, Scenario};

/// Every invariant name, the file (under `crates/sim/`) of the test showing it fires, and the
/// test.
const INDEX: &[(&str, &str, &str)] = &[
    (
        "no_double_execution",
        "src/invariants.rs",
        "no_double_execution_fires_on_a_second_execution_of_one_id",
    ),
    (
        "executed_batch_never_reverted",
        "src/invariants.rs",
        "executed_batch_never_reverted_fires_on_a_revert_of_an_executed_batch",
    ),
    (
        "executed_message_exists",
        "src/invariants.rs",
        "executed_message_exists_fires_for_a_leaf_that_differs_from_the_source_tree",
    ),
    (
        "chain_value_conserved",
        "src/invariants.rs",
        "chain_value_conserved_fires_for_a_chain_whose_balances_do_not_add_up",
    ),
    (
        "sl_value_conserved",
        "src/invariants.rs",
        "sl_value_conserved_fires_when_the_sl_total_moves",
    ),
    (
        "settled_execution_has_settled_source",
        "src/engine/invariants_fire.rs",
        "settled_execution_has_settled_source_fires_for_an_execution_settled_before_its_source",
    ),
    (
        "optimistic_before_final",
        "src/engine/invariants_fire.rs",
        "optimistic_before_final_fires_for_an_optimistic_message_executed_before_finality",
    ),
    (
        "tree_block_reverted",
        "src/engine/invariants_fire.rs",
        "tree_block_reverted_fires_for_a_revert_of_blocks_an_accepted_root_settled",
    ),
    (
        "core_error",
        "src/engine/invariants_fire.rs",
        "core_error_stops_the_run_when_a_core_refuses_what_the_sl_demands",
    ),
    (
        "no_invalid_block_certified",
        "tests/invariants_fire.rs",
        "no_invalid_block_certified_fires_when_byzantine_stake_above_two_thirds_accepts_an_invalid_block",
    ),
    (
        "no_conflicting_qcs",
        "tests/invariants_fire.rs",
        "no_conflicting_qcs_fires_when_byzantine_stake_above_two_thirds_equivocates",
    ),
    (
        "wrong_root_final",
        "tests/invariants_fire.rs",
        "wrong_root_final_fires_when_no_challenger_disputes_a_wrong_root",
    ),
    (
        "message_delivered",
        "tests/liveness.rs",
        "message_delivered_fires_for_a_settled_message_not_executed",
    ),
    (
        "chain_settles",
        "tests/liveness.rs",
        "chain_settles_fires_for_a_chain_that_executes_no_batch_in_the_drain_window",
    ),
];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Rust files under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A `snake_case` name with at least one underscore.
fn is_name(s: &str) -> bool {
    s.contains('_') && !s.starts_with('_') && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

/// The invariant names the simulator's non-test sources report: string literals standing
/// alone on a line (the first element of a `(name, detail)` failure, or a name chosen by an
/// `if`), or passed straight to `violate(`, `violation(` or `get_or_insert((`.
fn reported_names() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&crate_dir().join("src"), &mut files);
    let mut names = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        if file.ends_with("invariants_fire.rs") {
            continue; // tests
        }
        // test modules come last in a file
        let code = text.split("mod tests {").next().unwrap_or("");
        for line in code.lines() {
            let t = line.trim().trim_end_matches(',');
            if let Some(inner) = t.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                if is_name(inner) {
                    names.insert(inner.to_string());
                }
            }
            for call in ["violate(\"", "violation(\"", "get_or_insert((\""] {
                for (i, _) in line.match_indices(call) {
                    let rest = &line[i + call.len()..];
                    if let Some(name) = rest.split('"').next() {
                        if is_name(name) {
                            names.insert(name.to_string());
                        }
                    }
                }
            }
        }
    }
    names
}

#[test]
fn every_reported_invariant_is_indexed_with_a_test() {
    let reported = reported_names();
    let indexed: BTreeSet<String> = INDEX.iter().map(|(n, _, _)| n.to_string()).collect();
    assert_eq!(
        reported, indexed,
        "the names the simulator reports and the index differ: add a test showing the new \
         invariant fires to INDEX"
    );
    assert_eq!(indexed.len(), INDEX.len(), "a name listed twice");
    for (name, file, test) in INDEX {
        let text = std::fs::read_to_string(crate_dir().join(file)).unwrap();
        // in a module with its tests at the end, the name must be asserted by the tests
        let text = match text.split_once("mod tests {") {
            Some((_, tests)) => tests.to_string(),
            None => text,
        };
        assert!(
            text.contains(&format!("fn {test}(")),
            "{name}: no test {test} in {file}"
        );
        assert!(
            text.contains(&format!("\"{name}\"")),
            "{name}: {file} does not assert the name"
        );
    }
}

fn run_text(text: &str) -> Report {
    let s = Scenario::from_toml(text).unwrap();
    run(&s, s.seed).unwrap()
}

/// Two chains with four validators of equal stake, three of them Byzantine with `behaviour`;
/// `extra` adds settings or faults.
fn finality(behaviour: &str, extra: &str) -> String {
    let mut byzantine = String::new();
    for v in 1..=3 {
        byzantine.push_str(&format!(
            "[[finality.byzantine]]\nvalidator = {v}\nbehaviour = \"{behaviour}\"\n"
        ));
    }
    format!(
        r#"
        name = "invariants-fire-finality"
        seed = 25
        duration_ms = 12_000
        traffic_stop_ms = 8_000
        chains = 2
        block_time_ms = 1_000
        batch_blocks = 3
        sl_block_time_ms = 1_000
        {extra}
        [finality]
        validators = 4
        da_nodes = 3
        aggregation = "leader_free"
        {byzantine}
        [[traffic]]
        from = 902
        to = 901
        mode = "qc"
        rate_per_s = 1.0
        "#
    )
}

#[test]
fn no_invalid_block_certified_fires_when_byzantine_stake_above_two_thirds_accepts_an_invalid_block()
{
    // 3 of 4 equal stakes accept anything: the block with a wrong state root gets a QC
    let text = finality(
        "accept_invalid",
        "[[faults]]\nat_ms = 4_000\nkind = \"wrong_state_root\"\nchain = 902",
    );
    let r = run_text(&text);
    assert_eq!(
        r.violated(),
        ["no_invalid_block_certified"],
        "{:#?}",
        r.invariant_violations
    );
    let f = r.finality.clone().unwrap();
    assert_eq!(
        f.invalid_blocks_proposed, 1,
        "the fault made one invalid block"
    );
    let v = &r.invariant_violations[0];
    assert!(
        v.detail.starts_with("block ")
            && v.detail
                .contains(" of chain 902 is invalid but was certified by ["),
        "{}",
        v.detail
    );
    assert!(v.at_ms >= 4_000, "not before the fault: {v:?}");
}

#[test]
fn no_conflicting_qcs_fires_when_byzantine_stake_above_two_thirds_equivocates() {
    // 3 of 4 equal stakes sign a fabricated twin of every block besides the real one; with
    // jitter, some collector counts the twin votes first and certifies the twin
    let text = finality("equivocate", "[link]\nlatency_ms = 20\njitter_ms = 40");
    let r = run_text(&text);
    assert_eq!(
        r.violated(),
        ["no_conflicting_qcs"],
        "{:#?}",
        r.invariant_violations
    );
    let f = r.finality.clone().unwrap();
    assert!(f.equivocations_detected > 0, "{f:#?}");
    let v = &r.invariant_violations[0];
    assert!(
        v.detail.starts_with("two QCs at height ") && v.detail.contains(" of chain 90"),
        "{}",
        v.detail
    );
}

#[test]
fn wrong_root_final_fires_when_no_challenger_disputes_a_wrong_root() {
    // a proposer posting wrong end states and nobody to challenge them: the first one becomes
    // final after its window (the same scenario with a challenger is
    // `optimistic_wrong_root`, where every wrong root is defeated)
    let r = run_text(
        r#"
        name = "invariants-fire-optimistic"
        seed = 42
        duration_ms = 30_000
        traffic_stop_ms = 10_000
        chains = 2
        block_time_ms = 1_000
        batch_blocks = 4
        sl_block_time_ms = 1_000
        [optimistic]
        challenge_window_ms = 5_000
        k = 4
        clock_ms = 8_000
        proposers = 1
        challengers = 0
        [[optimistic.adversaries]]
        behaviour = "wrong_root"
        [[traffic]]
        from = 901
        to = 902
        mode = "optimistic"
        rate_per_s = 1.0
        "#,
    );
    assert_eq!(
        r.violated(),
        ["wrong_root_final"],
        "{:#?}",
        r.invariant_violations
    );
    let o = r.optimistic.clone().unwrap();
    assert_eq!(o.challenges, 0, "nobody challenged: {o:#?}");
    let v = &r.invariant_violations[0];
    assert!(
        v.detail.starts_with("wrong_root_final: proposal ")
            && v.detail.contains(" of chain 90")
            && v.detail.contains("became final with"),
        "{}",
        v.detail
    );
    assert!(
        v.at_ms >= 5_000,
        "not before a challenge window passed: {v:?}"
    );
}
