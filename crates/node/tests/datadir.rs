//! Storage cases of the role processes and the devnet: a datadir records the network, role and
//! chain it holds, and a process refuses one that is not its own or whose data is gone.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use braid_node::datadir::{DatadirError, Identity, InitState, Role, IDENTITY_FILE};
use braid_node::roles::{ChainProcess, SlNode};
use braid_node::{Devnet, DevnetConfig, NodeError};

fn config(dir: &Path) -> DevnetConfig {
    let mut c = DevnetConfig::new(dir);
    c.chains = vec![901, 902];
    c.block_time_ms = 200;
    c.sl_block_time_ms = 200;
    c.batch_blocks = 2;
    c
}

fn open_chain(config: &DevnetConfig, id: u64) -> Result<ChainProcess, NodeError> {
    ChainProcess::open(config, id, "http://127.0.0.1:9".into(), BTreeMap::new())
}

/// The error of an open that must fail.
fn refused<T>(r: Result<T, NodeError>) -> DatadirError {
    match r {
        Ok(_) => panic!("the datadir was accepted"),
        Err(NodeError::Datadir(e)) => *e,
        Err(e) => panic!("refused for another reason: {e}"),
    }
}

fn identity(dir: &Path) -> Identity {
    serde_json::from_str(&std::fs::read_to_string(dir.join(IDENTITY_FILE)).unwrap()).unwrap()
}

fn truncate(file: &Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(0)
        .unwrap();
}

fn names(e: &DatadirError, path: &Path) {
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn a_new_directory_is_initialised_and_restarts_on_its_own_data() {
    let root = tempfile::tempdir().unwrap();
    // a directory that does not exist yet, and an empty one (the operator's mkdir)
    let chain_dir = root.path().join("901");
    let sl_dir = root.path().join("sl");
    std::fs::create_dir(&sl_dir).unwrap();
    let chain = config(&chain_dir);
    drop(open_chain(&chain, 901).unwrap());
    let id = identity(&chain_dir);
    assert_eq!(id.role, Role::Chain { chain: 901 });
    assert_eq!(id.state, InitState::Ready);
    assert_eq!(id.network.chain_ids(), vec![901, 902]);
    assert_eq!(id.network.batch_blocks, 2);
    drop(SlNode::open(&config(&sl_dir)).unwrap());
    assert_eq!(identity(&sl_dir).role, Role::Sl);
    assert_eq!(identity(&sl_dir).network.id, id.network.id, "one network");

    // restarts on their own datadirs
    drop(open_chain(&chain, 901).unwrap());
    drop(SlNode::open(&config(&sl_dir)).unwrap());
    assert_eq!(identity(&chain_dir), id);
}

#[test]
fn an_interrupted_initialisation_is_resumed() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("901");
    let c = config(&dir);
    drop(open_chain(&c, 901).unwrap());
    // as if killed after the identity was written and before the database was created
    let mut id = identity(&dir);
    id.state = InitState::Initialising;
    std::fs::write(dir.join(IDENTITY_FILE), serde_json::to_string(&id).unwrap()).unwrap();
    std::fs::remove_file(dir.join("chain-901.redb")).unwrap();
    drop(open_chain(&c, 901).unwrap());
    assert_eq!(identity(&dir).state, InitState::Ready);
}

