//! `braid_messageStatus` / `braid_messages` (the devnet's `MessageView`): what a message waits
//! for, and why one can never be delivered.
#![allow(clippy::unwrap_used, clippy::panic)]

use alloy_primitives::U256;
use braid_node::{Devnet, DevnetConfig};
use braid_primitives::ImportKind;

#[test]
fn message_status_tells_what_a_message_waits_for_and_why_one_is_undeliverable() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = DevnetConfig::new(dir.path());
    config.chains = vec![901, 902];
    let mut d = Devnet::open(config).unwrap();
    d.demo_message(0, 901, 902, ImportKind::Commit, U256::from(5u64))
        .unwrap();
    // 777 is no chain of this devnet: the sender's mistake
    d.demo_message(0, 901, 777, ImportKind::Precommit, U256::from(7u64))
        .unwrap();
    // one block of 901 carries both; its batch is not sealed yet
    d.step(1_000).unwrap();
    let view = |d: &Devnet, id: &str| {
        d.messages()
            .into_iter()
            .find(|m| m.id == id)
            .unwrap_or_else(|| panic!("no message {id}: {:?}", d.messages()))
    };
    let commit = view(&d, "901:0");
    assert_eq!(commit.status, "sent");
    assert!(
        commit.waiting.as_deref().unwrap().contains("batch"),
        "{commit:?}"
    );
    assert_eq!((commit.undeliverable, commit.fault), (None, None));
    let bad = view(&d, "901:1");
    assert_eq!(bad.waiting, None);
    assert!(
        bad.undeliverable.as_deref().unwrap().contains("777"),
        "{bad:?}"
    );
    assert_eq!(bad.fault, Some("sender"));
    // the JSON the RPC returns carries the reason
    let json = serde_json::to_value(&bad).unwrap();
    assert_eq!(json["fault"], "sender");
    // the commit message is delivered in time; the bad one stays undeliverable
    let mut now = 1_000;
    while !view(&d, "901:0").status.starts_with("executed") {
        now += 1_000;
        assert!(now < 60_000, "{:?}", view(&d, "901:0"));
        d.step(now).unwrap();
    }
    assert_eq!(view(&d, "901:0").waiting, None);
    assert_eq!(view(&d, "901:1").fault, Some("sender"));
}
