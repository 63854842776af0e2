//! A compiled plugin chain: the plugins that apply to one route, merged
//! from the global, service and route levels (and, once they are known,
//! the plan's and the consumer's: see [`Merged`]), sorted once, and split
//! per phase so that a phase with no plugin costs nothing.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use gatehouse_core::{Capabilities, Phase, Phases, Plugin};

/// One plugin instance with its effective priority.
#[derive(Clone)]
pub struct Entry {
    /// Registry name; a more specific level replaces a less specific entry
    /// of the same name.
    pub name: Arc<str>,
    /// Effective priority (config override or the plugin's default).
    pub priority: i32,
    /// The instance.
    pub plugin: Arc<dyn Plugin>,
}

impl Entry {
    /// Sort key: higher priority first, then name, so order is total.
    fn key(&self) -> (Reverse<i32>, &str) {
        (Reverse(self.priority), &self.name)
    }
}

/// The plugins of one route, per phase, in execution order.
#[derive(Clone, Default)]
pub struct Chain {
    entries: Vec<Entry>,
    /// Per phase, indices into `entries`.
    rewrite: Vec<usize>,
    access: Vec<usize>,
    upstream: Vec<usize>,
    request_body: Vec<usize>,
    upstream_request: Vec<usize>,
    upstream_error: Vec<usize>,
    response_headers: Vec<usize>,
    response_body: Vec<usize>,
    log: Vec<usize>,
    /// Every phase some plugin takes part in.
    phases: Phases,
}

impl Chain {
    /// Merges levels from least to most specific: an entry of a later
    /// level replaces an earlier entry with the same name.
    pub fn merge<'a>(levels: impl IntoIterator<Item = &'a [Entry]>) -> Self {
        let mut entries: Vec<Entry> = Vec::new();
        for level in levels {
            for e in level {
                match entries.iter_mut().find(|x| x.name == e.name) {
                    Some(slot) => *slot = e.clone(),
                    None => entries.push(e.clone()),
                }
            }
        }
        entries.sort_by(|a, b| a.key().cmp(&b.key()));
        let pick = |phase: Phase| -> Vec<usize> {
            entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.plugin.phases().contains(phase))
                .map(|(i, _)| i)
                .collect()
        };
        Self {
            rewrite: pick(Phase::Rewrite),
            access: pick(Phase::Access),
            upstream: pick(Phase::Upstream),
            request_body: pick(Phase::RequestBody),
            upstream_request: pick(Phase::UpstreamRequest),
            upstream_error: pick(Phase::UpstreamError),
            response_headers: pick(Phase::ResponseHeaders),
            response_body: pick(Phase::ResponseBody),
            log: pick(Phase::Log),
            phases: entries
                .iter()
                .fold(Phases::NONE, |all, e| all.union(e.plugin.phases())),
            entries,
        }
    }

    /// All entries in execution order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The plugins of `phase`, in execution order.
    pub fn phase(&self, phase: Phase) -> impl Iterator<Item = &Entry> + '_ {
        let idx = match phase {
            Phase::Rewrite => &self.rewrite,
            Phase::Access => &self.access,
            Phase::Upstream => &self.upstream,
            Phase::RequestBody => &self.request_body,
            Phase::UpstreamRequest => &self.upstream_request,
            Phase::UpstreamError => &self.upstream_error,
            Phase::ResponseHeaders => &self.response_headers,
            Phase::ResponseBody => &self.response_body,
            Phase::Log => &self.log,
        };
        idx.iter().map(|&i| &self.entries[i])
    }

    /// Whether any plugin of the chain has capability `cap`: the proxy asks
    /// for what a plugin does, never for a plugin by name.
    pub fn any(&self, cap: Capabilities) -> bool {
        self.entries
            .iter()
            .any(|e| e.plugin.capabilities().contains(cap))
    }

    /// Whether any plugin takes part in `phase`.
    pub fn has(&self, phase: Phase) -> bool {
        self.phases.contains(phase)
    }

    /// Whether any plugin takes part in one of `phases`.
    pub fn has_any(&self, phases: Phases) -> bool {
        self.phases.intersects(phases)
    }

    /// The access plugins of this chain — just merged with a consumer's
    /// or a plan's plugins `extra` — that came from `extra` and sort at or
    /// before `at`, the plugin that identified the consumer (`None`: the
    /// whole access phase is past, as when the plan becomes known after
    /// it). The proxy runs them at once, in this order.
    ///
    /// A consumer (or plan) plugin that replaced a route (or service, or
    /// global) plugin of the same name which already ran is among them:
    /// the earlier instance ran before anyone was identified, and the
    /// later one runs as well, so a consumer- or plan-level check can only
    /// add to the route's, never undo it.
    pub fn catch_up<'a>(
        &'a self,
        extra: &'a [Entry],
        at: Option<&'a Entry>,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        self.phase(Phase::Access).filter(move |e| {
            at.is_none_or(|at| !Self::runs_after(e, at))
                && extra.iter().any(|c| Arc::ptr_eq(&c.plugin, &e.plugin))
        })
    }

    /// Why a plugin cannot be attached to a consumer or a plan, if it
    /// cannot: both are known only in (consumer) or after (plan) the access
    /// phase, after every `rewrite` plugin ran, so a plugin with a
    /// `rewrite` phase would be partly or wholly ignored. `None` when every
    /// phase of the plugin can run once its consumer is known.
    pub fn consumer_level_problem(e: &Entry) -> Option<&'static str> {
        e.plugin.phases().late_attachment_problem()
    }

    /// Whether `a` runs strictly after `b`.
    pub fn runs_after(a: &Entry, b: &Entry) -> bool {
        a.key() > b.key()
    }
}

