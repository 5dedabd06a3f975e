//! The data-availability layer for quorum certificates (sans-IO): DA nodes store certificates
//! and attest that they hold them; attestations from more than two thirds of the committee form
//! an availability certificate.

use std::collections::BTreeMap;

use alloy_primitives::{keccak256, B256};
use blst::min_pk::{PublicKey, Signature};
use serde::{Deserialize, Serialize};

use crate::{
    bitmap, bls, BlsPublicKey, BlsSecretKey, BlsSignature, FinalityError, QuorumCertificate,
    ValidatorSet, DA_DST,
};

/// The message a DA node signs (under [`DA_DST`]) to attest it holds the QC with hash
/// `qc_hash`: `keccak256("braid-da" ‖ qc_hash)`.
pub fn availability_message(qc_hash: &B256) -> B256 {
    let mut bytes = Vec::with_capacity(8 + 32);
    bytes.extend_from_slice(b"braid-da");
    bytes.extend_from_slice(qc_hash.as_slice());
    keccak256(bytes)
}

/// A DA node's statement that it stores the QC with hash `qc_hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaAttestation {
    /// The certificate stored ([`QuorumCertificate::hash`]).
    pub qc_hash: B256,
    /// Index of the node in the [`DaCommittee`].
    pub node: u32,
    /// The node's signature of [`availability_message`] under [`DA_DST`].
    pub signature: BlsSignature,
}

/// Attestations of more than two thirds of the DA committee that they store one QC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityCertificate {
    /// The certificate stored ([`QuorumCertificate::hash`]).
    pub qc_hash: B256,
    /// Bitmap of the attesting nodes (same format as [`QuorumCertificate::signers`]).
    pub signers: Vec<u8>,
    /// Aggregate of their attestation signatures.
    pub signature: BlsSignature,
}

/// A DA node: stores certificates in memory and attests to them with its own key.
#[derive(Debug)]
pub struct DaNode {
    key: BlsSecretKey,
    index: u32,
    stored: BTreeMap<B256, QuorumCertificate>,
}

impl DaNode {
    /// Node number `index` of the committee, signing with `key`.
    pub fn new(key: BlsSecretKey, index: u32) -> Self {
        Self {
            key,
            index,
            stored: BTreeMap::new(),
        }
    }

    /// The node's index in the committee.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The node's public key.
    pub fn public_key(&self) -> BlsPublicKey {
        self.key.public_key()
    }

    /// Stores `qc` and attests to it.
    pub fn store(&mut self, qc: QuorumCertificate) -> DaAttestation {
        let qc_hash = qc.hash();
        self.stored.insert(qc_hash, qc);
        DaAttestation {
            qc_hash,
            node: self.index,
            signature: self
                .key
                .sign(availability_message(&qc_hash).as_slice(), DA_DST),
        }
    }

    /// The stored certificate with this hash.
    pub fn get(&self, qc_hash: &B256) -> Option<&QuorumCertificate> {
        self.stored.get(qc_hash)
    }
}

/// The DA committee: the nodes' public keys, all of equal weight. Each key must have passed
/// [`BlsPublicKey::verify_pop`] before joining. The threshold is more than two thirds of the
/// nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaCommittee {
    /// Public key of node `i` at position `i`.
    pub nodes: Vec<BlsPublicKey>,
}

impl DaCommittee {
    /// Whether `attested` distinct nodes are more than two thirds of the committee.
    pub fn is_quorum(&self, attested: usize) -> bool {
        3 * attested as u128 > 2 * self.nodes.len() as u128
    }

    fn node_key(&self, node: u32) -> Result<PublicKey, FinalityError> {
        self.nodes
            .get(node as usize)
            .ok_or(FinalityError::UnknownDaNode(node))?
            .to_point()
    }

