//! `ip-restriction`: allows or denies clients by address (IPv4 and IPv6
//! addresses and CIDR blocks), using the client address the proxy resolved
//! through its trusted proxies (`Ctx::client_ip`).
//!
//! Lists are compiled into sorted, merged address ranges per family and
//! checked by binary search, so a list of 100 000 blocks costs about 17
//! comparisons per request.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use http::StatusCode;
use ipnet::IpNet;
use schemars::JsonSchema;
use serde::Deserialize;

use gatehouse_core::{
    Ctx, Flow, Phase, Phases, Plugin, PluginError, Problem, ProblemType, Request,
};

use gatehouse_core::{Band, ProblemDef};

use crate::{TypedFactory, config};

/// Registry name.
pub const NAME: &str = "ip-restriction";
/// Default priority.
pub const PRIORITY: i32 = 3000;

/// Configuration of `ip-restriction`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case", default)]
pub struct Config {
    /// Addresses or CIDR blocks allowed in. When set, everything else is
    /// rejected.
    pub allow: Option<Vec<String>>,
    /// Addresses or CIDR blocks rejected. Wins over `allow`.
    pub deny: Option<Vec<String>>,
    /// Status of the rejection (400 to 599).
    pub status: u16,
    /// Detail of the rejection sent to the client.
    pub message: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            allow: None,
            deny: None,
            status: 403,
            message: None,
        }
    }
}

/// The client address is not allowed (403 unless `status` says otherwise).
pub const IP_FORBIDDEN: ProblemDef = ProblemDef {
    slug: "ip-forbidden",
    status: 403,
    title: "Client address not allowed",
};

/// Builds [`IpRestriction`] instances from their `config`.
pub const FACTORY: TypedFactory<Config> =
    TypedFactory::new(NAME, PRIORITY, Band::Admission, |cfg, _cx| {
        Ok(Arc::new(IpRestriction::new(cfg)?))
    })
    .problems(&[&IP_FORBIDDEN]);

/// A set of addresses as sorted, non-overlapping inclusive ranges, one
/// vector per family.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IpSet {
    /// Parses addresses (`10.0.0.1`, `::1`) and CIDR blocks (`10.0.0.0/8`,
    /// `2001:db8::/32`). `field` names the list in errors (`allow[3]`).
    pub fn parse(field: &str, entries: &[String]) -> Result<Self, PluginError> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let net = parse_net(entry.trim()).ok_or_else(|| {
                PluginError::at(
                    format!("{field}[{i}]"),
                    format!("invalid address {entry:?}: expected an IP address or CIDR block such as \"10.0.0.0/8\" or \"2001:db8::/32\""),
                )
            })?;
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        Ok(Self {
            v4: merge(v4),
            v6: merge(v6),
        })
    }

    /// Whether `ip` is in the set. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.0.0.1`) are checked as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(ip) => find(&self.v4, u32::from(ip)),
            IpAddr::V6(ip) => find(&self.v6, u128::from(ip)),
        }
    }

    /// Whether the set has no address.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

fn parse_net(entry: &str) -> Option<IpNet> {
    if let Ok(net) = entry.parse::<IpNet>() {
        // Host bits set (10.0.0.1/8) are accepted and mean the whole block.
        return Some(net.trunc());
    }
    entry.parse::<IpAddr>().ok().map(IpNet::from)
}

fn merge<T: Ord + Copy + num::Succ>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut merged: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if last.1.succ().is_none_or(|next| start <= next) => {
                last.1 = last.1.max(end);
            }
            _ => merged.push((start, end)),
        }
    }
    merged
}

fn find<T: Ord + Copy>(ranges: &[(T, T)], ip: T) -> bool {
    // Index of the first range starting after `ip`; the one before it is
    // the only candidate.
    let after = ranges.partition_point(|&(start, _)| start <= ip);
    after > 0 && ranges[after - 1].1 >= ip
}

mod num {
    /// The next integer, `None` at the maximum.
    pub trait Succ: Sized {
        fn succ(self) -> Option<Self>;
    }
    impl Succ for u32 {
        fn succ(self) -> Option<Self> {
            self.checked_add(1)
        }
    }
    impl Succ for u128 {
        fn succ(self) -> Option<Self> {
            self.checked_add(1)
        }
    }
}

