//! The chaos test as CI runs it: a short seeded run of `braid chaos` (every role killed with
//! SIGKILL at least once, a double kill, a kill during a burst) that must lose nothing — and a run
//! whose drain is too short to deliver, which must fail, so the check is shown to fire.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;

fn chaos(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_braid"))
        .arg("chaos")
        .args(args)
        .env("BRAID_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The `accepted` and `executed` columns of `mode`'s row in the summary table.
fn row(text: &str, mode: &str) -> (u64, u64) {
    let line = text
        .lines()
        .find(|l| l.starts_with(mode))
        .unwrap_or_else(|| panic!("no {mode} row in:\n{text}"));
    let cols: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|c| c.parse().unwrap())
        .collect();
    (cols[0], cols[2])
}

#[test]
fn sigkilled_processes_lose_no_message_in_any_live_mode() {
    let (ok, text) = chaos(&[
        "--seed",
        "1",
        "--rounds",
        "5",
        "--rate",
        "6",
        "--drain-s",
        "90",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("nothing lost, nothing duplicated"), "{text}");
    // every role was killed: the SL, each chain, the relayer; a double kill and a burst
    for killed in [
        "SIGKILL sl",
        "SIGKILL chain 901",
        "SIGKILL chain 902",
        "SIGKILL chain 903",
    ] {
        assert!(text.contains(killed), "{killed} missing:\n{text}");
    }
    assert!(text.contains("relayer"), "{text}");
    assert!(text.contains(" + "), "no double kill:\n{text}");
    assert!(text.contains("during a burst"), "{text}");
    for mode in ["precommit", "commit", "proof"] {
        let (accepted, executed) = row(&text, mode);
        assert!(accepted > 0, "no {mode} traffic:\n{text}");
        assert_eq!(accepted, executed, "{mode}:\n{text}");
    }
}

#[test]
fn a_drain_too_short_to_deliver_fails_the_chaos_test() {
    let (ok, text) = chaos(&[
        "--seed",
        "2",
        "--rounds",
        "1",
        "--rate",
        "20",
        "--drain-s",
        "0",
    ]);
    assert!(!ok, "{text}");
    assert!(text.contains("chaos: FAILED"), "{text}");
    assert!(
        text.contains("lost: ") || text.contains("accepted but never mined"),
        "{text}"
    );
}
