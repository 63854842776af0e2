//! Where a service's targets come from (IP literals, DNS names, SRV names),
//! as compiled from its config: plain data that `targets` keeps and
//! `discovery` resolves, so neither module needs the other.

use http::uri::Authority;

/// Where some of a service's targets come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TargetSource {
    /// An IP literal (or `localhost`): one target, never resolved here.
    Static {
        /// `host:port`.
        target: Authority,
        /// Its weight.
        weight: u32,
    },
    /// A host name: one target per A/AAAA record, each with `port` and
    /// `weight`.
    Host {
        /// The DNS name.
        name: String,
        /// Port of every target.
        port: u16,
        /// Weight of every target.
        weight: u32,
    },
    /// An SRV name: the lowest-priority group's records give host, port
    /// and weight.
    Srv {
        /// The SRV name (`_service._proto.name`).
        name: String,
    },
}

impl TargetSource {
    pub(crate) fn is_dns(&self) -> bool {
        !matches!(self, TargetSource::Static { .. })
    }
}

impl std::fmt::Display for TargetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetSource::Static { target, .. } => write!(f, "{target}"),
            TargetSource::Host { name, port, .. } => write!(f, "{name}:{port}"),
            TargetSource::Srv { name } => write!(f, "srv {name}"),
        }
    }
}

/// The target sources of one DNS-backed service, in config order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    sources: Vec<TargetSource>,
}

impl Spec {
    /// From sources in config order.
    pub fn new(sources: Vec<TargetSource>) -> Self {
        Self { sources }
    }

    /// Whether any source needs DNS (otherwise the targets are fixed).
    pub fn needs_dns(&self) -> bool {
        self.sources.iter().any(TargetSource::is_dns)
    }

    /// The sources.
    pub fn sources(&self) -> &[TargetSource] {
        &self.sources
    }

    /// The sources, owned.
    pub(crate) fn into_sources(self) -> Vec<TargetSource> {
        self.sources
    }

    /// The IP-literal entries: the targets before anything is resolved.
    pub fn static_entries(&self) -> Vec<(Authority, u32)> {
        entries(self.sources.iter().map(|s| match s {
            TargetSource::Static { target, weight } => fixed(target, *weight),
            _ => Vec::new(),
        }))
    }
}

/// Resolved addresses of one source (`ip:port`), with their weights.
pub(crate) type Answer = Vec<(Authority, u32)>;

/// The one target of a fixed entry.
pub(crate) fn fixed(target: &Authority, weight: u32) -> Answer {
    vec![(target.clone(), weight)]
}

/// The target list of a service: each source's addresses in config order;
/// an address that several sources give appears once, with the weights
/// added up.
pub(crate) fn entries(answers: impl Iterator<Item = Answer>) -> Vec<(Authority, u32)> {
    let mut out: Vec<(Authority, u32)> = Vec::new();
    for answer in answers {
        for (addr, weight) in answer {
            match out.iter_mut().find(|(a, _)| *a == addr) {
                Some((_, w)) => *w = w.saturating_add(weight).min(65_535),
                None => out.push((addr, weight)),
            }
        }
    }
    out
}
