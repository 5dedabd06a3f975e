//! The validator role: slashing protection and the vote signer.

use std::collections::BTreeMap;
use std::path::Path;

use alloy_primitives::B256;
use braid_primitives::{BlockNumber, ChainId};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::{BlsPublicKey, BlsSecretKey, FinalityError, SignedVote, Vote};

/// What a validator persists so that it never signs two different votes at one (chain, height),
/// even across crashes and restarts.
pub trait SlashingProtection {
    /// Records that `vote` is about to be signed. `Ok` if nothing was signed at
    /// `(vote.chainId, vote.height)` or the identical vote was (re-signing it is harmless);
    /// [`FinalityError::WouldEquivocate`] if a different vote was. The record must be durable
    /// before `Ok` is returned: the signature is only produced afterwards.
    fn check_and_record(&mut self, vote: &Vote) -> Result<(), FinalityError>;
}

/// Compares the signing root already recorded at the vote's height (if any) with the vote's.
fn check_recorded(recorded: Option<B256>, vote: &Vote) -> Result<bool, FinalityError> {
    match recorded {
        None => Ok(false),
        Some(root) if root == vote.signing_root() => Ok(true),
        Some(_) => Err(FinalityError::WouldEquivocate {
            chain: vote.chainId,
            height: vote.height,
        }),
    }
}

/// Slashing protection in memory (simulations and tests): not durable across restarts.
#[derive(Debug, Default, Clone)]
pub struct MemorySlashingProtection {
    signed: BTreeMap<(ChainId, BlockNumber), B256>,
}

impl MemorySlashingProtection {
    /// Nothing signed yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl SlashingProtection for MemorySlashingProtection {
    fn check_and_record(&mut self, vote: &Vote) -> Result<(), FinalityError> {
        let key = (vote.chainId, vote.height);
        if !check_recorded(self.signed.get(&key).copied(), vote)? {
            self.signed.insert(key, vote.signing_root());
        }
        Ok(())
    }
}

/// (chain, height) → signing root (32 bytes) of the vote signed there.
const SIGNED_VOTES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("signed_votes");

fn store_err(e: impl Into<redb::Error>) -> FinalityError {
    FinalityError::Store(e.into().to_string())
}

/// Slashing protection in a redb file. Each new record is committed with immediate durability
/// (fsync) in its own transaction before [`SlashingProtection::check_and_record`] returns, so
/// a crash at any instant either lost a vote that was never signed or kept it.
#[derive(Debug)]
pub struct RedbSlashingProtection {
    db: Database,
}

impl RedbSlashingProtection {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FinalityError> {
        let db = Database::create(path).map_err(store_err)?;
        let tx = db.begin_write().map_err(store_err)?;
        tx.open_table(SIGNED_VOTES).map_err(store_err)?;
        tx.commit().map_err(store_err)?;
        Ok(Self { db })
    }

    /// The signing root recorded at (chain, height), if any.
    pub fn recorded(
        &self,
        chain: ChainId,
        height: BlockNumber,
    ) -> Result<Option<B256>, FinalityError> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let table = tx.open_table(SIGNED_VOTES).map_err(store_err)?;
        let value = table.get((chain, height)).map_err(store_err)?;
        value.map(|v| decode_root(v.value())).transpose()
    }
}

fn decode_root(bytes: &[u8]) -> Result<B256, FinalityError> {
    B256::try_from(bytes)
        .map_err(|_| FinalityError::Store(format!("corrupt record: {} bytes, not 32", bytes.len())))
}

impl SlashingProtection for RedbSlashingProtection {
    fn check_and_record(&mut self, vote: &Vote) -> Result<(), FinalityError> {
        let key = (vote.chainId, vote.height);
        // Read and write in one write transaction: no other writer can slip in between.
        let tx = self.db.begin_write().map_err(store_err)?;
        {
            let mut table = tx.open_table(SIGNED_VOTES).map_err(store_err)?;
            let recorded = table
                .get(key)
                .map_err(store_err)?
                .map(|v| decode_root(v.value()))
                .transpose()?;
            if check_recorded(recorded, vote)? {
                // Already recorded: dropping `tx` aborts it.
                return Ok(());
            }
            table
                .insert(key, vote.signing_root().as_slice())
                .map_err(store_err)?;
        }
        tx.commit().map_err(store_err)
    }
}

/// The validator role (sans-IO): given a block it re-executed, it signs a vote, after
/// recording it in its slashing protection.
#[derive(Debug)]
pub struct ValidatorSigner<P: SlashingProtection> {
    key: BlsSecretKey,
    index: u32,
    protection: P,
}

impl<P: SlashingProtection> ValidatorSigner<P> {
    /// A signer for validator number `index` of the current set.
    pub fn new(key: BlsSecretKey, index: u32, protection: P) -> Self {
        Self {
            key,
            index,
            protection,
        }
    }

    /// The validator index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The validator's index in a new epoch's set (sets are re-ordered as validators come and go).
    pub fn set_index(&mut self, index: u32) {
        self.index = index;
    }

    /// The validator's public key.
    pub fn public_key(&self) -> BlsPublicKey {
        self.key.public_key()
    }

    /// The slashing protection.
    pub fn protection(&self) -> &P {
        &self.protection
    }

    /// Signs `vote`. An accepting vote is signed only once
    /// [`SlashingProtection::check_and_record`] accepted it: a different accepting vote at a
    /// (chain, height) where one was signed is refused with [`FinalityError::WouldEquivocate`].
    /// Reject votes are always signed (they certify nothing and are not equivocation).
    pub fn vote(&mut self, vote: Vote) -> Result<SignedVote, FinalityError> {
        if vote.accept {
            self.protection.check_and_record(&vote)?;
        }
        let signature = self.key.sign_vote(&vote);
        Ok(SignedVote {
            vote,
            validator: self.index,
            signature,
        })
    }
}
