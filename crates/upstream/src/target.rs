//! The balancer's input ([`Target`]) and the errors raised while building a balancer.

use std::collections::HashSet;

/// Largest sum of target weights `round-robin` (after dividing the weights by
/// their greatest common divisor) and `consistent-hash` accept.
///
/// Bounds the memory of the precomputed round-robin sequence and of the
/// consistent-hash ring; the other algorithms accept any weights.
pub const MAX_TOTAL_WEIGHT: u64 = 1 << 16;

/// One upstream target as the balancer sees it.
///
/// Balancers answer with the *index* of a target in the slice they were built
/// from; `id` is the target's stable identity (for example a hash of
/// `host:port`), used where placement must survive the target set changing
/// (the consistent-hash ring).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// Stable identity of the target; unique within one balancer.
    pub id: usize,
    /// Relative share of traffic. A weight of 0 keeps the target out of rotation.
    pub weight: u32,
}

impl Target {
    /// A target with the given id and weight.
    pub const fn new(id: usize, weight: u32) -> Self {
        Self { id, weight }
    }
}

/// Why a balancer could not be built from a set of targets.
///
/// Always a configuration fault (never upstream or downstream); retrying with
/// the same targets cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Two targets share an id.
    #[error("target id {id} appears more than once")]
    DuplicateId {
        /// The repeated id.
        id: usize,
    },
    /// The weights add up to more than the balancer can represent.
    #[error(
        "target weights add up to {total} (after dividing by their common divisor), more than the maximum of {max}"
    )]
    TotalWeightTooLarge {
        /// The (reduced) sum of weights.
        total: u64,
        /// [`MAX_TOTAL_WEIGHT`].
        max: u64,
    },
}

/// Rejects duplicate ids; returns the sum of weights.
pub(crate) fn validate(targets: &[Target]) -> Result<u64, BuildError> {
    let mut seen = HashSet::with_capacity(targets.len());
    for t in targets {
        if !seen.insert(t.id) {
            return Err(BuildError::DuplicateId { id: t.id });
        }
    }
    Ok(targets.iter().map(|t| u64::from(t.weight)).sum())
}

/// Greatest common divisor of the non-zero weights (1 when there are none).
pub(crate) fn weight_gcd(targets: &[Target]) -> u32 {
    fn gcd(mut a: u32, mut b: u32) -> u32 {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    }
    let g = targets.iter().fold(0, |acc, t| gcd(acc, t.weight));
    g.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_ids_are_rejected() {
        let err = validate(&[Target::new(1, 1), Target::new(1, 2)]).unwrap_err();
        assert_eq!(err, BuildError::DuplicateId { id: 1 });
    }

    #[test]
    fn gcd_ignores_zero_weights() {
        let t = [Target::new(0, 6), Target::new(1, 0), Target::new(2, 4)];
        assert_eq!(weight_gcd(&t), 2);
        assert_eq!(weight_gcd(&[]), 1);
        assert_eq!(weight_gcd(&[Target::new(0, 0)]), 1);
    }
}
