//! A service's targets: the immutable [`TargetSet`] requests pick from
//! (addresses, balancer, health bits, outlier counters), held in
//! [`Targets`] behind an `ArcSwap` so DNS discovery can replace it while
//! requests run.
//!
//! A request loads the current set once (`svc.targets.load()`) and keeps
//! its `Arc` until the response ends, so a request that started on a set
//! reports to that set's balancer and health bits even after a swap. A new
//! set is built by [`Targets::replace`]: addresses that stay keep their
//! health bit (carried over by address), new ones start healthy, removed
//! ones leave. Connections are pooled by `ip:port` in the shared client,
//! so addresses that stay keep their warm connections.
//!
//! Static services (IP targets only) build one set at compile time and
//! never replace it.

use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use gatehouse_config::PassiveHealthCheck;
use std::time::{Duration, Instant};

use gatehouse_upstream::{
    Algorithm, Balancer, Breaker, BreakerConfig, BuildError, HealthSet, Target,
};
use http::uri::Authority;
use tokio::sync::watch;

use crate::sources::Spec;

/// One immutable target set of a service.
pub struct TargetSet {
    /// Where connections go, by balancer index.
    pub targets: Vec<Authority>,
    /// Weight of each target, by index.
    pub weights: Vec<u32>,
    /// Chooses a target per request.
    pub balancer: Arc<Balancer>,
    /// Which targets may be picked.
    pub health: Arc<HealthSet>,
    /// Passive health check (outlier ejection), if configured.
    pub passive: Option<Arc<Passive>>,
    /// One circuit breaker per target (by index), with a service's
    /// `circuit_breaker.per_target`. An address that stays in a replaced
    /// set keeps its breaker.
    pub breakers: Option<Box<[Arc<Breaker>]>>,
    /// For a set without targets: why (DNS has not answered yet, or only
    /// with errors). Shown in the 503 detail.
    pub unresolved: Option<Arc<str>>,
}

impl TargetSet {
    /// The 503 detail when no target of this set can take a request.
    pub fn no_target_detail(&self, service: &str) -> String {
        match (&self.unresolved, self.targets.is_empty()) {
            (Some(why), true) => format!("`{service}` has no resolved targets yet ({why})"),
            (None, true) => format!("`{service}` has no targets"),
            _ => format!("no target of `{service}` can take requests (all weights 0 or unhealthy)"),
        }
    }

    /// Whether `entries` are exactly this set's targets and weights.
    fn same_entries(&self, entries: &[(Authority, u32)]) -> bool {
        self.targets.len() == entries.len()
            && self
                .targets
                .iter()
                .zip(&self.weights)
                .zip(entries)
                .all(|((a, w), (b, v))| a == b && w == v)
    }
}

/// What every set of one service is built with.
#[derive(Clone)]
pub struct Recipe {
    /// Service name, for logs.
    pub service: Arc<str>,
    /// Load-balancing algorithm.
    pub algorithm: Algorithm,
    /// Passive health check settings, if configured.
    pub passive: Option<PassiveHealthCheck>,
    /// Per-target circuit breaker settings and the clock epoch they share
    /// with the service's breaker, with `circuit_breaker.per_target`.
    pub breaker: Option<(BreakerConfig, Instant)>,
}

/// The current target set of a service, swapped atomically by discovery.
pub struct Targets {
    current: ArcSwap<TargetSet>,
    recipe: Recipe,
    discovery: Option<Spec>,
    resolved: watch::Sender<bool>,
}

impl Targets {
    /// Targets that never change: `entries` as listed (balancer ids are
    /// the indices, as before discovery existed).
    pub fn fixed(recipe: Recipe, entries: Vec<(Authority, u32)>) -> Result<Arc<Self>, BuildError> {
        let lb: Vec<Target> = entries
            .iter()
            .enumerate()
            .map(|(j, (_, w))| Target::new(j, *w))
            .collect();
        let balancer = Balancer::new(recipe.algorithm, &lb)?;
        Ok(Self::with_first(recipe, None, entries, balancer, None))
    }

    /// Targets found by DNS: starts with the `spec`'s static entries (none
    /// when every entry is a DNS name) until discovery resolves the names.
    pub fn discovered(recipe: Recipe, spec: Spec) -> Result<Arc<Self>, BuildError> {
        let entries = spec.static_entries();
        let balancer = dynamic_balancer(recipe.algorithm, &entries)?;
        let why = Some(Arc::from("DNS: not resolved yet"));
        Ok(Self::with_first(recipe, Some(spec), entries, balancer, why))
    }

