//! The metrics facade: labelled counters, gauges and histograms that
//! plugins register when they are built, and the Prometheus text rendering
//! an exporter serves.
//!
//! Registration (name, help, label values) takes a lock and happens at
//! build time; the handles it returns ([`Counter`], [`Gauge`],
//! [`Histogram`]) are atomics, so recording on the request path is one or
//! two atomic operations and never locks. The registry lives in the
//! gateway's [`crate::resources::Resources`] ([`crate::Resources::metrics`])
//! and is kept across reloads: a counter of a plugin whose snapshot is
//! replaced keeps its value, and the next build resolves the same handle.
//!
//! ```
//! use gatehouse_core::metrics::Metrics;
//! let metrics = Metrics::default();
//! let hits = metrics
//!     .counter("gatehouse_cache_hits_total", "Cache hits.", &[("route", "orders")])
//!     .unwrap();
//! hits.inc();
//! assert!(metrics.render_prometheus().contains("gatehouse_cache_hits_total{route=\"orders\"} 1\n"));
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Default histogram buckets, in seconds (request durations).
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Why a metric could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    /// The metric name is not `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("`{0}` is not a valid metric name")]
    BadName(String),
    /// A label name is not `[a-zA-Z_][a-zA-Z0-9_]*` or starts with `__`.
    #[error("`{0}` is not a valid label name")]
    BadLabel(String),
    /// The name is registered with another type, help or label names.
    #[error("metric `{name}` is already registered as {existing}")]
    Conflict {
        /// The metric name.
        name: String,
        /// What it was registered as.
        existing: String,
    },
    /// Histogram bounds must be finite and strictly increasing.
    #[error("histogram `{0}`: bucket bounds must be finite and strictly increasing")]
    BadBuckets(String),
}

/// A monotonic counter. Cheap to clone; clones count together.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Adds `n` (may be negative).
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.add(-1);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct HistogramCore {
    bounds: Arc<[f64]>,
    /// Per bucket (not cumulative), plus one for `+Inf`.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// The sum as `f64` bits.
    sum: AtomicU64,
}

/// A distribution over fixed buckets. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistogramCore>);

