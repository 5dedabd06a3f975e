//! Kills a writer process with SIGKILL at arbitrary instants while it persists blocks (and now
//! and then reverts the last batch, as after a settlement-layer revert, and finalizes old
//! batches), then checks the store reopens at exactly a committed block whose state root
//! re-execution confirms.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::SolCall;
use braid_execution::{execute_block, ChainState, TxSigner};
use braid_primitives::{IMessenger, MESSENGER_ADDRESS};
use braid_sequencer::{Sequencer, SequencerConfig, SequencerInput, SequencerOutput};
use braid_store::ChainStore;

const CHAIN: u64 = 901;
const CHILD_ENV: &str = "BRAID_CRASH_WRITER_DIR";
const TEST_NAME: &str = "sigkill_at_any_instant_recovers_to_the_last_persisted_block";

fn alloc() -> Vec<(Address, U256)> {
    (0..4)
        .map(|i| (TxSigner::dev(i).address(), U256::from(10u128.pow(24))))
        .collect()
}

fn config() -> SequencerConfig {
    let mut c = SequencerConfig::new(CHAIN);
    c.batch_blocks = 4;
    c
}

/// The child: resume (or start) the chain and persist blocks until killed.
fn run_writer(dir: &Path) -> ! {
    let store = ChainStore::open(dir.join("chain.redb"), CHAIN).unwrap();
    let mut seq = match store.load().unwrap() {
        Some(l) => Sequencer::restore(config(), l.state, l.head.header, l.open_batch, l.last_batch)
            .unwrap(),
        None => {
            let (seq, g) = Sequencer::genesis(config(), &alloc()).unwrap();
            store
                .persist_block(&g.block, &g.receipts, &g.changes, None)
                .unwrap();
            seq
        }
    };
    let send = IMessenger::sendMessageCall {
        destChain: U256::from(902u64),
        recipient: Address::repeat_byte(9),
        payload: Bytes::from_static(b"crash test"),
    }
    .abi_encode();
    let mut sealed_since_revert = 0u32;
    for _ in 0..100_000 {
        // the schedule, not the head: after a revert the head is older but time goes on
        let now = seq.next_block_at_ms();
        for i in 0..4u32 {
            let s = TxSigner::dev(i);
            let nonce = seq.state().account(&s.address()).nonce;
            let raw = if i % 2 == 0 {
                s.call(
                    CHAIN,
                    nonce,
                    Address::repeat_byte(i as u8 + 1),
                    U256::from(1u64),
                    Bytes::new(),
                    21_000,
                )
            } else {
                s.call(
                    CHAIN,
                    nonce,
                    MESSENGER_ADDRESS,
                    U256::from(5u64),
                    send.clone().into(),
                    200_000,
                )
            };
            seq.handle(SequencerInput::SubmitTx { raw: raw.unwrap() });
        }
        let out = seq.handle(SequencerInput::Tick { now_ms: now });
        let batch = out.iter().find_map(|o| match o {
            SequencerOutput::BatchSealed(b) => Some(b.header.clone()),
            _ => None,
        });
        for o in out {
            if let SequencerOutput::BlockSealed(b) = o {
                store
                    .persist_block(&b.block, &b.receipts, &b.changes, batch.as_ref())
                    .unwrap();
                println!("persisted {}", b.block.header.number);
            }
        }
        if let Some(batch) = batch {
            sealed_since_revert += 1;
            // every third batch sealed by this process: the SL reverts the last one
            let target = batch.number - 1;
            let revertible = seq.oldest_revertible_batch().is_some_and(|o| o <= target);
            if sealed_since_revert >= 3 && revertible {
                sealed_since_revert = 0;
                let outcome = seq.revert_to(target, |_| false).unwrap();
                // announced before the store reverts, so the parent never expects more
                println!("reverting {}", outcome.head.number);
                store.revert_to_block(outcome.head.number).unwrap();
            } else if batch.number > 2 {
                // the SL executed all but the last two batches: prune what cannot revert
                let final_batch = batch.number - 2;
                seq.finalize_through(final_batch);
                let last_block = store.batch(final_batch).unwrap().unwrap().lastBlock;
                store.finalize_through_block(last_block).unwrap();
            }
        }
    }
    std::process::exit(0)
}

fn verify_by_re_execution(dir: &Path) -> u64 {
    let store = ChainStore::open(dir.join("chain.redb"), CHAIN).unwrap();
    let loaded = store.load().unwrap().expect("a committed chain");
    let mut replay = ChainState::genesis(CHAIN, &alloc());
    let genesis = store.block(0).unwrap().unwrap();
    assert_eq!(replay.state_root(), genesis.header.stateRoot);
    let mut parent = genesis.header.hash();
    for n in 1..=loaded.head.header.number {
        let block = store.block(n).unwrap().unwrap();
        execute_block(&mut replay, parent, &block).unwrap();
        parent = block.header.hash();
    }
    let mut state = loaded.state;
    assert_eq!(replay.state_root(), state.state_root());
    assert_eq!(replay.outbox().root(), state.outbox().root());
    assert!(state.value_conserved());
    loaded.head.header.number
}

#[test]
fn sigkill_at_any_instant_recovers_to_the_last_persisted_block() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        run_writer(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut last_head = 0;
    let mut total_reverts = 0;
    // Each round restarts from what the previous kill left, so recovery is also resumption.
    for round in 0..6u64 {
        let mut child = Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let wanted = 3 + round * 3;
        let mut seen = 0;
        let mut last_reported = 0;
        let mut reverts = 0;
        let mut note = |line: &str, last_reported: &mut u64| {
            if let Some(n) = line.strip_prefix("persisted ") {
                *last_reported = n.parse().unwrap();
                return true;
            }
            if let Some(n) = line.strip_prefix("reverting ") {
                *last_reported = n.parse().unwrap();
                reverts += 1;
            }
            false
        };
        while seen < wanted {
            let line = lines.next().expect("writer ended early").unwrap();
            if note(&line, &mut last_reported) {
                seen += 1;
            }
        }
        // kill at a different offset each round, usually in the middle of a write
        std::thread::sleep(Duration::from_micros(round * 700));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        // what the writer reported before it died (a revert is reported before it starts)
        for line in lines {
            note(&line.unwrap(), &mut last_reported);
        }
        total_reverts += reverts;
        let head = verify_by_re_execution(dir.path());
        assert!(
            head >= last_reported,
            "lost committed block {last_reported}, head {head}"
        );
        assert!(head > last_head, "no progress in round {round}");
        last_head = head;
    }
    assert!(total_reverts > 0, "the writers never reverted");
}
