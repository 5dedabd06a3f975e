//! Kills a validator with SIGKILL at arbitrary instants while it signs votes, then checks that
//! its redb slashing protection still refuses a conflicting vote at every height the validator
//! reported as signed (and holds nothing but the honest vote anywhere).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alloy_primitives::keccak256;
use braid_finality::{
    BlsSecretKey, FinalityError, RedbSlashingProtection, SlashingProtection, ValidatorSigner, Vote,
};

const CHILD_ENV: &str = "BRAID_FINALITY_CRASH_SIGNER_DB";
const TEST_NAME: &str = "sigkill_never_loses_a_signed_vote";
const CHAIN: u64 = 5;
/// The signer stops by itself after this many heights.
const MAX_HEIGHT: u64 = 2_000;

/// The vote the honest validator signs at `height` (`block = 1`), or a conflicting one.
fn vote(height: u64, block: u8) -> Vote {
    Vote {
        chainId: CHAIN,
        epoch: 1,
        height,
        parentHash: keccak256([block, 0]),
        blockHash: keccak256([block, 1]),
        stateRoot: keccak256([block, 2]),
        accept: true,
    }
}

/// The child: reopen the protection and sign heights 1, 2, ... (re-signing what a previous run
/// already signed), announcing each signature once it exists.
fn run_signer(db: &Path) -> ! {
    let key = BlsSecretKey::from_seed(&[9; 32]).unwrap();
    let mut signer = ValidatorSigner::new(key, 0, RedbSlashingProtection::open(db).unwrap());
    for height in 1..=MAX_HEIGHT {
        signer.vote(vote(height, 1)).unwrap();
        println!("signed {height}");
    }
    std::process::exit(0)
}

/// Every height up to `reported` refuses a conflicting vote; no height holds anything else
/// than the honest vote. Returns the highest recorded height.
fn verify(db: &Path, reported: u64) -> u64 {
    let mut protection = RedbSlashingProtection::open(db).unwrap();
    let mut highest = 0;
    for height in 1..=MAX_HEIGHT {
        match protection.recorded(CHAIN, height).unwrap() {
            Some(root) => {
                assert_eq!(root, vote(height, 1).signing_root(), "height {height}");
                highest = height;
            }
            None => assert!(height > reported, "lost the vote signed at {height}"),
        }
    }
    for height in 1..=reported {
        assert_eq!(
            protection.check_and_record(&vote(height, 2)),
            Err(FinalityError::WouldEquivocate {
                chain: CHAIN,
                height
            })
        );
    }
    highest
}

#[test]
fn sigkill_never_loses_a_signed_vote() {
    if let Ok(db) = std::env::var(CHILD_ENV) {
        run_signer(Path::new(&db));
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("protection.redb");
    let exe = std::env::current_exe().unwrap();
    let spawn = || {
        Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut reported = 0;
    for round in 0..6u64 {
        if round % 3 == 2 {
            // a blind kill: during start-up, opening the database, or the first signatures
            let mut child = spawn();
            std::thread::sleep(Duration::from_micros(300 + round * 1_700));
            child.kill().unwrap();
            child.wait().unwrap();
            verify(&db, reported);
        }
        let mut child = spawn();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // wait until this run signs beyond what earlier runs reported
        let target = reported + 3 + round * 5;
        let mut last = 0;
        while last < target {
            let line = lines.next().expect("signer ended early").unwrap();
            if let Some(h) = line.strip_prefix("signed ") {
                last = h.parse().unwrap();
            }
        }
        std::thread::sleep(Duration::from_micros(round * 700));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        for line in lines {
            if let Some(h) = line.unwrap().strip_prefix("signed ") {
                last = h.parse().unwrap();
            }
        }
        reported = last;
        let highest = verify(&db, reported);
        eprintln!("round {round}: reported {reported}, recorded through {highest}");
    }
    eprintln!("total {:?}", started.elapsed());
}
