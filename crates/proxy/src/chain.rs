//! A compiled plugin chain: the plugins that apply to one route, merged
//! from the global, service and route levels, sorted once, and split per
//! phase so that a phase with no plugin costs nothing.

use std::cmp::Reverse;
use std::sync::Arc;

use gatehouse_core::{Capabilities, Phase, Plugin};

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
    upstream_request: Vec<usize>,
    response_headers: Vec<usize>,
    response_body: Vec<usize>,
    log: Vec<usize>,
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
            upstream_request: pick(Phase::UpstreamRequest),
            response_headers: pick(Phase::ResponseHeaders),
            response_body: pick(Phase::ResponseBody),
            log: pick(Phase::Log),
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
            Phase::UpstreamRequest => &self.upstream_request,
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
        self.phase(phase).next().is_some()
    }

    /// The access plugins of this chain — just merged with a consumer's
    /// plugins `consumer` — that came from `consumer` and sort at or before
    /// `at`, the plugin that identified the consumer. The access phase is
    /// already past them, so the proxy runs them at once, in this order.
    ///
    /// A consumer plugin that replaced a route (or service, or global)
    /// plugin of the same name which already ran is among them: the
    /// earlier instance ran before anyone was identified, and the
    /// consumer's runs as well, so a consumer-level check can only add to
    /// the route's, never undo it.
    pub fn catch_up<'a>(
        &'a self,
        consumer: &'a [Entry],
        at: &'a Entry,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        self.phase(Phase::Access).filter(move |e| {
            !Self::runs_after(e, at) && consumer.iter().any(|c| Arc::ptr_eq(&c.plugin, &e.plugin))
        })
    }

    /// Why a plugin cannot be attached to a consumer, if it cannot: a
    /// consumer is identified in the access phase, after every `rewrite`
    /// plugin ran, so a plugin with a `rewrite` phase would be partly or
    /// wholly ignored. `None` when every phase of the plugin can run once
    /// its consumer is known.
    pub fn consumer_level_problem(e: &Entry) -> Option<&'static str> {
        let phases = e.plugin.phases();
        if phases.contains(Phase::Rewrite) {
            Some(
                "its `rewrite` phase runs before any consumer is identified, so it would never run for this consumer; attach it to the route, service or globally instead",
            )
        } else if phases == gatehouse_core::Phases::NONE {
            Some("it takes part in no phase, so it would never run")
        } else {
            None
        }
    }

    /// Whether `a` runs strictly after `b`.
    pub fn runs_after(a: &Entry, b: &Entry) -> bool {
        a.key() > b.key()
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
        let caught: Vec<&str> = merged.catch_up(&consumer, at).map(|x| &*x.name).collect();
        assert_eq!(caught, ["ip-restriction", "early"]);
        // The caught-up ip-restriction is the consumer's instance.
        let first = merged.catch_up(&consumer, at).next().unwrap();
        assert!(Arc::ptr_eq(&first.plugin, &consumer[0].plugin));
        let after: Vec<&str> = merged
            .phase(Phase::Access)
            .filter(|x| Chain::runs_after(x, at))
            .map(|x| &*x.name)
            .collect();
        assert_eq!(after, ["size", "late"]);
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