/// The running plugin.
#[derive(Debug)]
pub struct IpRestriction {
    allow: Option<IpSet>,
    deny: IpSet,
    status: StatusCode,
    message: Option<String>,
}

impl IpRestriction {
    /// Validates `cfg` and builds the plugin.
    pub fn new(cfg: Config) -> Result<Self, PluginError> {
        if cfg.allow.as_ref().is_none_or(Vec::is_empty)
            && cfg.deny.as_ref().is_none_or(Vec::is_empty)
        {
            return Err(PluginError::at(
                "",
                "expected a non-empty `allow` or `deny` list of IP addresses or CIDR blocks",
            ));
        }
        let allow = match &cfg.allow {
            Some(list) if !list.is_empty() => Some(IpSet::parse("allow", list)?),
            _ => None,
        };
        let deny = IpSet::parse("deny", cfg.deny.as_deref().unwrap_or_default())?;
        let status = config::status("status", cfg.status, 400..=599)?;
        Ok(Self {
            allow,
            deny,
            status,
            message: cfg.message,
        })
    }

    /// Whether `ip` may pass: not denied, and allowed when an allow list is
    /// set.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !self.deny.contains(ip) && self.allow.as_ref().is_none_or(|allow| allow.contains(ip))
    }
}

#[async_trait]
impl Plugin for IpRestriction {
    fn name(&self) -> &'static str {
        NAME
    }

    fn phases(&self) -> Phases {
        Phases::of(&[Phase::Access])
    }

    async fn access(&self, ctx: &mut Ctx, _req: &mut Request) -> Flow {
        // An unknown client (a trusted proxy sent a hop that is not an
        // address) is refused by allow and deny lists alike: whoever can
        // make itself unknown must not slip past a deny list either.
        let Some(ip) = ctx.client_ip else {
            tracing::debug!("ip-restriction rejected a client of unknown address");
            return self.reject(ctx);
        };
        if self.permits(ip) {
            return Flow::Continue;
        }
        tracing::debug!(client_ip = %ip, "ip-restriction rejected the client");
        self.reject(ctx)
    }
}