    fn with_first(
        recipe: Recipe,
        discovery: Option<Spec>,
        entries: Vec<(Authority, u32)>,
        balancer: Balancer,
        unresolved: Option<Arc<str>>,
    ) -> Arc<Self> {
        let health = Arc::new(HealthSet::all_healthy(entries.len()));
        Arc::new_cyclic(|home| {
            let first = assemble(&recipe, home, None, entries, balancer, health, unresolved);
            Self {
                current: ArcSwap::from_pointee(first),
                recipe,
                resolved: watch::Sender::new(discovery.is_none()),
                discovery,
            }
        })
    }

    /// The current set. Requests call this once and keep the `Arc` until
    /// they end.
    #[inline]
    pub fn load(&self) -> Arc<TargetSet> {
        self.current.load_full()
    }

    /// The DNS names behind these targets, if any.
    pub fn discovery(&self) -> Option<&Spec> {
        self.discovery.as_ref()
    }

    /// The service name.
    pub fn service(&self) -> &Arc<str> {
        &self.recipe.service
    }

    /// Builds a set from `entries` and swaps it in, unless the current set
    /// already has exactly these entries (and, when empty, this `unresolved`
    /// reason). Health bits carry over by address; new addresses start
    /// healthy. Returns whether the set changed.
    ///
    /// One writer per service (its discovery task): the load-compare-store
    /// here is not atomic against a second writer.
    pub fn replace(
        self: &Arc<Self>,
        entries: Vec<(Authority, u32)>,
        unresolved: Option<Arc<str>>,
    ) -> Result<bool, BuildError> {
        let old = self.load();
        let unresolved = if entries.is_empty() { unresolved } else { None };
        if old.same_entries(&entries) && old.unresolved == unresolved {
            return Ok(false);
        }
        let balancer = dynamic_balancer(self.recipe.algorithm, &entries)?;
        let health = Arc::new(carry_health(&old, &entries));
        let home = Arc::downgrade(self);
        let next = assemble(
            &self.recipe,
            &home,
            Some(&old),
            entries,
            balancer,
            health,
            unresolved,
        );
        self.current.store(Arc::new(next));
        Ok(true)
    }

    /// Marks the first discovery round as done (answered or failed).
    pub(crate) fn mark_resolved(&self) {
        self.resolved.send_replace(true);
    }

    /// Waits until the first discovery round is done; at once for static
    /// targets.
    pub async fn first_round(&self) {
        let mut rx = self.resolved.subscribe();
        // Err only if the sender is gone, and it lives in `self`.
        let _ = rx.wait_for(|done| *done).await;
    }
}

fn assemble(
    recipe: &Recipe,
    home: &Weak<Targets>,
    old: Option<&TargetSet>,
    entries: Vec<(Authority, u32)>,
    balancer: Balancer,
    health: Arc<HealthSet>,
    unresolved: Option<Arc<str>>,
) -> TargetSet {
    let (targets, weights): (Vec<Authority>, Vec<u32>) = entries.into_iter().unzip();
    let passive = recipe.passive.as_ref().map(|p| {
        Arc::new(Passive::new(
            p,
            recipe.service.clone(),
            targets.clone(),
            health.clone(),
            home.clone(),
        ))
    });
    let breakers = recipe.breaker.map(|(config, epoch)| {
        targets
            .iter()
            .map(|a| {
                old.and_then(|o| {
                    let i = o.targets.iter().position(|t| t == a)?;
                    o.breakers.as_deref()?.get(i).cloned()
                })
                .unwrap_or_else(|| Arc::new(Breaker::with_epoch(config, epoch)))
            })
            .collect()
    });
    TargetSet {
        targets,
        weights,
        balancer: Arc::new(balancer),
        health,
        passive,
        breakers,
        unresolved,
    }
}

/// The health bits of a new set: an address already in `old` keeps its
/// bit, a new one starts healthy.
fn carry_health(old: &TargetSet, entries: &[(Authority, u32)]) -> HealthSet {
    let bits: Vec<bool> = entries
        .iter()
        .map(|(a, _)| match old.targets.iter().position(|o| o == a) {
            Some(i) => old.health.is_healthy(i),
            None => true,
        })
        .collect();
    HealthSet::from_bools(&bits)
}