#[test]
fn a_database_truncated_to_zero_or_missing_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (chain_dir, sl_dir, devnet_dir) = (
        root.path().join("901"),
        root.path().join("sl"),
        root.path().join("devnet"),
    );
    drop(open_chain(&config(&chain_dir), 901).unwrap());
    drop(SlNode::open(&config(&sl_dir)).unwrap());
    drop(Devnet::open(config(&devnet_dir)).unwrap());

    let cases: Vec<(PathBuf, Box<dyn Fn() -> DatadirError>)> = vec![
        (
            chain_dir.join("chain-901.redb"),
            Box::new(|| refused(open_chain(&config(&chain_dir), 901))),
        ),
        (
            sl_dir.join("sl.redb"),
            Box::new(|| refused(SlNode::open(&config(&sl_dir)))),
        ),
        (
            devnet_dir.join("chain-902.redb"),
            Box::new(|| refused(Devnet::open(config(&devnet_dir)))),
        ),
        (
            devnet_dir.join("sl.redb"),
            Box::new(|| refused(Devnet::open(config(&devnet_dir)))),
        ),
    ];
    for (file, open) in &cases {
        let saved = std::fs::read(file).unwrap();
        truncate(file);
        let e = open();
        assert!(
            matches!(&e, DatadirError::EmptyDatabase { file: f, .. } if f == file),
            "{e:?}"
        );
        names(&e, file);
        assert!(e.to_string().contains("0 bytes"), "{e}");
        assert_eq!(
            std::fs::metadata(file).unwrap().len(),
            0,
            "it was rewritten"
        );

        std::fs::remove_file(file).unwrap();
        let e = open();
        assert!(
            matches!(&e, DatadirError::MissingDatabase { file: f, .. } if f == file),
            "{e:?}"
        );
        names(&e, file);
        assert!(!file.exists(), "it was created again");
        std::fs::write(file, saved).unwrap();
    }
    // with every file back, each starts again
    drop(open_chain(&config(&chain_dir), 901).unwrap());
    drop(SlNode::open(&config(&sl_dir)).unwrap());
    drop(Devnet::open(config(&devnet_dir)).unwrap());
}

#[test]
fn a_datadir_of_another_network_is_refused_with_what_differs() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("901");
    drop(open_chain(&config(&dir), 901).unwrap());

    let mut more_chains = config(&dir);
    more_chains.chains = vec![901, 902, 903];
    let e = refused(open_chain(&more_chains, 901));
    assert!(matches!(e, DatadirError::ForeignNetwork { .. }), "{e:?}");
    names(&e, &dir);
    assert!(
        e.to_string()
            .contains("chains [901, 902] vs [901, 902, 903]"),
        "{e}"
    );

    let mut slower = config(&dir);
    slower.batch_blocks = 5;
    let e = refused(open_chain(&slower, 901));
    assert!(e.to_string().contains("batch_blocks 2 vs 5"), "{e}");

    // a setting with no readable field of its own: the genesis balances
    let mut richer = config(&dir);
    richer.dev_balance += alloy_primitives::U256::from(1u64);
    let e = refused(open_chain(&richer, 901));
    assert!(matches!(e, DatadirError::ForeignNetwork { .. }), "{e:?}");
    assert!(e.to_string().contains("chain 901 genesis"), "{e}");

    // the SL and the devnet check the same
    let sl_dir = root.path().join("sl");
    drop(SlNode::open(&config(&sl_dir)).unwrap());
    let mut other = config(&sl_dir);
    other.sl_block_time_ms = 1_000;
    assert!(matches!(
        refused(SlNode::open(&other)),
        DatadirError::ForeignNetwork { .. }
    ));
    let devnet_dir = root.path().join("devnet");
    drop(Devnet::open(config(&devnet_dir)).unwrap());
    let mut other = config(&devnet_dir);
    other.chains = vec![901];
    assert!(matches!(
        refused(Devnet::open(other)),
        DatadirError::ForeignNetwork { .. }
    ));
    // nothing was changed by the refusals
    drop(open_chain(&config(&dir), 901).unwrap());
    drop(SlNode::open(&config(&sl_dir)).unwrap());
    drop(Devnet::open(config(&devnet_dir)).unwrap());
}

