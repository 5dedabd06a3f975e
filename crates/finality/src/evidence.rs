//! Slashing evidence anyone can submit to the settlement layer.

use serde::{Deserialize, Serialize};

use crate::{FinalityError, SignedVote, ValidatorSet};

/// Evidence of misbehaviour that is provable from signatures alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Evidence {
    /// Two validly signed *accepting* votes by one validator for the same (chain, epoch,
    /// height) that differ (block hash, parent or state root). Reject votes never count: an
    /// honest validator rejects an invalid block and then accepts the sequencer's replacement.
    Equivocation {
        /// One vote.
        a: SignedVote,
        /// A different vote at the same (chain, epoch, height) by the same validator.
        b: SignedVote,
    },
}

impl Evidence {
    /// Checks the evidence against the epoch's set and returns the offender's index.
    pub fn verify(&self, set: &ValidatorSet) -> Result<u32, FinalityError> {
        match self {
            Self::Equivocation { a, b } => {
                if a.validator != b.validator {
                    return Err(FinalityError::NotEquivocation(
                        "votes by different validators",
                    ));
                }
                let (va, vb) = (&a.vote, &b.vote);
                if (va.chainId, va.epoch, va.height) != (vb.chainId, vb.epoch, vb.height) {
                    return Err(FinalityError::NotEquivocation(
                        "votes for different (chain, epoch, height)",
                    ));
                }
                if va == vb {
                    return Err(FinalityError::NotEquivocation("identical votes"));
                }
                if !va.accept || !vb.accept {
                    return Err(FinalityError::NotEquivocation(
                        "a reject vote is no equivocation",
                    ));
                }
                a.verify(set)?;
                b.verify(set)?;
                Ok(a.validator)
            }
        }
    }
}
