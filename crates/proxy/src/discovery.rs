//! DNS-based target discovery: one task per service whose targets name DNS
//! names (a `host:port` target, an `srv:` entry, or the URL's host when
//! there are no targets). Each name is resolved right after the snapshot
//! starts and again when its TTL (clamped to `server.dns.min_ttl` ..
//! `max_ttl`) runs out; when the addresses differ, the service gets a new
//! [`TargetSet`](crate::targets::TargetSet) through
//! [`Targets::replace`] (health bits carried over by address).
//!
//! A failed lookup (NXDOMAIN, SERVFAIL, timeout, empty answer) keeps the
//! name's last good answer, logs one warning per failure streak and retries
//! after `error_ttl`. A name that never answered contributes no targets; a
//! service left with none answers a fast 503 saying why.
//!
//! Compiling a config never resolves anything: names are parsed into a
//! [`Spec`] by `snapshot::compile`, and only the tasks started by
//! `state.rs` (with the snapshot, like active health checks) query DNS.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData};
use http::uri::Authority;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::sources::{Answer, entries, fixed};
pub use crate::sources::{Spec, TargetSource};
use crate::targets::Targets;

/// Node-level resolver settings (`server.dns`), compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// Name servers; empty means the system's configuration.
    pub nameservers: Vec<SocketAddr>,
    /// Lower clamp of record TTLs.
    pub min_ttl: Duration,
    /// Upper clamp of record TTLs.
    pub max_ttl: Duration,
    /// Retry interval after a failed lookup.
    pub error_ttl: Duration,
    /// Time allowed for one lookup.
    pub timeout: Duration,
}

impl DnsSettings {
    /// From validated config.
    pub fn new(c: &gatehouse_config::Dns) -> Self {
        Self {
            nameservers: c.nameservers.iter().map(|n| n.0).collect(),
            min_ttl: c.min_ttl,
            max_ttl: c.max_ttl.max(c.min_ttl),
            error_ttl: c.error_ttl,
            timeout: c.timeout,
        }
    }

    fn clamp(&self, ttl: Duration) -> Duration {
        ttl.clamp(self.min_ttl, self.max_ttl)
    }
}

/// `ip:port` as an authority.
fn authority(addr: SocketAddr) -> Option<Authority> {
    addr.to_string().parse().ok()
}

/// Last good answers by source, kept across reloads: a reload during a DNS
/// outage starts its discovery with them instead of with nothing.
#[derive(Default)]
pub struct Memory {
    answers: Mutex<HashMap<TargetSource, Answer>>,
}

impl Memory {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TargetSource, Answer>> {
        match self.answers.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn get(&self, source: &TargetSource) -> Option<Answer> {
        self.lock().get(source).cloned()
    }

    fn put(&self, source: &TargetSource, answer: &Answer) {
        self.lock().insert(source.clone(), answer.clone());
    }

