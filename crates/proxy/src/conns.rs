//! Connection admission: the global cap (`server.max_connections`) and the
//! per-client-address cap (`server.max_connections_per_ip`), checked when a
//! connection is accepted and released when it closes. The global count is
//! one atomic; the per-address counts live in a sharded map touched only at
//! accept and close, never per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Descriptors kept out of the derived `max_connections`: the admin API's
/// own cap (256) plus files, the store, DNS sockets and listeners.
const RESERVED_FDS: u64 = 320;
/// Bounds of the derived `max_connections`.
const DERIVED_MIN: usize = 64;
const DERIVED_MAX: usize = 10_000;
const SHARDS: usize = 16;

/// How one client address is counted: IPv4 (and IPv4-mapped IPv6) per
/// address, IPv6 per /64, the block one host is usually given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    V4(u32),
    V6(u64),
}

impl Key {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Key::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Key::V4(u32::from(v4)),
                None => Key::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }

    fn shard(self) -> usize {
        let h = match self {
            Key::V4(a) => u64::from(a),
            Key::V6(p) => p ^ (p >> 29),
        };
        // Fibonacci hashing: the top bits of the product pick the shard.
        (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % SHARDS
    }
}

/// The caps in force for one accept (read from the current snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Most connections over all listeners.
    pub max: usize,
    /// Most connections per client address; 0: no per-address cap.
    pub per_ip: usize,
}