/// A balancer for a discovered set: ids derive from the address (so
/// `consistent-hash` keeps placing a key on the same address when others
/// come and go) and weights are divided by their common divisor (so many
/// equal DNS answers stay within the balancers' weight limits).
fn dynamic_balancer(
    algorithm: Algorithm,
    entries: &[(Authority, u32)],
) -> Result<Balancer, BuildError> {
    let gcd = entries.iter().fold(0, |g, (_, w)| gcd(g, *w)).max(1);
    let lb: Vec<Target> = entries
        .iter()
        .map(|(a, w)| Target::new(address_id(a), w / gcd))
        .collect();
    Balancer::new(algorithm, &lb)
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// FNV-1a of the `host:port` text: stable across runs and sets.
fn address_id(a: &Authority) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in a.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Truncation on 32-bit targets is fine: ids only need to differ.
    h as usize
}

/// Passive health (outlier ejection) of one target set: counts consecutive
/// failures of live requests per target and ejects a target for
/// `cool_down` when they reach the threshold. Lock-free on the request path.
pub struct Passive {
    service: Arc<str>,
    targets: Vec<Authority>,
    health: Arc<HealthSet>,
    /// The service's targets, to bring an ejected address back in the set
    /// that is current when the cool-down ends (DNS may have replaced it).
    home: Weak<Targets>,
    failures: Vec<std::sync::atomic::AtomicU32>,
    threshold: u32,
    unhealthy_statuses: Vec<u16>,
    cool_down: Duration,
}

impl Passive {
    /// From validated config, for one set (`targets` and `health`) of the
    /// service whose targets are `home`.
    pub fn new(
        c: &gatehouse_config::PassiveHealthCheck,
        service: Arc<str>,
        targets: Vec<Authority>,
        health: Arc<HealthSet>,
        home: Weak<Targets>,
    ) -> Self {
        Self {
            service,
            failures: targets
                .iter()
                .map(|_| std::sync::atomic::AtomicU32::new(0))
                .collect(),
            targets,
            health,
            home,
            threshold: c.consecutive_failures,
            unhealthy_statuses: c.unhealthy_statuses.clone(),
            cool_down: c.cool_down,
        }
    }

    /// Whether a response with `status` counts as a failure.
    pub fn is_failure(&self, status: u16) -> bool {
        self.unhealthy_statuses.contains(&status)
    }

