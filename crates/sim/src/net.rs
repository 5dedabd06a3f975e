//! The network between roles: latency, jitter, loss, partitions and drop windows, decided with
//! the run's single RNG.

use std::collections::BTreeMap;

use braid_primitives::ChainId;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::scenario::{FeedDelivery, LinkSpec};

/// A role at one end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    /// The settlement layer.
    Sl,
    /// A chain's sequencer.
    Sequencer(ChainId),
    /// A chain's operator.
    Operator(ChainId),
    /// The relayer.
    Relayer,
    /// Users sending traffic.
    Users,
    /// A validator (index in scenario order).
    Validator(u32),
    /// A DA node.
    Da(u32),
    /// The shared proof aggregator (seed 001).
    Aggregator,
}

impl Role {
    /// The chain whose nodes this role belongs to (partitions cut these off).
    fn chain(self) -> Option<ChainId> {
        match self {
            Role::Sequencer(c) | Role::Operator(c) => Some(c),
            _ => None,
        }
    }
}

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// A single request (transaction, import request, error report): lost means gone.
    Datagram,
    /// Part of an ordered feed (see [`FeedDelivery`]).
    Feed,
}

/// Network counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NetCounters {
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub retransmitted: u64,
    pub held_by_partition: u64,
}

/// The network model.
#[derive(Debug)]
pub(crate) struct Network {
    spec: LinkSpec,
    /// Partitioned chains and when each partition heals.
    partitions: BTreeMap<ChainId, u64>,
    /// Active drop windows: (end, fraction), by fault index.
    drops: BTreeMap<usize, (u64, f64)>,
    /// Last delivery time per feed link, to keep feeds in order.
    feed_tail: BTreeMap<(Role, Role), u64>,
    pub counters: NetCounters,
}

impl Network {
    pub fn new(spec: LinkSpec) -> Self {
        Self {
            spec,
            partitions: BTreeMap::new(),
            drops: BTreeMap::new(),
            feed_tail: BTreeMap::new(),
            counters: NetCounters::default(),
        }
    }

    pub fn partition(&mut self, chain: ChainId, until_ms: u64) {
        let end = self.partitions.entry(chain).or_insert(until_ms);
        *end = (*end).max(until_ms);
    }

    pub fn heal(&mut self, chain: ChainId, now_ms: u64) {
        if self
            .partitions
            .get(&chain)
            .is_some_and(|end| *end <= now_ms)
        {
            self.partitions.remove(&chain);
        }
    }

    pub fn start_drops(&mut self, fault: usize, until_ms: u64, fraction: f64) {
        self.drops.insert(fault, (until_ms, fraction));
    }

    pub fn stop_drops(&mut self, fault: usize) {
        self.drops.remove(&fault);
    }

    /// When the link between `from` and `to` is cut, until when.
    fn cut_until(&self, from: Role, to: Role) -> Option<u64> {
        [from.chain(), to.chain()]
            .into_iter()
            .flatten()
            .filter_map(|c| self.partitions.get(&c).copied())
            .max()
    }

    /// Whether one transmission is lost (link loss, then every active drop window).
    fn lost(&self, rng: &mut ChaCha8Rng) -> bool {
        if self.spec.loss > 0.0 && rng.gen::<f64>() < self.spec.loss {
            return true;
        }
        self.drops
            .values()
            .any(|(_, fraction)| *fraction > 0.0 && rng.gen::<f64>() < *fraction)
    }

    fn latency(&self, rng: &mut ChaCha8Rng) -> u64 {
        let jitter = if self.spec.jitter_ms > 0 {
            rng.gen_range(0..=self.spec.jitter_ms)
        } else {
            0
        };
        self.spec.latency_ms + jitter
    }

    /// When a message sent now from `from` to `to` arrives; `None` if it is lost.
    pub fn send(
        &mut self,
        now_ms: u64,
        from: Role,
        to: Role,
        class: Class,
        rng: &mut ChaCha8Rng,
    ) -> Option<u64> {
        self.counters.sent += 1;
        let reliable = class == Class::Feed && self.spec.feeds == FeedDelivery::Reliable;
        let mut start = now_ms;
        if let Some(until) = self.cut_until(from, to) {
            if !reliable {
                self.counters.dropped += 1;
                return None;
            }
            // the stream reconnects when the partition heals and resumes where it stopped
            self.counters.held_by_partition += 1;
            start = until;
        }
        let mut at = start;
        let mut attempts = 0u32;
        loop {
            if !self.lost(rng) {
                break;
            }
            if !reliable {
                self.counters.dropped += 1;
                return None;
            }
            attempts += 1;
            self.counters.retransmitted += 1;
            at += self.spec.retransmit_ms;
            if attempts >= 64 {
                break; // loss < 1, so this is astronomically rare; deliver anyway
            }
        }
        at += self.latency(rng);
        if class == Class::Feed {
            let tail = self.feed_tail.entry((from, to)).or_insert(0);
            at = at.max(*tail);
            *tail = at;
        }
        self.counters.delivered += 1;
        Some(at)
    }
}