impl Histogram {
    fn new(bounds: Arc<[f64]>) -> Self {
        let buckets = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self(Arc::new(HistogramCore {
            bounds,
            buckets,
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }))
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let core = &*self.0;
        let i = core.bounds.partition_point(|b| *b < v);
        core.buckets[i].fetch_add(1, Ordering::Relaxed);
        let mut old = core.sum.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(old) + v).to_bits();
            match core
                .sum
                .compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(seen) => old = seen,
            }
        }
        core.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a duration in seconds.
    pub fn observe_duration(&self, d: std::time::Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }

    /// Sum of the observations.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.0.sum.load(Ordering::Relaxed))
    }

    /// Cumulative counts per bound (`le`), the last one for `+Inf`.
    pub fn cumulative(&self) -> Vec<u64> {
        let mut total = 0;
        self.0
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Debug)]
enum Series {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

#[derive(Debug)]
struct Family {
    help: String,
    kind: Kind,
    labels: Vec<String>,
    bounds: Option<Arc<[f64]>>,
    series: BTreeMap<Vec<String>, Series>,
}

/// The registry of metric families.
#[derive(Debug, Default)]
pub struct Metrics {
    families: Mutex<BTreeMap<String, Family>>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Family>> {
        match self.families.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn series(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        bounds: Option<&[f64]>,
        labels: &[(&str, &str)],
        make: impl FnOnce(Option<Arc<[f64]>>) -> Series,
    ) -> Result<Series, MetricError> {
        if !valid_name(name) {
            return Err(MetricError::BadName(name.into()));
        }
        if let Some(bad) = labels.iter().find(|(l, _)| !valid_label(l) || *l == "le") {
            return Err(MetricError::BadLabel(bad.0.into()));
        }
        if let Some(b) = bounds
            && (b.iter().any(|x| !x.is_finite()) || b.windows(2).any(|w| w[0] >= w[1]))
        {
            return Err(MetricError::BadBuckets(name.into()));
        }
        let names: Vec<String> = labels.iter().map(|(l, _)| (*l).to_string()).collect();
        let values: Vec<String> = labels.iter().map(|(_, v)| (*v).to_string()).collect();
        let mut families = self.lock();
        let family = families.entry(name.to_string()).or_insert_with(|| Family {
            help: help.to_string(),
            kind,
            labels: names.clone(),
            bounds: bounds.map(Arc::from),
            series: BTreeMap::new(),
        });
        let same_bounds = match (&family.bounds, bounds) {
            (Some(a), Some(b)) => **a == *b,
            (None, None) => true,
            _ => false,
        };
        if family.kind != kind || family.labels != names || family.help != help || !same_bounds {
            return Err(MetricError::Conflict {
                name: name.into(),
                existing: format!("a {} with labels {:?}", family.kind.as_str(), family.labels),
            });
        }
        let bounds = family.bounds.clone();
        let series = family.series.entry(values).or_insert_with(|| make(bounds));
        Ok(match series {
            Series::Counter(c) => Series::Counter(c.clone()),
            Series::Gauge(g) => Series::Gauge(g.clone()),
            Series::Histogram(h) => Series::Histogram(h.clone()),
        })
    }

    /// The counter `name` with these label values (the label names must be
    /// the same, in the same order, every time `name` is registered).
    pub fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<Counter, MetricError> {
        match self.series(name, help, Kind::Counter, None, labels, |_| {
            Series::Counter(Counter::default())
        })? {
            Series::Counter(c) => Ok(c),
            _ => unreachable!("kind checked above"),
        }
    }

    /// The gauge `name` with these label values.
    pub fn gauge(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<Gauge, MetricError> {
        match self.series(name, help, Kind::Gauge, None, labels, |_| {
            Series::Gauge(Gauge::default())
        })? {
            Series::Gauge(g) => Ok(g),
            _ => unreachable!("kind checked above"),
        }
    }

    /// The histogram `name` with these bucket bounds (upper bounds, finite,
    /// increasing; `+Inf` is implied) and label values.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[(&str, &str)],
    ) -> Result<Histogram, MetricError> {
        match self.series(name, help, Kind::Histogram, Some(buckets), labels, |b| {
            Series::Histogram(Histogram::new(b.unwrap_or_else(|| Arc::from(buckets))))
        })? {
            Series::Histogram(h) => Ok(h),
            _ => unreachable!("kind checked above"),
        }
    }

    /// The Prometheus text exposition format (version 0.0.4) of every
    /// family, sorted by name, then by label values.
    pub fn render_prometheus(&self) -> String {
        let families = self.lock();
        let mut out = String::new();
        for (name, family) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&family.help));
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_str());
            for (values, series) in &family.series {
                let labels = render_labels(&family.labels, values, None);
                match series {
                    Series::Counter(c) => {
                        let _ = writeln!(out, "{name}{labels} {}", c.get());
                    }
                    Series::Gauge(g) => {
                        let _ = writeln!(out, "{name}{labels} {}", g.get());
                    }
                    Series::Histogram(h) => {
                        let cumulative = h.cumulative();
                        let les =
                            h.0.bounds
                                .iter()
                                .map(|b| float(*b))
                                .chain(std::iter::once("+Inf".to_string()));
                        for (le, n) in les.zip(cumulative) {
                            let labels = render_labels(&family.labels, values, Some(&le));
                            let _ = writeln!(out, "{name}_bucket{labels} {n}");
                        }
                        let _ = writeln!(out, "{name}_sum{labels} {}", float(h.sum()));
                        let _ = writeln!(out, "{name}_count{labels} {}", h.count());
                    }
                }
            }
        }
        out
    }
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render_labels(names: &[String], values: &[String], le: Option<&str>) -> String {
    if names.is_empty() && le.is_none() {
        return String::new();
    }
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape_value(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    format!("{{{}}}", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_kind_in_prometheus_text_format() {
        let m = Metrics::default();
        let a = m
            .counter("req_total", "Requests.", &[("route", "a"), ("code", "200")])
            .unwrap();
        let b = m
            .counter("req_total", "Requests.", &[("route", "b"), ("code", "500")])
            .unwrap();
        a.add(3);
        b.inc();
        let g = m.gauge("in_flight", "In flight.\nNow.", &[]).unwrap();
        g.set(7);
        g.dec();
        let h = m
            .histogram(
                "latency_seconds",
                "Latency.",
                &[0.1, 1.0],
                &[("route", "a")],
            )
            .unwrap();
        h.observe(0.05);
        h.observe(0.1);
        h.observe(0.5);
        h.observe(3.0);
        let text = m.render_prometheus();
        let want = "\
# HELP in_flight In flight.\\nNow.
# TYPE in_flight gauge
in_flight 6
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{route=\"a\",le=\"0.1\"} 2
latency_seconds_bucket{route=\"a\",le=\"1\"} 3
latency_seconds_bucket{route=\"a\",le=\"+Inf\"} 4
latency_seconds_sum{route=\"a\"} 3.65
latency_seconds_count{route=\"a\"} 4
# HELP req_total Requests.
# TYPE req_total counter
req_total{route=\"a\",code=\"200\"} 3
req_total{route=\"b\",code=\"500\"} 1
";
        assert_eq!(text, want);
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.counter("x", "h", &[("v", "a\"b\\c\nd")]).unwrap().inc();
        assert!(
            m.render_prometheus()
                .contains("x{v=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{}",
            m.render_prometheus()
        );
    }

    #[test]
    fn the_same_series_resolves_to_the_same_handle() {
        let m = Metrics::default();
        let a = m.counter("c", "h", &[("k", "v")]).unwrap();
        let b = m.counter("c", "h", &[("k", "v")]).unwrap();
        a.inc();
        b.inc();
        assert_eq!(a.get(), 2);
        let h1 = m.histogram("h", "h", DEFAULT_BUCKETS, &[]).unwrap();
        let h2 = m.histogram("h", "h", DEFAULT_BUCKETS, &[]).unwrap();
        h1.observe_duration(std::time::Duration::from_millis(3));
        assert_eq!(h2.count(), 1);
    }

    #[test]
    fn bad_registrations_are_refused() {
        fn check(result: Result<Counter, MetricError>, want: &str) {
            match result {
                Ok(_) => panic!("expected {want}"),
                Err(e) => assert!(e.to_string().contains(want), "{e}"),
            }
        }
        let m = Metrics::default();
        m.counter("taken", "h", &[("a", "1")]).unwrap();
        check(m.counter("1bad", "h", &[]), "not a valid metric name");
        check(m.counter("bad-name", "h", &[]), "not a valid metric name");
        check(m.counter("", "h", &[]), "not a valid metric name");
        check(
            m.counter("ok", "h", &[("bad-label", "x")]),
            "not a valid label",
        );
        check(
            m.counter("ok", "h", &[("__reserved", "x")]),
            "not a valid label",
        );
        check(m.counter("ok", "h", &[("le", "x")]), "not a valid label");
        check(m.counter("taken", "h", &[("b", "1")]), "already registered");
        check(
            m.counter("taken", "other help", &[("a", "1")]),
            "already registered",
        );
        assert!(matches!(
            m.gauge("taken", "h", &[("a", "1")]),
            Err(MetricError::Conflict { .. })
        ));
        for bounds in [&[1.0, 1.0][..], &[2.0, 1.0], &[f64::NAN], &[f64::INFINITY]] {
            assert!(matches!(
                m.histogram("hist", "h", bounds, &[]),
                Err(MetricError::BadBuckets(_))
            ));
        }
        m.histogram("hist", "h", &[1.0], &[]).unwrap();
        assert!(m.histogram("hist", "h", &[2.0], &[]).is_err());
    }

    #[test]
    fn concurrent_recording_loses_nothing() {
        let m = Arc::new(Metrics::default());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    // Resolving concurrently yields one series per labels.
                    let c = m.counter("c", "h", &[("t", if t % 2 == 0 { "even" } else { "odd" })]);
                    let c = c.unwrap_or_else(|e| panic!("{e}"));
                    let g = m.gauge("g", "h", &[]).unwrap_or_else(|e| panic!("{e}"));
                    let h = m
                        .histogram("h", "h", &[0.5], &[])
                        .unwrap_or_else(|e| panic!("{e}"));
                    for i in 0..10_000 {
                        c.inc();
                        g.inc();
                        g.dec();
                        h.observe(if i % 2 == 0 { 0.25 } else { 1.0 });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let even = m.counter("c", "h", &[("t", "even")]).unwrap();
        let odd = m.counter("c", "h", &[("t", "odd")]).unwrap();
        assert_eq!(even.get() + odd.get(), 80_000);
        assert_eq!(m.gauge("g", "h", &[]).unwrap().get(), 0);
        let h = m.histogram("h", "h", &[0.5], &[]).unwrap();
        assert_eq!(h.count(), 80_000);
        assert_eq!(h.cumulative(), vec![40_000, 80_000]);
        assert!((h.sum() - 50_000.0).abs() < 1e-6);
    }
}