    /// Records the outcome of one request to target `idx`.
    pub fn report(self: &Arc<Self>, idx: usize, ok: bool) {
        use std::sync::atomic::Ordering;
        let Some(counter) = self.failures.get(idx) else {
            return;
        };
        if ok {
            if counter.load(Ordering::Relaxed) != 0 {
                counter.store(0, Ordering::Relaxed);
            }
            return;
        }
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.threshold && self.health.is_healthy(idx) {
            self.health.set(idx, false);
            tracing::warn!(service = %self.service, target = %self.targets[idx], failures = n, cool_down = ?self.cool_down, "target ejected after consecutive failures");
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(me.cool_down).await;
                me.failures[idx].store(0, Ordering::Relaxed);
                me.health.set(idx, true);
                // The set may have been replaced meanwhile, with this
                // address's (ejected) bit carried over.
                if let Some(home) = me.home.upgrade() {
                    let current = home.load();
                    if !Arc::ptr_eq(&current.health, &me.health)
                        && let Some(i) = current.targets.iter().position(|a| *a == me.targets[idx])
                    {
                        current.health.set(i, true);
                    }
                }
                tracing::info!(service = %me.service, target = %me.targets[idx], "ejected target back in rotation after cool-down");
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn recipe() -> Recipe {
        Recipe {
            service: "svc".into(),
            algorithm: Algorithm::RoundRobin,
            passive: None,
            breaker: None,
        }
    }

    fn entries(list: &[(&str, u32)]) -> Vec<(Authority, u32)> {
        list.iter()
            .map(|(a, w)| (a.parse::<Authority>().unwrap(), *w))
            .collect()
    }

    fn spec() -> Spec {
        Spec::new(vec![crate::sources::TargetSource::Host {
            name: "api.internal".into(),
            port: 80,
            weight: 1,
        }])
    }

    #[test]
    fn health_is_carried_over_by_address() {
        let t = Targets::discovered(recipe(), spec()).unwrap();
        assert!(t.load().targets.is_empty());
        let first = entries(&[("10.0.0.1:80", 1), ("10.0.0.2:80", 1), ("10.0.0.3:80", 1)]);
        assert!(t.replace(first, None).unwrap());
        let old = t.load();
        old.health.set(1, false); // 10.0.0.2 is down
        old.health.set(0, false); // 10.0.0.1 too
        old.health.set(0, true); // ... and back

        let next = entries(&[("10.0.0.2:80", 1), ("10.0.0.4:80", 1), ("10.0.0.1:80", 1)]);
        assert!(t.replace(next, None).unwrap());
        let new = t.load();
        let names: Vec<&str> = new.targets.iter().map(Authority::as_str).collect();
        assert_eq!(names, ["10.0.0.2:80", "10.0.0.4:80", "10.0.0.1:80"]);
        assert!(!new.health.is_healthy(0), "10.0.0.2 stays down");
        assert!(new.health.is_healthy(1), "a new address starts healthy");
        assert!(new.health.is_healthy(2), "10.0.0.1 stays up");
        assert_eq!(new.health.len(), 3);
        // The old set is untouched: requests that hold it still see it.
        assert_eq!(old.targets.len(), 3);
        assert!(!old.health.is_healthy(1));
        // Picks only ever land on healthy addresses of the new set.
        for _ in 0..20 {
            let i = new.balancer.pick(None, &new.health).unwrap();
            assert_ne!(i, 0);
        }
    }

    #[test]
    fn an_identical_answer_keeps_the_set() {
        let t = Targets::discovered(recipe(), spec()).unwrap();
        let list = entries(&[("10.0.0.1:80", 5), ("10.0.0.2:80", 5)]);
        assert!(t.replace(list.clone(), None).unwrap());
        let before = t.load();
        assert!(!t.replace(list, None).unwrap());
        assert!(Arc::ptr_eq(&before, &t.load()));
        // A changed weight is a change.
        assert!(
            t.replace(entries(&[("10.0.0.1:80", 5), ("10.0.0.2:80", 6)]), None)
                .unwrap()
        );
        assert_eq!(t.load().weights, [5, 6]);
    }

    #[test]
    fn an_empty_set_says_why() {
        let t = Targets::discovered(recipe(), spec()).unwrap();
        let set = t.load();
        assert_eq!(
            set.no_target_detail("api"),
            "`api` has no resolved targets yet (DNS: not resolved yet)"
        );
        assert!(t.replace(Vec::new(), Some("DNS: NXDOMAIN".into())).unwrap());
        assert_eq!(
            t.load().no_target_detail("api"),
            "`api` has no resolved targets yet (DNS: NXDOMAIN)"
        );
        // The reason only counts while the set is empty.
        assert!(
            t.replace(entries(&[("10.0.0.1:80", 1)]), Some("x".into()))
                .unwrap()
        );
        assert_eq!(t.load().unresolved, None);
    }

    #[test]
    fn fixed_targets_use_index_ids_and_are_resolved_from_the_start() {
        let t =
            Targets::fixed(recipe(), entries(&[("10.0.0.1:80", 2), ("10.0.0.2:80", 1)])).unwrap();
        assert!(t.discovery().is_none());
        assert!(*t.resolved.borrow());
        let set = t.load();
        let picks: Vec<usize> = (0..3)
            .map(|_| set.balancer.pick(None, &set.health).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 0]);
    }

    #[tokio::test]
    async fn an_ejected_address_comes_back_in_the_set_that_replaced_its_own() {
        let recipe = Recipe {
            passive: Some(PassiveHealthCheck {
                consecutive_failures: 2,
                unhealthy_statuses: vec![503],
                cool_down: std::time::Duration::from_millis(50),
            }),
            ..recipe()
        };
        let t = Targets::discovered(recipe, spec()).unwrap();
        t.replace(entries(&[("10.0.0.1:80", 1), ("10.0.0.2:80", 1)]), None)
            .unwrap();
        let old = t.load();
        let passive = old.passive.clone().unwrap();
        passive.report(0, false);
        passive.report(0, false);
        assert!(!old.health.is_healthy(0), "ejected after 2 failures");

        // DNS replaces the set while 10.0.0.1 is ejected: the bit carries
        // over, and the cool-down brings it back in the new set.
        t.replace(entries(&[("10.0.0.3:80", 1), ("10.0.0.1:80", 1)]), None)
            .unwrap();
        let new = t.load();
        assert!(!new.health.is_healthy(1), "still ejected in the new set");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(new.health.is_healthy(1), "back after the cool-down");
        assert!(new.health.is_healthy(0));
    }

    #[test]
    fn discovered_weights_are_reduced_by_their_divisor() {
        // 1000 addresses of weight 100 would exceed the round-robin limit
        // (65536) unreduced; divided by 100 they are 1000 of weight 1.
        let many: Vec<(Authority, u32)> = (0..1000)
            .map(|i| {
                let a = format!("10.0.{}.{}:80", i / 250, i % 250);
                (a.parse().unwrap(), 100)
            })
            .collect();
        let t = Targets::discovered(recipe(), spec()).unwrap();
        assert!(t.replace(many, None).unwrap());
        assert_eq!(t.load().targets.len(), 1000);
    }
}