    /// Verifies one attestation; returns its decoded signature.
    fn verified_attestation(
        &self,
        attestation: &DaAttestation,
    ) -> Result<Signature, FinalityError> {
        let pk = self.node_key(attestation.node)?;
        let invalid = |_| FinalityError::InvalidAttestation(attestation.node);
        let signature = attestation.signature.to_point().map_err(invalid)?;
        let message = availability_message(&attestation.qc_hash);
        bls::verify(&signature, &pk, message.as_slice(), DA_DST).map_err(invalid)?;
        Ok(signature)
    }

    /// Checks one attestation: a committee node's valid signature (to filter attestations as
    /// they arrive, before [`DaCommittee::certify`]).
    pub fn verify_attestation(&self, attestation: &DaAttestation) -> Result<(), FinalityError> {
        self.verified_attestation(attestation).map(|_| ())
    }

    /// Combines attestations for one QC into an availability certificate. Every attestation must
    /// be valid and for the same QC (identical repeats count once); more than two thirds of the
    /// nodes must have attested.
    pub fn certify(
        &self,
        attestations: &[DaAttestation],
    ) -> Result<AvailabilityCertificate, FinalityError> {
        let Some(first) = attestations.first() else {
            return Err(FinalityError::NoAvailabilityQuorum {
                attested: 0,
                nodes: self.nodes.len(),
            });
        };
        let mut by_node = BTreeMap::new();
        for attestation in attestations {
            if attestation.qc_hash != first.qc_hash {
                return Err(FinalityError::AvailabilityMismatch {
                    expected: first.qc_hash,
                    got: attestation.qc_hash,
                });
            }
            match by_node.get(&attestation.node) {
                // BLS signatures are unique: a repeat is valid only if it is identical
                Some((counted, _)) if *counted == attestation.signature => {}
                Some(_) => return Err(FinalityError::InvalidAttestation(attestation.node)),
                None => {
                    let signature = self.verified_attestation(attestation)?;
                    by_node.insert(attestation.node, (attestation.signature, signature));
                }
            }
        }
        if !self.is_quorum(by_node.len()) {
            return Err(FinalityError::NoAvailabilityQuorum {
                attested: by_node.len(),
                nodes: self.nodes.len(),
            });
        }
        let signatures: Vec<&Signature> = by_node.values().map(|(_, sig)| sig).collect();
        let aggregate = bls::aggregate_points(&signatures)?;
        Ok(AvailabilityCertificate {
            qc_hash: first.qc_hash,
            signers: bitmap::encode(by_node.keys().copied(), self.nodes.len()),
            signature: BlsSignature::from_point(&aggregate),
        })
    }

    /// Verifies an availability certificate: well-formed bitmap, more than two thirds of the
    /// nodes, and one fast aggregate verification of their signatures.
    pub fn verify(&self, cert: &AvailabilityCertificate) -> Result<(), FinalityError> {
        let signers = bitmap::decode(&cert.signers, self.nodes.len())?;
        if !self.is_quorum(signers.len()) {
            return Err(FinalityError::NoAvailabilityQuorum {
                attested: signers.len(),
                nodes: self.nodes.len(),
            });
        }
        let keys = signers
            .iter()
            .map(|&i| self.node_key(i))
            .collect::<Result<Vec<_>, _>>()?;
        let signature = cert.signature.to_point()?;
        let message = availability_message(&cert.qc_hash);
        bls::fast_aggregate_verify(&signature, &keys, message.as_slice(), DA_DST)
    }
}

/// Whether a block is L2-final: its QC verifies against the epoch's validator set, and the DA
/// committee certified that it stores exactly that QC.
pub fn is_l2_final(
    qc: &QuorumCertificate,
    set: &ValidatorSet,
    avail: &AvailabilityCertificate,
    da: &DaCommittee,
) -> Result<(), FinalityError> {
    let qc_hash = qc.hash();
    if avail.qc_hash != qc_hash {
        return Err(FinalityError::AvailabilityMismatch {
            expected: qc_hash,
            got: avail.qc_hash,
        });
    }
    da.verify(avail)?;
    qc.verify(set).map(|_| ())
}
