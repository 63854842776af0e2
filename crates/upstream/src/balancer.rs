//! [`Balancer`]: one enum over every algorithm, chosen by its config name ([`Algorithm`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::consistent_hash::ConsistentHash;
use crate::health::{HealthSet, Where};
use crate::least_conn::LeastConnections;
use crate::p2c_ewma::{P2cEwma, PeakEwmaConfig};
use crate::random::WeightedRandom;
use crate::round_robin::SmoothWeightedRoundRobin;
use crate::target::{BuildError, Target};

/// A load-balancing algorithm, named as in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// `round-robin`: [`SmoothWeightedRoundRobin`].
    #[default]
    RoundRobin,
    /// `least-connections`: [`LeastConnections`].
    LeastConnections,
    /// `consistent-hash`: [`ConsistentHash`].
    ConsistentHash,
    /// `random`: [`WeightedRandom`].
    Random,
    /// `p2c-ewma`: [`P2cEwma`].
    P2cEwma,
}

impl Algorithm {
    /// Every algorithm, in documentation order.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::RoundRobin,
        Algorithm::LeastConnections,
        Algorithm::ConsistentHash,
        Algorithm::Random,
        Algorithm::P2cEwma,
    ];

    /// The configuration name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round-robin",
            Algorithm::LeastConnections => "least-connections",
            Algorithm::ConsistentHash => "consistent-hash",
            Algorithm::Random => "random",
            Algorithm::P2cEwma => "p2c-ewma",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configuration name that is not one of [`Algorithm::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown load-balancing algorithm {0:?} (expected round-robin, least-connections, consistent-hash, random or p2c-ewma)"
)]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

/// A built balancer for one service's targets.
///
/// `Send + Sync`; every method takes `&self` and touches only atomics, so one
/// instance is shared by all requests of the service. The proxy calls
/// [`Balancer::pick`], then [`Balancer::on_start`] when it sends to the chosen
/// target and [`Balancer::on_finish`] when the response ends (or fails);
/// algorithms that keep no per-request state ignore the hooks.
#[derive(Debug)]
pub enum Balancer {
    /// `round-robin`.
    RoundRobin(SmoothWeightedRoundRobin),
    /// `least-connections`.
    LeastConnections(LeastConnections),
    /// `consistent-hash`.
    ConsistentHash(ConsistentHash),
    /// `random`.
    Random(WeightedRandom),
    /// `p2c-ewma`.
    P2cEwma(P2cEwma),
}

impl Balancer {
    /// Builds `algorithm` over `targets` (P2C with [`PeakEwmaConfig::default`]).
    pub fn new(algorithm: Algorithm, targets: &[Target]) -> Result<Self, BuildError> {
        Ok(match algorithm {
            Algorithm::RoundRobin => Self::RoundRobin(SmoothWeightedRoundRobin::new(targets)?),
            Algorithm::LeastConnections => Self::LeastConnections(LeastConnections::new(targets)?),
            Algorithm::ConsistentHash => Self::ConsistentHash(ConsistentHash::new(targets)?),
            Algorithm::Random => Self::Random(WeightedRandom::new(targets)?),
            Algorithm::P2cEwma => Self::P2cEwma(P2cEwma::new(targets, PeakEwmaConfig::default())?),
        })
    }

    /// Which algorithm this is.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::RoundRobin(_) => Algorithm::RoundRobin,
            Self::LeastConnections(_) => Algorithm::LeastConnections,
            Self::ConsistentHash(_) => Algorithm::ConsistentHash,
            Self::Random(_) => Algorithm::Random,
            Self::P2cEwma(_) => Algorithm::P2cEwma,
        }
    }

    /// Number of targets it was built from.
    pub fn len(&self) -> usize {
        match self {
            Self::RoundRobin(b) => b.len(),
            Self::LeastConnections(b) => b.len(),
            Self::ConsistentHash(b) => b.len(),
            Self::Random(b) => b.len(),
            Self::P2cEwma(b) => b.len(),
        }
    }

    /// Whether it was built from no targets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index (into the build-time targets) of the target for this
    /// request, among those `health` marks healthy and with a non-zero
    /// weight; `None` when there is none.
    ///
    /// `key` is the hash key (header, cookie, client IP, ...) and only
    /// matters to `consistent-hash`.
    pub fn pick(&self, key: Option<&[u8]>, health: &HealthSet) -> Option<usize> {
        match self {
            Self::RoundRobin(b) => b.pick(health),
            Self::LeastConnections(b) => b.pick(health),
            Self::ConsistentHash(b) => b.pick(key, health),
            Self::Random(b) => b.pick(health),
            Self::P2cEwma(b) => b.pick(health),
        }
    }

    /// Like [`Balancer::pick`], among the healthy targets that `allow` also
    /// accepts: a retry excludes the targets it already tried, circuit
    /// breakers exclude open targets. The filter is only evaluated for
    /// targets the algorithm considers, so the common pick stays as cheap.
    pub fn pick_where(
        &self,
        key: Option<&[u8]>,
        health: &HealthSet,
        allow: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let e = Where { health, allow };
        match self {
            Self::RoundRobin(b) => b.pick(&e),
            Self::LeastConnections(b) => b.pick(&e),
            Self::ConsistentHash(b) => b.pick(key, &e),
            Self::Random(b) => b.pick(&e),
            Self::P2cEwma(b) => b.pick(&e),
        }
    }

    /// The proxy started a request to target `idx`.
    pub fn on_start(&self, idx: usize) {
        match self {
            Self::LeastConnections(b) => b.on_start(idx),
            Self::P2cEwma(b) => b.on_start(idx),
            Self::RoundRobin(_) | Self::ConsistentHash(_) | Self::Random(_) => {}
        }
    }

    /// A request to target `idx` ended after `latency`; `ok` is false for
    /// connect failures, resets and 5xx.
    pub fn on_finish(&self, idx: usize, latency: Duration, ok: bool) {
        match self {
            Self::LeastConnections(b) => b.on_finish(idx),
            Self::P2cEwma(b) => b.on_finish(idx, latency, ok),
            Self::RoundRobin(_) | Self::ConsistentHash(_) | Self::Random(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(a.as_str().parse::<Algorithm>(), Ok(a));
            assert_eq!(a.to_string(), a.as_str());
        }
        assert!("weighted".parse::<Algorithm>().is_err());
    }

    #[test]
    fn balancer_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Balancer>();
        assert_send_sync::<HealthSet>();
    }

    #[test]
    fn every_algorithm_skips_unhealthy_and_handles_all_down() {
        let targets: Vec<_> = (0..4).map(|i| Target::new(i, 1)).collect();
        let health = HealthSet::from_bools(&[true, false, true, false]);
        let down = HealthSet::all_unhealthy(4);
        for a in Algorithm::ALL {
            let b = Balancer::new(a, &targets).unwrap();
            assert_eq!(b.algorithm(), a);
            assert_eq!(b.len(), 4);
            for i in 0..2000u32 {
                let key = i.to_le_bytes();
                let idx = b.pick(Some(&key), &health).unwrap();
                assert!(idx == 0 || idx == 2, "{a} picked {idx}");
                b.on_start(idx);
                b.on_finish(idx, Duration::from_millis(5), true);
            }
            assert_eq!(b.pick(Some(b"k"), &down), None, "{a}");
            let empty = Balancer::new(a, &[]).unwrap();
            assert!(empty.is_empty());
            assert_eq!(empty.pick(None, &HealthSet::all_healthy(0)), None, "{a}");
        }
    }

    #[test]
    fn pick_where_skips_excluded_targets_and_falls_to_none() {
        let targets: Vec<_> = (0..4).map(|i| Target::new(i, 1)).collect();
        let health = HealthSet::from_bools(&[true, true, false, true]);
        for a in Algorithm::ALL {
            let b = Balancer::new(a, &targets).unwrap();
            for i in 0..500u32 {
                let key = i.to_le_bytes();
                let idx = b.pick_where(Some(&key), &health, |t| t != 0).unwrap();
                assert!(idx == 1 || idx == 3, "{a} picked {idx}");
                let only = b.pick_where(Some(&key), &health, |t| t == 3);
                assert_eq!(only, Some(3), "{a}");
            }
            // The filter cannot bring back an unhealthy target.
            assert_eq!(b.pick_where(None, &health, |t| t == 2), None, "{a}");
            assert_eq!(b.pick_where(None, &health, |_| false), None, "{a}");
        }
    }

    #[test]
    fn duplicate_ids_are_rejected_by_every_algorithm() {
        let targets = [Target::new(3, 1), Target::new(3, 1)];
        for a in Algorithm::ALL {
            assert_eq!(
                Balancer::new(a, &targets).unwrap_err(),
                BuildError::DuplicateId { id: 3 }
            );
        }
    }
}
