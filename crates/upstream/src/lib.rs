//! Gatehouse load balancing: choose one of a service's targets for each
//! request, and the resilience primitives around that choice ([`Breaker`],
//! [`RetryBudget`], [`Backoff`]).
//!
//! Pure logic: no I/O, no async, no locks. A [`Balancer`] is built once per
//! service from its [`Target`]s (stable id + weight) and shared by every
//! request; [`Balancer::pick`] returns the *index* of a target among those a
//! [`HealthSet`] marks healthy, or `None` when none is (the proxy answers
//! 503). The proxy reports each request through [`Balancer::on_start`] and
//! [`Balancer::on_finish`], which the load-aware algorithms need.
//!
//! | Algorithm | Config name | Guarantee | State kept |
//! |---|---|---|---|
//! | [`SmoothWeightedRoundRobin`] | `round-robin` | Over any `sum(weights)` consecutive picks, exactly `weight` each, interleaved (5,1,1 → `a a b a c a a`) | Precomputed cycle + one atomic counter |
//! | [`LeastConnections`] | `least-connections` | Picks the lowest `in_flight / weight`; ties rotate round-robin | One atomic in-flight counter per target + a rotation counter |
//! | [`ConsistentHash`] | `consistent-hash` | Same key → same target while it is healthy; adding a target to N moves ≈ 1/(N+1) of keys, all to it | Immutable ring of 160 points per unit of weight (XXH3) |
//! | [`WeightedRandom`] | `random` | Each pick independent, `P(target) = weight / healthy total` | Prefix sums + an atomic SplitMix64 RNG |
//! | [`P2cEwma`] | `p2c-ewma` | Cheaper of two random targets by `peak_ewma_latency × (in_flight + 1) / weight`; slow targets lose traffic fast | Per target: atomic EWMA, its timestamp, in-flight count; RNG |
//!
//! [`Balancer::pick_where`] narrows a pick further (targets a retry already
//! tried, targets whose circuit [`Breaker`] is open); the algorithms are
//! generic over [`Eligible`], so the plain pick does not pay for the filter.
//!
//! Every algorithm skips unhealthy targets and targets of weight 0. Indices
//! refer to the slice the balancer was built from; a changed target set means
//! building a new balancer (in-flight and latency state start afresh).

mod balancer;
mod breaker;
mod consistent_hash;
mod health;
mod least_conn;
mod p2c_ewma;
mod random;
mod retry;
mod rng;
mod round_robin;
mod target;

pub use balancer::{Algorithm, Balancer, UnknownAlgorithm};
pub use breaker::{BUCKETS, Breaker, BreakerConfig, Rejected, State as BreakerState, Ticket};
pub use consistent_hash::{ConsistentHash, VNODES_PER_WEIGHT};
pub use health::{Eligible, HealthSet};
pub use least_conn::LeastConnections;
pub use p2c_ewma::{P2cEwma, PeakEwmaConfig};
pub use random::WeightedRandom;
pub use retry::{Backoff, RetryBudget};
pub use rng::AtomicRng;
pub use round_robin::SmoothWeightedRoundRobin;
pub use target::{BuildError, MAX_TOTAL_WEIGHT, Target};
