//! Accepted transactions survive a crash: a chain node journals every transaction its pool
//! accepted in its store before returning the hash, and a node reopened on the store (after the
//! process was dropped with no shutdown at all, as by SIGKILL) has them back in its pool and
//! mines them; those that became invalid are dropped with their reason.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use braid_execution::TxSigner;
use braid_node::roles::ChainProcess;
use braid_node::rpc::ChainHost;
use braid_node::world::{relayer_signer, ChainNode};
use braid_node::{Devnet, DevnetConfig};
use braid_primitives::ImportKind;

fn config(dir: &Path) -> DevnetConfig {
    let mut c = DevnetConfig::new(dir);
    c.chains = vec![901, 902];
    c.block_time_ms = 200;
    c.sl_block_time_ms = 200;
    c.batch_blocks = 2;
    c
}

fn open(dir: &Path) -> ChainProcess {
    ChainProcess::open(
        &config(dir),
        901,
        "http://127.0.0.1:9".into(),
        BTreeMap::new(),
    )
    .unwrap()
}

fn transfer(from: u32, nonce: u64, to: u8) -> Bytes {
    TxSigner::dev(from)
        .call(
            901,
            nonce,
            Address::repeat_byte(to),
            U256::from(1_000u64),
            Bytes::new(),
            21_000,
        )
        .unwrap()
}

/// Produces the next block (and anything else due at `now_ms`) and persists it.
fn mine(node: &mut ChainNode, now_ms: u64) {
    for effect in node.role.tick(now_ms).unwrap() {
        node.persist(&effect).unwrap();
    }
}

fn journal(node: &ChainNode) -> Vec<B256> {
    node.store
        .journaled_txs()
        .unwrap()
        .into_iter()
        .map(|(h, _)| h)
        .collect()
}

#[test]
fn accepted_transactions_are_back_in_the_pool_after_a_crash_and_get_mined() {
    let dir = tempfile::tempdir().unwrap();
    let mut hashes = Vec::new();
    {
        let mut p = open(dir.path());
        let node = p.node_mut(901).unwrap();
        for (from, nonce) in [(0, 0), (0, 1), (0, 2), (1, 0)] {
            hashes.push(node.submit_tx(transfer(from, nonce, 7)).unwrap());
        }
        // a refused one is not journaled
        assert!(node.submit_tx(transfer(0, 1, 7)).is_err());
        assert_eq!(node.seq().mempool().len(), 4);
        // dropped here without a block, a tick or any shutdown: the pool is gone with it
    }
    let mut p = open(dir.path());
    let node = p.node_mut(901).unwrap();
    let mut restored = node.pool_restore().restored.clone();
    restored.sort();
    let mut want = hashes.clone();
    want.sort();
    assert_eq!(restored, want);
    assert!(node.pool_restore().dropped.is_empty());
    for h in &hashes {
        assert!(node.seq().mempool().contains(h), "{h} not back in the pool");
    }
    assert_eq!(
        node.seq().head().number,
        0,
        "nothing was mined before the crash"
    );

    mine(node, 1_000);
    for h in &hashes {
        let at = node.store.tx_location(h).unwrap();
        assert_eq!(at.map(|l| l.block), Some(1), "{h} not mined");
    }
    assert!(journal(node).is_empty(), "mined txs are still journaled");
    drop(p);
    // and after another restart they are neither pooled again nor lost
    let mut p = open(dir.path());
    let node = p.node_mut(901).unwrap();
    assert!(node.seq().mempool().is_empty());
    assert_eq!(node.seq().head().number, 1);
    assert!(node.pool_restore().restored.is_empty());
}