impl Caps {
    /// Resolves the configured values: `max_connections` absent → derived
    /// from the open-file limit; `max_connections_per_ip` absent → a
    /// quarter of the global cap (at least 1).
    pub fn resolve(max: Option<usize>, per_ip: Option<usize>) -> Self {
        let max = max.unwrap_or_else(derived_max_connections);
        let per_ip = per_ip.unwrap_or((max / 4).max(1));
        Self { max, per_ip }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections` reached.
    Total,
    /// `max_connections_per_ip` reached for this address.
    PerIp,
}

/// Open connections, counted for admission.
#[derive(Debug)]
pub struct Conns {
    total: AtomicUsize,
    shards: [Mutex<HashMap<Key, usize>>; SHARDS],
}

impl Default for Conns {
    fn default() -> Self {
        Self {
            total: AtomicUsize::new(0),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }
}

/// One admitted connection; dropping it releases its counts.
#[derive(Debug)]
pub struct Ticket {
    conns: Arc<Conns>,
    key: Option<Key>,
}

impl Conns {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Admits a connection from `ip` under `caps`; `exempt` peers (trusted
    /// proxies) are not held to the per-address cap.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        caps: Caps,
        exempt: bool,
    ) -> Result<Ticket, Refused> {
        let before = self.total.fetch_add(1, Ordering::AcqRel);
        if before >= caps.max {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Total);
        }
        let mut ticket = Ticket {
            conns: self.clone(),
            key: None,
        };
        if caps.per_ip == 0 || exempt {
            return Ok(ticket);
        }
        let key = Key::of(ip);
        let mut shard = lock(&self.shards[key.shard()]);
        let n = shard.entry(key).or_insert(0);
        if *n >= caps.per_ip {
            drop(shard);
            // Dropping the ticket (no key yet) gives the global slot back.
            drop(ticket);
            return Err(Refused::PerIp);
        }
        *n += 1;
        drop(shard);
        ticket.key = Some(key);
        Ok(ticket)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut shard = lock(&self.conns.shards[key.shard()]);
            if let Some(n) = shard.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    shard.remove(&key);
                }
            }
        }
        self.conns.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The map only holds counters; a panic elsewhere cannot leave it
/// half-updated, so a poisoned lock is used as it is.
fn lock(m: &Mutex<HashMap<Key, usize>>) -> std::sync::MutexGuard<'_, HashMap<Key, usize>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `max_connections` when the config leaves it out: half of the soft
/// open-file limit left after [`RESERVED_FDS`] (a proxied connection may
/// hold an upstream connection too), between 64 and 10000.
pub fn derived_max_connections() -> usize {
    static DERIVED: OnceLock<usize> = OnceLock::new();
    *DERIVED.get_or_init(|| {
        let nofile = soft_nofile().unwrap_or(1024);
        let n = usize::try_from(nofile.saturating_sub(RESERVED_FDS) / 2).unwrap_or(DERIVED_MAX);
        n.clamp(DERIVED_MIN, DERIVED_MAX)
    })
}

/// The soft `RLIMIT_NOFILE` from /proc/self/limits (Linux); `None`
/// elsewhere or when unreadable ("unlimited" counts as no limit).
fn soft_nofile() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_nofile(&text)
}

fn parse_nofile(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        return Some(u64::MAX);
    }
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("bad ip {s}"))
    }

    #[test]
    fn the_global_cap_refuses_the_next_connection_and_frees_on_close() {
        let conns = Arc::new(Conns::default());
        let caps = Caps { max: 2, per_ip: 0 };
        let a = conns.admit(ip("10.0.0.1"), caps, false);
        let b = conns.admit(ip("10.0.0.2"), caps, false);
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(
            conns.admit(ip("10.0.0.3"), caps, false).err(),
            Some(Refused::Total)
        );
        assert_eq!(conns.open(), 2);
        drop(a);
        assert!(conns.admit(ip("10.0.0.3"), caps, false).is_ok());
        assert_eq!(conns.open(), 1, "the ticket above was dropped at once");
    }

    #[test]
    fn the_per_address_cap_counts_addresses_as_documented() {
        // (first, second, whether the second counts against the first's cap of 1)
        let cases = [
            ("10.0.0.1", "10.0.0.1", true),
            ("10.0.0.1", "10.0.0.2", false),
            ("10.0.0.1", "::ffff:10.0.0.1", true),
            ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true),
            ("2001:db8:1:2::1", "2001:db8:1:3::1", false),
            ("::1", "127.0.0.1", false),
        ];
        for (first, second, shared) in cases {
            let conns = Arc::new(Conns::default());
            let caps = Caps { max: 10, per_ip: 1 };
            let _held = conns.admit(ip(first), caps, false).unwrap();
            let got = conns.admit(ip(second), caps, false);
            assert_eq!(got.is_err(), shared, "{first} then {second}");
            if shared {
                assert_eq!(got.err(), Some(Refused::PerIp));
                assert_eq!(
                    conns.open(),
                    1,
                    "{first} then {second}: global slot given back"
                );
                assert!(
                    conns.admit(ip(second), caps, true).is_ok(),
                    "{second}: exempt peers skip the per-address cap"
                );
            }
        }
    }

    #[test]
    fn counts_go_back_to_zero() {
        let conns = Arc::new(Conns::default());
        let caps = Caps {
            max: 100,
            per_ip: 3,
        };
        let tickets: Vec<_> = (0..3)
            .map(|_| conns.admit(ip("192.0.2.7"), caps, false).unwrap())
            .collect();
        assert!(conns.admit(ip("192.0.2.7"), caps, false).is_err());
        drop(tickets);
        assert_eq!(conns.open(), 0);
        assert!(conns.shards.iter().all(|s| lock(s).is_empty()));
    }

    #[test]
    fn resolves_defaults() {
        let check = |max, per_ip, expect: Caps| {
            assert_eq!(Caps::resolve(max, per_ip), expect, "{max:?} {per_ip:?}");
        };
        check(
            Some(100),
            None,
            Caps {
                max: 100,
                per_ip: 25,
            },
        );
        check(Some(2), None, Caps { max: 2, per_ip: 1 });
        check(
            Some(100),
            Some(0),
            Caps {
                max: 100,
                per_ip: 0,
            },
        );
        check(
            Some(100),
            Some(7),
            Caps {
                max: 100,
                per_ip: 7,
            },
        );
        let derived = Caps::resolve(None, None);
        assert!((DERIVED_MIN..=DERIVED_MAX).contains(&derived.max));
        assert_eq!(derived.per_ip, derived.max / 4);
    }

    #[test]
    fn parses_the_open_file_limit() {
        let check =
            |text: &str, expect: Option<u64>| assert_eq!(parse_nofile(text), expect, "{text}");
        check(
            "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 1048576              files\n",
            Some(1024),
        );
        check(
            "Max open files            unlimited            unlimited            files\n",
            Some(u64::MAX),
        );
        check(
            "Max processes             63448                63448                processes\n",
            None,
        );
    }
}