#[test]
fn a_datadir_of_another_role_or_chain_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let chain_dir = root.path().join("901");
    let sl_dir = root.path().join("sl");
    let devnet_dir = root.path().join("devnet");
    drop(open_chain(&config(&chain_dir), 901).unwrap());
    drop(SlNode::open(&config(&sl_dir)).unwrap());
    drop(Devnet::open(config(&devnet_dir)).unwrap());

    let e = refused(open_chain(&config(&chain_dir), 902));
    assert!(
        matches!(
            e,
            DatadirError::WrongRole {
                stored: Role::Chain { chain: 901 },
                requested: Role::Chain { chain: 902 },
                ..
            }
        ),
        "{e:?}"
    );
    names(&e, &chain_dir);
    assert!(
        e.to_string().contains("holds chain 901, not chain 902"),
        "{e}"
    );

    let e = refused(SlNode::open(&config(&chain_dir)));
    assert!(
        e.to_string()
            .contains("holds chain 901, not the settlement layer"),
        "{e}"
    );
    let e = refused(open_chain(&config(&sl_dir), 901));
    assert!(
        e.to_string()
            .contains("holds the settlement layer, not chain 901"),
        "{e}"
    );
    assert!(matches!(
        refused(Devnet::open(config(&sl_dir))),
        DatadirError::WrongRole { .. }
    ));
    assert!(matches!(
        refused(open_chain(&config(&devnet_dir), 901)),
        DatadirError::WrongRole {
            stored: Role::Devnet,
            ..
        }
    ));
    // nothing was written into the refused datadirs
    assert!(!chain_dir.join("chain-902.redb").exists());
    assert!(!chain_dir.join("sl.redb").exists());
    assert!(!sl_dir.join("chain-901.redb").exists());
    assert_eq!(identity(&chain_dir).role, Role::Chain { chain: 901 });
}

#[test]
fn a_chain_database_of_another_genesis_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (mine, theirs) = (root.path().join("mine"), root.path().join("theirs"));
    drop(open_chain(&config(&mine), 901).unwrap());
    let mut other = config(&theirs);
    other.dev_accounts = 3;
    drop(open_chain(&other, 901).unwrap());
    // a database copied over from another network, under this network's identity file
    std::fs::copy(theirs.join("chain-901.redb"), mine.join("chain-901.redb")).unwrap();
    let e = refused(open_chain(&config(&mine), 901));
    assert!(
        matches!(e, DatadirError::GenesisMismatch { chain: 901, .. }),
        "{e:?}"
    );
    names(&e, &mine.join("chain-901.redb"));

    // a database of another chain of the same network: the store's own check names it
    let other_chain = root.path().join("902");
    drop(open_chain(&config(&other_chain), 902).unwrap());
    let file = mine.join("chain-901.redb");
    std::fs::copy(other_chain.join("chain-902.redb"), &file).unwrap();
    match open_chain(&config(&mine), 901) {
        Err(e @ NodeError::Store(braid_store::StoreError::ChainMismatch { .. })) => {
            let msg = e.to_string();
            assert!(msg.contains(&file.display().to_string()), "{msg}");
            assert!(msg.contains("holds chain 902, not chain 901"), "{msg}");
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("another chain's database was accepted"),
    }
}

#[test]
fn files_without_an_identity_are_not_adopted() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("901");
    drop(open_chain(&config(&dir), 901).unwrap());
    // a datadir whose identity file is gone (or one written before identity files existed)
    std::fs::remove_file(dir.join(IDENTITY_FILE)).unwrap();
    let e = refused(open_chain(&config(&dir), 901));
    assert!(matches!(e, DatadirError::NotEmpty { .. }), "{e:?}");
    names(&e, &dir);
    assert!(e.to_string().contains("chain-901.redb"), "{e}");

    // any other file too; `lost+found` (a mount point) is no data
    let other = root.path().join("other");
    std::fs::create_dir_all(other.join("lost+found")).unwrap();
    drop(SlNode::open(&config(&other)).unwrap());
    let stray = root.path().join("stray");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join("notes.txt"), "mine").unwrap();
    assert!(matches!(
        refused(Devnet::open(config(&stray))),
        DatadirError::NotEmpty { .. }
    ));

    // an identity file that does not parse, or of a format this braid does not read
    std::fs::write(dir.join(IDENTITY_FILE), "{ not json").unwrap();
    let e = refused(open_chain(&config(&dir), 901));
    assert!(matches!(e, DatadirError::BadIdentity { .. }), "{e:?}");
    names(&e, &dir.join(IDENTITY_FILE));
    std::fs::write(dir.join(IDENTITY_FILE), r#"{"format": 2, "later": true}"#).unwrap();
    let e = refused(open_chain(&config(&dir), 901));
    assert!(e.to_string().contains("format 2"), "{e}");
}