#[test]
fn a_journaled_transaction_that_became_invalid_is_dropped_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (late, replaced_nonce);
    {
        let mut p = open(dir.path());
        let node = p.node_mut(901).unwrap();
        node.submit_tx(transfer(0, 0, 7)).unwrap();
        mine(node, 1_000);
        assert!(journal(node).is_empty());
        // a transaction whose nonce was used meanwhile, still in the journal (as one the pool
        // pruned without a word would be)
        let stale = transfer(0, 0, 8);
        late = keccak256(&stale);
        node.store.journal_tx(&late, &stale, &[]).unwrap();
        // and a valid one accepted just before the crash
        replaced_nonce = node.submit_tx(transfer(0, 1, 7)).unwrap();
    }
    let mut p = open(dir.path());
    let node = p.node_mut(901).unwrap();
    let dropped = &node.pool_restore().dropped;
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].0, late);
    assert!(dropped[0].1.contains("nonce"), "{dropped:?}");
    assert_eq!(node.pool_restore().restored, vec![replaced_nonce]);
    assert_eq!(journal(node), vec![replaced_nonce]);
}

#[test]
fn a_replaced_transaction_leaves_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let first = transfer(0, 0, 7);
    let signer = TxSigner::dev(0);
    // the same nonce, paying more
    let bump = signer
        .sign_eip1559(alloy_consensus::TxEip1559 {
            chain_id: 901,
            nonce: 0,
            gas_limit: 21_000,
            max_fee_per_gas: 200_000_000_000,
            max_priority_fee_per_gas: 50_000_000_000,
            to: alloy_primitives::TxKind::Call(Address::repeat_byte(9)),
            value: U256::from(1u64),
            access_list: Default::default(),
            input: Bytes::new(),
        })
        .unwrap();
    let replacement;
    {
        let mut p = open(dir.path());
        let node = p.node_mut(901).unwrap();
        node.submit_tx(first).unwrap();
        replacement = node.submit_tx(bump).unwrap();
        assert_eq!(journal(node), vec![replacement]);
    }
    let mut p = open(dir.path());
    let node = p.node_mut(901).unwrap();
    assert_eq!(node.pool_restore().restored, vec![replacement]);
    assert!(node.pool_restore().dropped.is_empty());
}

#[test]
fn a_devnet_keeps_user_and_relayer_transactions_across_a_crash_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let relayer = relayer_signer().address();
    let relayer_pooled = |d: &Devnet| {
        d.chains[&902].seq().mempool().pending_nonce(
            &relayer,
            d.chains[&902].seq().state().account(&relayer).nonce,
        ) - d.chains[&902].seq().state().account(&relayer).nonce
    };
    let user;
    {
        let mut d = Devnet::open(config(dir.path())).unwrap();
        d.demo_message(0, 901, 902, ImportKind::Precommit, U256::from(5u64))
            .unwrap();
        // step until the relayer's execution is pooled on 902, not yet included
        let mut now = 0;
        while relayer_pooled(&d) == 0 {
            now += 200;
            assert!(now < 20_000, "the relayer never sent the execution");
            d.step(now).unwrap();
        }
        user = d
            .submit_tx(901, {
                TxSigner::dev(3)
                    .call(
                        901,
                        0,
                        Address::repeat_byte(3),
                        U256::from(1u64),
                        Bytes::new(),
                        21_000,
                    )
                    .unwrap()
            })
            .unwrap();
        // dropped without any shutdown
    }
    let mut d = Devnet::open(config(dir.path())).unwrap();
    assert!(d.chains[&901].seq().mempool().contains(&user));
    assert_eq!(
        relayer_pooled(&d),
        1,
        "the relayer's execution was pooled twice"
    );
    let mut now = 100_000;
    while !d
        .messages()
        .iter()
        .any(|m| m.id == "901:0" && m.status.starts_with("executed"))
    {
        now += 200;
        assert!(
            now < 130_000,
            "the message was not executed: {:?}",
            d.messages()
        );
        d.step(now).unwrap();
    }
    assert!(d.chains[&901].store.tx_location(&user).unwrap().is_some());
    // one execution transaction in all
    assert_eq!(d.chains[&902].seq().state().account(&relayer).nonce, 1);
    assert_eq!(relayer_pooled(&d), 0);
}
