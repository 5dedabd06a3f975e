//! Recovery by replay: a persistent SL that is dropped and reopened mid-run stays identical —
//! state fingerprint, MessageRoot, and every later event — to an in-memory twin that never
//! stopped and is fed the same inputs.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use braid_settlement::{SettlementLayer, SlEvent, SlInput, SlTx};
use braid_sl_store::{state_fingerprint, PersistentSl};
use common::{fresh_proofs, sl_config, Chains, BLOCK_MS, CHAINS};

/// Submits `tx` to both and checks they answer alike.
fn submit_both(node: &mut PersistentSl, twin: &mut SettlementLayer, tx: SlTx) {
    let twin_events = twin.handle(SlInput::Submit(Box::new(tx.clone())));
    assert_eq!(node.submit(tx), twin_events);
}

fn tick_both(node: &mut PersistentSl, twin: &mut SettlementLayer, now_ms: u64) -> Vec<SlEvent> {
    let twin_events = twin.handle(SlInput::Tick { now_ms });
    let events = node.tick(now_ms).unwrap();
    assert_eq!(events, twin_events, "events at {now_ms} ms");
    assert_eq!(node.state_fingerprint(), state_fingerprint(twin));
    events
}

#[test]
fn reopened_sl_matches_an_uninterrupted_twin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sl.redb");
    let mut chains = Chains::new();
    let mut twin = SettlementLayer::new(sl_config(), fresh_proofs()).unwrap();
    let (mut node, replayed) = PersistentSl::open(&path, sl_config(), fresh_proofs()).unwrap();
    assert_eq!(replayed, 0);

    for tx in chains.registration_txs() {
        submit_both(&mut node, &mut twin, tx);
    }
    let events = tick_both(&mut node, &mut twin, 0);
    let registered = events
        .iter()
        .filter(|e| matches!(e, SlEvent::ChainRegistered { .. }))
        .count();
    assert_eq!(registered, CHAINS.len());

    let mut executed = 0;
    let mut reopened = 0;
    for step in 1..=50u64 {
        if step == 30 {
            // a clean stop between blocks
            let before = node.state_fingerprint();
            let root = node.sl().message_tree().root();
            drop(node);
            let (again, replayed) = PersistentSl::open(&path, sl_config(), fresh_proofs()).unwrap();
            node = again;
            reopened += 1;
            assert_eq!(replayed, 30);
            assert_eq!(node.sl().height(), twin.height());
            assert_eq!(node.state_fingerprint(), before);
            assert_eq!(node.state_fingerprint(), state_fingerprint(&twin));
            assert_eq!(node.sl().message_tree().root(), root);
            assert_eq!(node.sl().message_tree().len(), twin.message_tree().len());
            assert!(!node.sl().message_tree().is_empty(), "nothing executed yet");
        }
        chains.advance();
        let txs = chains.operator_txs(&twin);
        let mut journaled = false;
        if step == 40 && !txs.is_empty() {
            // a stop with accepted transactions not yet in a block: the journal keeps them,
            // so the reopened node holds them again and no one resubmits
            for tx in &txs {
                assert!(node.submit(tx.clone()).is_empty());
                assert!(twin
                    .handle(SlInput::Submit(Box::new(tx.clone())))
                    .is_empty());
            }
            assert_eq!(node.buffered().len(), txs.len());
            drop(node);
            let (again, replayed) = PersistentSl::open(&path, sl_config(), fresh_proofs()).unwrap();
            node = again;
            reopened += 1;
            assert_eq!(replayed, 40);
            assert_eq!(node.buffered(), &txs[..]);
            journaled = true;
        }
        if !journaled {
            for tx in txs {
                submit_both(&mut node, &mut twin, tx);
            }
        }
        let events = tick_both(&mut node, &mut twin, step * BLOCK_MS);
        assert!(matches!(
            events.last(),
            Some(SlEvent::SlBlock { height, .. }) if *height == step + 1
        ));
        assert!(
            !events.iter().any(|e| matches!(
                e,
                SlEvent::TxRejected { .. } | SlEvent::BatchCheckFailed { .. }
            )),
            "{events:?}"
        );
        executed += events
            .iter()
            .filter(|e| matches!(e, SlEvent::BatchExecuted { .. }))
            .count();
    }
    assert_eq!(reopened, 2);
    assert_eq!(node.store().head().unwrap(), 51);
    for id in CHAINS {
        let chain = node.sl().chain(id).unwrap();
        assert!(
            chain.last_executed >= 20,
            "chain {id}: {}",
            chain.last_executed
        );
    }
    assert_eq!(executed as u64, node.sl().message_tree().len());

    // the log alone, replayed once more from scratch, gives the same state
    drop(node);
    let (node, replayed) = PersistentSl::open(&path, sl_config(), fresh_proofs()).unwrap();
    assert_eq!(replayed, 51);
    assert_eq!(node.state_fingerprint(), state_fingerprint(&twin));
}