    /// Forgets sources no service uses any more.
    pub fn retain(&self, keep: &[&TargetSource]) {
        self.lock().retain(|s, _| keep.contains(&s));
    }
}

/// A resolver for `settings`, or why none could be built (for example no
/// readable `/etc/resolv.conf`). Reads the system configuration, never the
/// network.
pub fn resolver(settings: &DnsSettings) -> Result<Arc<TokioResolver>, Arc<str>> {
    let mut builder = if settings.nameservers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| {
            Arc::<str>::from(format!("cannot read the system DNS configuration: {e}"))
        })?
    } else {
        let servers = settings
            .nameservers
            .iter()
            .map(|ns| {
                let mut udp = ConnectionConfig::udp();
                udp.port = ns.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = ns.port();
                NameServerConfig::new(ns.ip(), true, vec![udp, tcp])
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    let opts = builder.options_mut();
    opts.timeout = settings.timeout;
    // One try per lookup: the discovery task retries after `error_ttl`.
    opts.attempts = 0;
    // The discovery task re-resolves on the TTL itself; a cache would only
    // hand back stale answers (or a cached NXDOMAIN) at that moment.
    opts.cache_size = 0;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    builder
        .build()
        .map(Arc::new)
        .map_err(|e| Arc::from(format!("cannot build the DNS resolver: {e}")))
}

/// Starts the discovery task of one service.
pub fn spawn(
    resolver: Result<Arc<TokioResolver>, Arc<str>>,
    settings: DnsSettings,
    targets: Arc<Targets>,
    memory: Arc<Memory>,
) -> JoinHandle<()> {
    tokio::spawn(run(resolver, settings, targets, memory))
}

/// What the task knows about one source.
struct State {
    source: TargetSource,
    /// Last good answer (or the one remembered from before a reload).
    answer: Option<Answer>,
    /// When to resolve again.
    due: Instant,
    /// The current failure streak's last error, if failing.
    error: Option<String>,
}

async fn run(
    resolver: Result<Arc<TokioResolver>, Arc<str>>,
    settings: DnsSettings,
    targets: Arc<Targets>,
    memory: Arc<Memory>,
) {
    let Some(spec) = targets.discovery().cloned() else {
        targets.mark_resolved();
        return;
    };
    let service = targets.service().clone();
    let start = Instant::now();
    let mut states: Vec<State> = spec
        .into_sources()
        .into_iter()
        .map(|source| State {
            answer: match &source {
                TargetSource::Static { target, weight } => Some(fixed(target, *weight)),
                _ => memory.get(&source),
            },
            source,
            due: start,
            error: None,
        })
        .collect();
    let mut build_failed = false;
    // Answers remembered from the previous snapshot serve until the first
    // lookups finish (or instead of them, if DNS is down).
    if states
        .iter()
        .any(|s| s.source.is_dns() && s.answer.is_some())
    {
        let list = entries(states.iter().map(|s| s.answer.clone().unwrap_or_default()));
        if let Err(error) = targets.replace(list, None) {
            tracing::debug!(service = %service, %error, "remembered DNS answers do not balance");
        }
    }
    loop {
        let now = Instant::now();
        let due: Vec<usize> = (0..states.len())
            .filter(|&i| states[i].source.is_dns() && states[i].due <= now)
            .collect();
        let lookups = due
            .iter()
            .map(|&i| lookup(&resolver, &settings, &states[i].source));
        let results = futures_util::future::join_all(lookups).await;
        let done = Instant::now();
        for (i, result) in due.into_iter().zip(results) {
            let st = &mut states[i];
            match result {
                Ok((answer, ttl)) => {
                    let ttl = settings.clamp(ttl);
                    if st.error.take().is_some() {
                        tracing::info!(service = %service, source = %st.source, addresses = answer.len(), "DNS answers again");
                    }
                    if st.answer.as_ref() != Some(&answer) {
                        tracing::debug!(service = %service, source = %st.source, ?answer, ?ttl, "DNS answer changed");
                    }
                    memory.put(&st.source, &answer);
                    st.answer = Some(answer);
                    st.due = done + ttl;
                }
                Err(error) => {
                    if st.error.is_none() {
                        let kept = st.answer.as_ref().map_or(0, Vec::len);
                        tracing::warn!(service = %service, source = %st.source, %error, kept_addresses = kept, retry_in = ?settings.error_ttl, "DNS lookup failed; keeping the last good answer");
                    }
                    st.error = Some(error);
                    st.due = done + settings.error_ttl;
                }
            }
        }

        let list = entries(states.iter().map(|s| s.answer.clone().unwrap_or_default()));
        let why = states
            .iter()
            .find_map(|s| s.error.as_ref())
            .map(|e| Arc::<str>::from(format!("DNS: {e}")));
        match targets.replace(list, why) {
            Ok(changed) => {
                build_failed = false;
                if changed {
                    let set = targets.load();
                    tracing::info!(service = %service, targets = ?set.targets.iter().map(Authority::as_str).collect::<Vec<_>>(), "target set changed");
                }
            }
            Err(error) => {
                if !build_failed {
                    tracing::warn!(service = %service, %error, "cannot balance over the DNS answers; keeping the current targets");
                }
                build_failed = true;
            }
        }
        targets.mark_resolved();

        let next = states
            .iter()
            .filter(|s| s.source.is_dns())
            .map(|s| s.due)
            .min();
        match next {
            Some(at) => tokio::time::sleep_until(at).await,
            None => return,
        }
    }
}

/// Resolves one source: its addresses with weights, and the smallest TTL
/// among the records used.
async fn lookup(
    resolver: &Result<Arc<TokioResolver>, Arc<str>>,
    settings: &DnsSettings,
    source: &TargetSource,
) -> Result<(Answer, Duration), String> {
    let resolver = resolver.as_ref().map_err(ToString::to_string)?;
    match source {
        TargetSource::Static { target, weight } => Ok((fixed(target, *weight), settings.max_ttl)),
        TargetSource::Host { name, port, weight } => {
            let host = parse_name(name)?;
            let (ips, ttl) = lookup_ips(resolver, settings, host).await?;
            let answer = ips
                .into_iter()
                .filter_map(|ip| Some((authority(SocketAddr::new(ip, *port))?, *weight)))
                .collect();
            Ok((answer, ttl))
        }
        TargetSource::Srv { name } => lookup_srv(resolver, settings, parse_name(name)?).await,
    }
}

fn parse_name(name: &str) -> Result<Name, String> {
    Name::from_ascii(name).map_err(|e| format!("`{name}` is not a DNS name: {e}"))
}

/// The addresses of `host`, sorted (answers may come in any order), and
/// the smallest record TTL.
async fn lookup_ips(
    resolver: &TokioResolver,
    settings: &DnsSettings,
    host: Name,
) -> Result<(Vec<IpAddr>, Duration), String> {
    let lookup = resolver
        .lookup_ip(host.clone())
        .await
        .map_err(|e| describe(&e, &host, "A/AAAA", settings))?;
    let mut ips: Vec<IpAddr> = lookup.iter().collect();
    ips.sort_unstable();
    ips.dedup();
    if ips.is_empty() {
        return Err(format!("no A/AAAA records for `{host}`"));
    }
    let ttl = min_ttl(lookup.as_lookup().answers().iter().map(|r| r.ttl));
    Ok((ips, ttl))
}

/// The SRV records of `name`: the lowest-priority group, each record's
/// target resolved to its addresses (port and weight from the record;
/// weight 0 counts as 1). Targets that do not resolve are left out.
async fn lookup_srv(
    resolver: &TokioResolver,
    settings: &DnsSettings,
    name: Name,
) -> Result<(Answer, Duration), String> {
    let lookup = resolver
        .srv_lookup(name.clone())
        .await
        .map_err(|e| describe(&e, &name, "SRV", settings))?;
    let mut records = Vec::new();
    let mut ttl = Duration::MAX;
    for r in lookup.answers() {
        if let RData::SRV(srv) = &r.data {
            records.push(srv.clone());
            ttl = ttl.min(Duration::from_secs(u64::from(r.ttl)));
        }
    }
    let Some(priority) = records.iter().map(|r| r.priority).min() else {
        return Err(format!("no SRV records for `{name}`"));
    };
    // RFC 2782: a single record with target "." means "not available here".
    records.retain(|r| r.priority == priority && !r.target.is_root());
    let resolved = futures_util::future::join_all(
        records
            .iter()
            .map(|r| lookup_ips(resolver, settings, r.target.clone())),
    )
    .await;
    let mut answer: Vec<(SocketAddr, u32)> = Vec::new();
    let mut first_error = None;
    for (record, result) in records.iter().zip(resolved) {
        match result {
            Ok((ips, host_ttl)) => {
                ttl = ttl.min(host_ttl);
                let weight = u32::from(record.weight.max(1));
                answer.extend(
                    ips.into_iter()
                        .map(|ip| (SocketAddr::new(ip, record.port), weight)),
                );
            }
            Err(e) => {
                tracing::debug!(srv = %name, target = %record.target, error = %e, "SRV target does not resolve");
                first_error.get_or_insert(e);
            }
        }
    }
    if answer.is_empty() {
        return Err(first_error.unwrap_or_else(|| format!("SRV `{name}` names no usable target")));
    }
    answer.sort_unstable();
    answer.dedup_by_key(|(a, _)| *a);
    let answer = answer
        .into_iter()
        .filter_map(|(a, w)| Some((authority(a)?, w)))
        .collect();
    Ok((answer, ttl))
}

fn min_ttl(ttls: impl Iterator<Item = u32>) -> Duration {
    ttls.min()
        .map_or(Duration::ZERO, |t| Duration::from_secs(u64::from(t)))
}

/// A lookup error in words: "NXDOMAIN for `api.internal`", "timed out
/// after 2s asking for A/AAAA of `api.internal`", ...
fn describe(e: &NetError, name: &Name, what: &str, settings: &DnsSettings) -> String {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr))
            if nr.response_code == ResponseCode::NXDomain =>
        {
            format!("NXDOMAIN for `{name}`")
        }
        NetError::Dns(DnsError::NoRecordsFound(_)) => format!("no {what} records for `{name}`"),
        NetError::Dns(DnsError::ResponseCode(code)) => {
            format!("the name server answered {code} for `{name}`")
        }
        NetError::Timeout => format!(
            "timed out after {:?} asking for {what} of `{name}`",
            settings.timeout
        ),
        other => format!("{what} lookup of `{name}` failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn sa(s: &str) -> Authority {
        s.parse().unwrap()
    }

    #[test]
    fn entries_keep_order_and_merge_repeated_addresses() {
        let list = entries(
            [
                vec![(sa("10.0.0.2:80"), 5), (sa("10.0.0.1:80"), 5)],
                vec![(sa("10.0.0.1:80"), 10), (sa("[::1]:81"), 1)],
            ]
            .into_iter(),
        );
        let shown: Vec<(String, u32)> = list
            .iter()
            .map(|(a, w)| (a.as_str().to_string(), *w))
            .collect();
        assert_eq!(
            shown,
            [
                ("10.0.0.2:80".to_string(), 5),
                ("10.0.0.1:80".to_string(), 15),
                ("[::1]:81".to_string(), 1)
            ]
        );
    }

    #[test]
    fn static_entries_are_the_ip_literals() {
        let spec = Spec::new(vec![
            TargetSource::Static {
                target: "10.0.0.1:8080".parse().unwrap(),
                weight: 3,
            },
            TargetSource::Host {
                name: "api.internal".into(),
                port: 8080,
                weight: 1,
            },
            TargetSource::Srv {
                name: "_http._tcp.api.internal".into(),
            },
        ]);
        assert!(spec.needs_dns());
        let e = spec.static_entries();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].0.as_str(), e[0].1), ("10.0.0.1:8080", 3));
    }

    #[test]
    fn ttls_are_clamped() {
        let s = DnsSettings::new(&gatehouse_config::Dns {
            min_ttl: Duration::from_secs(2),
            max_ttl: Duration::from_secs(10),
            ..Default::default()
        });
        assert_eq!(s.clamp(Duration::ZERO), Duration::from_secs(2));
        assert_eq!(s.clamp(Duration::from_secs(5)), Duration::from_secs(5));
        assert_eq!(
            s.clamp(Duration::from_secs(86_400)),
            Duration::from_secs(10)
        );
    }
}