impl IpRestriction {
    fn reject(&self, ctx: &Ctx) -> Flow {
        let mut problem = Problem::new(ProblemType::Plugin(&IP_FORBIDDEN)).status(self.status);
        if let Some(message) = &self.message {
            problem = problem.detail(message.clone());
        }
        config::reject(ctx, problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use serde_json::json;

    async fn check(config: serde_json::Value, ip: &str) -> Flow {
        let plugin = build(&FACTORY, config).unwrap();
        let mut ctx = ctx();
        ctx.client_ip = ip.parse().ok();
        plugin.access(&mut ctx, &mut request("GET", "/")).await
    }

    #[tokio::test]
    async fn allow_list_admits_members_only() {
        let cfg = json!({"allow": ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]});
        assert!(continues(&check(cfg.clone(), "10.20.30.40").await));
        assert!(continues(&check(cfg.clone(), "192.168.1.7").await));
        assert!(continues(&check(cfg.clone(), "2001:db8:1::5").await));
        let (status, doc, _) = problem(check(cfg.clone(), "192.168.1.8").await).await;
        assert_eq!(status, 403);
        assert_eq!(doc["type"], "urn:gatehouse:problem:ip-forbidden");
        assert_eq!(doc["request_id"], "rid-1");
        assert!(doc.get("detail").is_none());
        assert!(!continues(&check(cfg, "2001:db9::1").await));
    }

    #[tokio::test]
    async fn an_unknown_client_is_refused_by_allow_and_deny_lists() {
        // `check` leaves `client_ip` at `None` when the text is no address.
        for cfg in [
            json!({"allow": ["0.0.0.0/0", "::/0"]}),
            json!({"deny": ["192.0.2.0/24"]}),
            json!({"allow": ["10.0.0.0/8"], "deny": ["10.9.0.0/16"]}),
        ] {
            let (status, doc, _) = problem(check(cfg.clone(), "unknown").await).await;
            assert_eq!(status, 403, "{cfg}");
            assert_eq!(doc["type"], "urn:gatehouse:problem:ip-forbidden", "{cfg}");
        }
    }

    #[tokio::test]
    async fn deny_wins_over_allow() {
        let cfg = json!({"allow": ["10.0.0.0/8"], "deny": ["10.1.0.0/16"]});
        assert!(continues(&check(cfg.clone(), "10.2.0.1").await));
        assert!(!continues(&check(cfg, "10.1.2.3").await));
    }

    #[tokio::test]
    async fn deny_only_admits_everyone_else() {
        let cfg = json!({"deny": ["::1", "203.0.113.0/24"]});
        assert!(!continues(&check(cfg.clone(), "::1").await));
        assert!(!continues(&check(cfg.clone(), "203.0.113.99").await));
        assert!(continues(&check(cfg.clone(), "::2").await));
        assert!(continues(&check(cfg, "198.51.100.1").await));
    }

    #[tokio::test]
    async fn ipv4_mapped_ipv6_clients_match_ipv4_rules() {
        let cfg = json!({"deny": ["203.0.113.0/24"]});
        assert!(!continues(&check(cfg, "::ffff:203.0.113.5").await));
    }

    #[tokio::test]
    async fn status_and_message_are_configurable() {
        let cfg = json!({"deny": ["0.0.0.0/0", "::/0"], "status": 451, "message": "Not from here"});
        let (status, doc, _) = problem(check(cfg.clone(), "1.2.3.4").await).await;
        assert_eq!(status, 451);
        assert_eq!(doc["status"], 451);
        assert_eq!(doc["detail"], "Not from here");
        assert!(!continues(&check(cfg, "fe80::1").await));
    }

    #[test]
    fn ranges_are_merged_and_searched() {
        let set = IpSet::parse(
            "allow",
            &[
                "10.0.0.0/25".into(),
                "10.0.0.128/25".into(),
                "10.0.0.5".into(),
                "10.0.2.0/24".into(),
                "255.255.255.255".into(),
                "10.0.0.1/8".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            set.v4,
            [
                (
                    u32::from_be_bytes([10, 0, 0, 0]),
                    u32::from_be_bytes([10, 255, 255, 255])
                ),
                (u32::MAX, u32::MAX)
            ]
        );
        assert!(set.contains("255.255.255.255".parse().unwrap()));
        assert!(!set.contains("11.0.0.0".parse().unwrap()));
        assert!(!set.contains("9.255.255.255".parse().unwrap()));
        let adjacent = IpSet::parse("a", &["10.0.0.0/25".into(), "10.0.0.128/25".into()]).unwrap();
        assert_eq!(adjacent.v4.len(), 1);
    }

    #[test]
    fn large_lists_build_and_answer() {
        let list: Vec<String> = (0..20_000u32)
            .map(|i| format!("{}.{}.{}.0/24", 10 + i / 65_536, (i / 256) % 256, i % 256))
            .collect();
        let set = IpSet::parse("deny", &list).unwrap();
        assert!(set.contains("10.78.31.200".parse().unwrap()));
        assert!(!set.contains("11.0.0.1".parse().unwrap()));
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (json!({}), ""),
            (serde_json::Value::Null, ""),
            (json!({"allow": [], "deny": []}), ""),
            (json!({"allow": ["10.0.0.0/8", "10.0.0.300"]}), "allow[1]"),
            (json!({"deny": ["2001:db8::/129"]}), "deny[0]"),
            (json!({"allow": ["10.0.0.0/8"], "status": 200}), "status"),
            (json!({"allow": ["10.0.0.0/8"], "status": "403"}), "status"),
            (json!({"allow": "10.0.0.0/8"}), "allow"),
            (json!({"allow": [1]}), "allow[0]"),
        ];
        for (cfg, path) in cases {
            let err = build_err(&FACTORY, cfg.clone());
            assert_eq!(err.path, path, "{cfg}: {}", err.message);
        }
        let err = build_err(&FACTORY, json!({"allow": ["nope"]}));
        assert!(
            err.message.contains("expected an IP address or CIDR"),
            "{}",
            err.message
        );
    }
}
