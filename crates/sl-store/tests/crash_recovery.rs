//! Kills an SL node with SIGKILL at arbitrary instants while it produces and logs SL blocks for
//! two live chains, then checks that the log reopens, holds every block the node reported as
//! durable, and replays (independently of `PersistentSl::open`) to the state the reopened node
//! has; the next round resumes from it and must make progress.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use braid_settlement::{SettlementLayer, SlEvent, SlInput};
use braid_sl_store::{state_fingerprint, PersistentSl, SlStore};
use common::{fresh_proofs, sl_config, Chains, BLOCK_MS, CHAINS};

const CHILD_ENV: &str = "BRAID_SL_CRASH_WRITER_DIR";
const TEST_NAME: &str = "sigkill_at_any_instant_recovers_the_logged_sl_blocks";
/// The writer stops by itself after this many SL blocks.
const MAX_BLOCKS_PER_RUN: u64 = 40;

fn db_path(dir: &Path) -> std::path::PathBuf {
    dir.join("sl.redb")
}

fn durable(events: &[SlEvent]) -> u64 {
    match events.last() {
        Some(SlEvent::SlBlock { height, .. }) => *height,
        other => panic!("no SL block: {other:?}"),
    }
}

/// The child: reopen (or start) the SL, rebuild the chains up to its last block, and keep the
/// operators committing, proving and executing until killed or done.
fn run_writer(dir: &Path) -> ! {
    let (mut node, _replayed) =
        PersistentSl::open(db_path(dir), sl_config(), fresh_proofs()).unwrap();
    let mut chains = Chains::new();
    let head = node.sl().height();
    if head == 0 {
        for tx in chains.registration_txs() {
            assert!(node.submit(tx).is_empty());
        }
        println!("persisted {}", durable(&node.tick(0).unwrap()));
    } else {
        // the chains are not persisted here: they are deterministic, run them up to the SL
        let last = node.store().block(head).unwrap().unwrap();
        chains.fast_forward(last.now_ms);
    }
    for _ in 0..MAX_BLOCKS_PER_RUN {
        chains.advance();
        // transactions accepted before the kill are journaled and pending again: the
        // operators derive the same ones, which must not go in twice
        let pending: Vec<(_, u64)> = node.buffered().iter().map(|t| (t.from, t.nonce)).collect();
        for tx in chains.operator_txs(node.sl()) {
            if pending.contains(&(tx.from, tx.nonce)) {
                continue;
            }
            assert!(node.submit(tx).is_empty());
        }
        let events = node.tick(chains.now).unwrap();
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, SlEvent::TxRejected { .. })),
            "{events:?}"
        );
        // only now is the block durable: announce it
        println!("persisted {}", durable(&events));
    }
    std::process::exit(0)
}

/// Replays the log by hand into a fresh core and checks the reopened node agrees. Returns the
/// head height and the executed batches of every chain.
fn verify(dir: &Path) -> (u64, Vec<u64>) {
    let store = SlStore::open(db_path(dir), &sl_config()).unwrap();
    let head = store.head().unwrap();
    let blocks = store.blocks().unwrap();
    assert_eq!(blocks.len() as u64, head);
    drop(store);
    let mut replay = SettlementLayer::new(sl_config(), fresh_proofs()).unwrap();
    for (i, block) in blocks.into_iter().enumerate() {
        assert_eq!(block.now_ms, i as u64 * BLOCK_MS);
        for tx in block.txs {
            assert!(replay.handle(SlInput::Submit(Box::new(tx))).is_empty());
        }
        let events = replay.handle(SlInput::Tick {
            now_ms: block.now_ms,
        });
        assert_eq!(durable(&events), i as u64 + 1);
    }
    let (node, replayed) = PersistentSl::open(db_path(dir), sl_config(), fresh_proofs()).unwrap();
    assert_eq!(replayed, head);
    assert_eq!(node.sl().height(), head);
    assert_eq!(node.state_fingerprint(), state_fingerprint(&replay));
    assert_eq!(
        node.sl().message_tree().root(),
        replay.message_tree().root()
    );
    assert_eq!(node.sl().total_value(), replay.total_value());
    let executed = CHAINS
        .iter()
        .map(|id| replay.chain(*id).map_or(0, |c| c.last_executed))
        .collect();
    (head, executed)
}

#[test]
fn sigkill_at_any_instant_recovers_the_logged_sl_blocks() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        run_writer(Path::new(&dir));
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut last_head = 0;
    let mut executed = vec![0; CHAINS.len()];
    // Each round restarts from what the previous kill left, so recovery is also resumption.
    let spawn = || {
        Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    for round in 0..8u64 {
        let round_started = Instant::now();
        if round % 3 == 2 {
            // a blind kill: during process start-up, the replay, or the first blocks
            let mut child = spawn();
            std::thread::sleep(Duration::from_micros(500 + round * 1_500));
            child.kill().unwrap();
            child.wait().unwrap();
            let (head, _) = verify(dir.path());
            assert!(
                head >= last_head,
                "lost SL blocks: head {head} < {last_head}"
            );
            last_head = head;
        }
        let mut child = spawn();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let wanted = 2 + round * 2;
        let mut seen = 0;
        let mut last_reported = 0;
        let note = |line: &str, last_reported: &mut u64| -> bool {
            match line.strip_prefix("persisted ") {
                Some(n) => {
                    *last_reported = n.parse().unwrap();
                    true
                }
                None => false,
            }
        };
        while seen < wanted {
            let line = lines.next().expect("writer ended early").unwrap();
            if note(&line, &mut last_reported) {
                seen += 1;
            }
        }
        // kill at a different offset each round, usually in the middle of a block or a write
        std::thread::sleep(Duration::from_micros(round * 900));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        // what the writer reported before it died
        for line in lines {
            note(&line.unwrap(), &mut last_reported);
        }
        let (head, now_executed) = verify(dir.path());
        assert!(
            head >= last_reported,
            "lost durable SL block {last_reported}, head {head}"
        );
        assert!(head > last_head, "no progress in round {round}");
        for (before, now) in executed.iter().zip(&now_executed) {
            assert!(now >= before, "an executed batch was lost");
        }
        last_head = head;
        executed = now_executed;
        eprintln!(
            "round {round}: head {head}, executed {executed:?}, {:?}",
            round_started.elapsed()
        );
    }
    // the resumed operators kept settling both chains across the crashes
    assert!(
        executed.iter().all(|n| *n >= 8),
        "executed batches {executed:?}"
    );
    eprintln!("total {:?}", started.elapsed());
}