/// Chains merged with a consumer's and a plan's plugins, by (branch
/// chain, consumer, plan), computed once per snapshot and then shared.
///
/// Read-mostly and lock-free: a lookup is one atomic load and one hash
/// probe; a miss merges the chain and publishes a new map with it
/// (copy-on-write, racing writers may both merge, one insert wins — the
/// result is the same). The number of combinations that requests can
/// reach is bounded by the configuration (branches × consumers with
/// plugins × plans with plugins), and the cache stops growing at
/// [`Merged::MAX`] entries: past it, the merge is made per request
/// (correct, only slower) and a warning is logged once.
#[derive(Default)]
pub struct Merged {
    map: ArcSwap<HashMap<MergedKey, Arc<Chain>>>,
    full_warned: std::sync::atomic::AtomicBool,
}

/// What a merged chain is made of. The base is named by its address: it
/// lives in the snapshot that owns this cache, so it neither moves nor is
/// reused while the cache exists.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MergedKey {
    base: usize,
    consumer: Option<Arc<str>>,
    plan: Option<Arc<str>>,
}

impl Merged {
    /// Largest number of cached chains.
    pub const MAX: usize = 10_000;

    /// `base` (a route's or a split branch's chain) merged with the plan's
    /// `plan` and the consumer's `consumer` plugins, in the order of the
    /// levels: global < service < route < plan < consumer.
    pub fn get(
        &self,
        base: &Arc<Chain>,
        consumer: Option<(&Arc<str>, &[Entry])>,
        plan: Option<(&Arc<str>, &[Entry])>,
    ) -> Arc<Chain> {
        if consumer.is_none() && plan.is_none() {
            return base.clone();
        }
        let key = MergedKey {
            base: Arc::as_ptr(base) as usize,
            consumer: consumer.map(|(n, _)| n.clone()),
            plan: plan.map(|(n, _)| n.clone()),
        };
        if let Some(c) = self.map.load().get(&key) {
            return c.clone();
        }
        let empty: &[Entry] = &[];
        let merged = Arc::new(Chain::merge([
            base.entries(),
            plan.map_or(empty, |(_, e)| e),
            consumer.map_or(empty, |(_, e)| e),
        ]));
        let mut full = false;
        self.map.rcu(|map| {
            if map.len() >= Self::MAX {
                full = true;
                return map.clone();
            }
            full = false;
            let mut next = HashMap::clone(map);
            next.insert(key.clone(), merged.clone());
            Arc::new(next)
        });
        if full
            && !self
                .full_warned
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                max = Self::MAX,
                "the cache of merged plugin chains is full; further consumer/plan chains are merged per request"
            );
        }
        merged
    }

    /// How many chains are cached (for tests).
    pub fn len(&self) -> usize {
        self.map.load().len()
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::Phases;

    struct P(&'static str, Phases);
    impl Plugin for P {
        fn name(&self) -> &'static str {
            self.0
        }
        fn phases(&self) -> Phases {
            self.1
        }
    }

    fn e(name: &'static str, priority: i32, phases: &[Phase]) -> Entry {
        Entry {
            name: name.into(),
            priority,
            plugin: Arc::new(P(name, Phases::of(phases))),
        }
    }

    #[test]
    fn merges_by_name_and_orders_by_priority_then_name() {
        let global = [e("a", 10, &[Phase::Access]), e("b", 5, &[Phase::Access])];
        let route = [
            e("a", 1, &[Phase::Access, Phase::Log]),
            e("c", 5, &[Phase::Rewrite]),
        ];
        let chain = Chain::merge([&global[..], &route[..]]);
        let names: Vec<(&str, i32)> = chain
            .entries()
            .iter()
            .map(|e| (&*e.name, e.priority))
            .collect();
        assert_eq!(names, vec![("b", 5), ("c", 5), ("a", 1)]);
        let access: Vec<&str> = chain.phase(Phase::Access).map(|e| &*e.name).collect();
        assert_eq!(access, vec!["b", "a"]);
        assert!(chain.has(Phase::Log));
        assert!(!chain.has(Phase::ResponseBody));
    }

    #[test]
    fn has_agrees_with_the_phase_lists_and_has_any_with_request_phases() {
        use gatehouse_core::plugin::testing::PROBES;
        let chains = [
            Chain::default(),
            Chain::merge([&[e("r", 1, &[Phase::ResponseHeaders, Phase::Log])][..]]),
            Chain::merge([&[
                e("a", 1, &[Phase::Rewrite]),
                e("b", 2, &[Phase::UpstreamRequest, Phase::Log]),
            ][..]]),
        ];
        for chain in &chains {
            for (phase, name, _) in PROBES {
                assert_eq!(
                    chain.has(*phase),
                    chain.phase(*phase).next().is_some(),
                    "{name}"
                );
            }
        }
        let wants = [false, false, true];
        for (chain, want) in chains.iter().zip(wants) {
            assert_eq!(chain.has_any(Phases::REQUEST), want);
        }
    }

    #[test]
    fn consumer_plugins_before_the_identifying_plugin_are_caught_up() {
        let route = [
            e("ip-restriction", 3000, &[Phase::Access]),
            e("key-auth", 1250, &[Phase::Access]),
            e("size", 951, &[Phase::Access]),
        ];
        let consumer = [
            // Same name as a route plugin that already ran: runs too.
            e("ip-restriction", 3000, &[Phase::Access]),
            // Sorts before key-auth: caught up.
            e("early", 2000, &[Phase::Access]),
            // Sorts after key-auth: runs in the ordinary way, not now.
            e("late", 10, &[Phase::Access]),
            // Not an access plugin.
            e("headers", 5000, &[Phase::UpstreamRequest]),
        ];
        let base = Chain::merge([&route[..]]);
        let at = base
            .entries()
            .iter()
            .find(|x| &*x.name == "key-auth")
            .unwrap();
        let merged = Chain::merge([base.entries(), &consumer[..]]);
        let caught: Vec<&str> = merged
            .catch_up(&consumer, Some(at))
            .map(|x| &*x.name)
            .collect();
        assert_eq!(caught, ["ip-restriction", "early"]);
        // The caught-up ip-restriction is the consumer's instance.
        let first = merged.catch_up(&consumer, Some(at)).next().unwrap();
        assert!(Arc::ptr_eq(&first.plugin, &consumer[0].plugin));
        let after: Vec<&str> = merged
            .phase(Phase::Access)
            .filter(|x| Chain::runs_after(x, at))
            .map(|x| &*x.name)
            .collect();
        assert_eq!(after, ["size", "late"]);
    }

    #[test]
    fn plan_plugins_sit_between_route_and_consumer_and_are_caught_up_whole() {
        let route = Arc::new(Chain::merge([&[
            e("key-auth", 1250, &[Phase::Access]),
            e("limit", 1000, &[Phase::Access]),
        ][..]]));
        let plan = [
            e("limit", 1000, &[Phase::Access]),
            e("quota", 900, &[Phase::Access, Phase::Log]),
            e("tag", 5, &[Phase::UpstreamRequest]),
        ];
        let consumer = [e("quota", 900, &[Phase::Access])];
        let cache = Merged::default();
        let (c, p): (Arc<str>, Arc<str>) = ("alice".into(), "gold".into());
        let merged = cache.get(&route, Some((&c, &consumer)), Some((&p, &plan)));
        // The plan's limit replaced the route's; the consumer's quota the
        // plan's.
        let limit = merged
            .entries()
            .iter()
            .find(|x| &*x.name == "limit")
            .unwrap();
        assert!(Arc::ptr_eq(&limit.plugin, &plan[0].plugin));
        let quota = merged
            .entries()
            .iter()
            .find(|x| &*x.name == "quota")
            .unwrap();
        assert!(Arc::ptr_eq(&quota.plugin, &consumer[0].plugin));
        assert!(!merged.has(Phase::Log), "the plan's quota is gone");
        // After the access phase, every access plugin of the plan runs.
        let caught: Vec<&str> = merged.catch_up(&plan, None).map(|x| &*x.name).collect();
        assert_eq!(caught, ["limit"]);
        // Computed once: the same Arc again, one entry in the cache.
        let again = cache.get(&route, Some((&c, &consumer)), Some((&p, &plan)));
        assert!(Arc::ptr_eq(&merged, &again));
        assert_eq!(cache.len(), 1);
        // Nothing to merge: the base itself, nothing cached.
        assert!(Arc::ptr_eq(&cache.get(&route, None, None), &route));
        let only_plan = cache.get(&route, None, Some((&p, &plan)));
        assert!(!Arc::ptr_eq(&only_plan, &merged));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn plugins_with_a_rewrite_phase_cannot_be_consumer_level() {
        fn check(phases: &[Phase], refused: bool) {
            let entry = e("p", 0, phases);
            assert_eq!(
                Chain::consumer_level_problem(&entry).is_some(),
                refused,
                "{phases:?}"
            );
        }
        check(&[Phase::Access], false);
        check(&[Phase::UpstreamRequest, Phase::ResponseHeaders], false);
        check(&[Phase::Log], false);
        check(&[Phase::Rewrite], true);
        check(&[Phase::Rewrite, Phase::ResponseHeaders], true);
        check(&[], true);
    }
}
