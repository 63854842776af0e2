//! Long-lived resources: what outlives a snapshot (docs/plugins/AUTHORING.md,
//! "State and lifecycle").
//!
//! A running gateway owns one [`Resources`]. Every compile (start, reload,
//! a store-backed node's sync) gets a *build view* of it
//! ([`Resources::build`]) that records which entries the new snapshot asks
//! for. Plugins reach it through [`BuildCx`] while they are built:
//!
//! - [`BuildCx::state`]: per (plugin, [`Scope`], type, compat key) state
//!   that the next compile finds again, so a counter keeps counting across
//!   reloads while the plugin's config (the part it passes as `compat`)
//!   stays the same;
//! - [`Resources::shared`]: shared by key across plugins and scopes (a
//!   Redis pool by URL, the metrics registry);
//! - [`Resources::background`]: a task that starts when the snapshot that
//!   asked for it is swapped in (never while compiling, so never in
//!   `gatehouse validate`), keeps running while later snapshots ask for it
//!   under the same key, and is told to stop (its [`Shutdown`] fires) when
//!   a swapped-in snapshot no longer asks for it or the gateway stops.
//!
//! After each successful swap the gateway calls [`Resources::commit`] with
//! the build view of the new snapshot: entries it did not ask for are
//! dropped (snapshots still serving requests keep the `Arc`s they hold).
//! Compiling never touches the network and never starts anything
//! (invariant 9): a failed compile leaves no running task behind.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::env::BuildEnv;
use crate::metrics::Metrics;

/// The future a background task runs.
pub type TaskFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Makes a background task's future from its stop signal.
pub type TaskFn = Box<dyn FnOnce(Shutdown) -> TaskFuture + Send + 'static>;

/// The key of the metrics registry among the shared entries.
const METRICS_KEY: &str = "gatehouse.metrics";

/// Where a plugin is attached: its stable identity across reloads.
///
/// Names are those of the assembled configuration, so entities of a
/// workspace other than `default` carry their `workspace/name` spelling
/// (`service:acme/orders`). Global plugins are `global` in every
/// workspace: one config entry, one state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// The top-level `plugins` list.
    Global,
    /// A service's `plugins`.
    Service(Arc<str>),
    /// A route's `plugins`.
    Route(Arc<str>),
    /// A plan's `plugins`.
    Plan(Arc<str>),
    /// A consumer's `plugins`.
    Consumer(Arc<str>),
    /// Anything else a caller needs a scope for (tests, tools).
    Other(Arc<str>),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Global => f.write_str("global"),
            Self::Service(n) => write!(f, "service:{n}"),
            Self::Route(n) => write!(f, "route:{n}"),
            Self::Plan(n) => write!(f, "plan:{n}"),
            Self::Consumer(n) => write!(f, "consumer:{n}"),
            Self::Other(n) => write!(f, "other:{n}"),
        }
    }
}

/// The stop signal handed to a background task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: tokio::sync::watch::Receiver<bool>,
}

impl Shutdown {
    /// Whether the task was told to stop.
    pub fn is_stopped(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when the task is told to stop (at once if it already was).
    /// Use it in a `select!` with the task's work.
    pub async fn stopped(&mut self) {
        // An error means the sender is gone, which also means stop.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// The sending half of a [`Shutdown`].
#[derive(Debug)]
struct Trigger(tokio::sync::watch::Sender<bool>);

impl Trigger {
    fn new() -> (Self, Shutdown) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (Self(tx), Shutdown { rx })
    }

    fn fire(&self) {
        let _ = self.0.send(true);
    }
}

/// What identifies an entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// [`BuildCx::state`]: plugin, scope, compat key, type.
    State {
        plugin: Arc<str>,
        scope: Scope,
        compat: Arc<str>,
        ty: TypeId,
    },
    /// [`Resources::shared`]: key and type.
    Shared { key: Arc<str>, ty: TypeId },
}

type Value = Arc<dyn Any + Send + Sync>;

#[derive(Default)]
struct Inner {
    /// State and shared entries. Entries asked for through the root
    /// handle (not a build view) are pinned: never dropped by a commit.
    entries: Mutex<Entries>,
    /// Running background tasks by key.
    running: Mutex<HashMap<Arc<str>, Trigger>>,
    /// Whether this registry may start tasks at all (false for
    /// [`Resources::detached`]).
    detached: bool,
}

#[derive(Default)]
struct Entries {
    values: HashMap<Key, Value>,
    pinned: HashSet<Key>,
}

/// What one build view asked for.
#[derive(Default)]
struct Claims {
    keys: HashSet<Key>,
    tasks: Vec<(Arc<str>, TaskFn)>,
}

/// The long-lived resources of a gateway; a cheap handle (clone freely).
///
/// The handle the gateway owns is the *root*; [`Resources::build`] gives the
/// view a compile passes to plugins. Both reach the same entries.
#[derive(Clone, Default)]
pub struct Resources {
    inner: Arc<Inner>,
    /// `Some` for a build view: what this compile asked for.
    claims: Option<Arc<Mutex<Claims>>>,
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resources")
            .field("entries", &lock(&self.inner.entries).values.len())
            .field("running", &lock(&self.inner.running).len())
            .field("detached", &self.inner.detached)
            .field("build_view", &self.claims.is_some())
            .finish()
    }
}

/// Locks a mutex, carrying on after a panic elsewhere (every update here
/// leaves the maps consistent).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Resources {
    /// The resources of a running gateway.
    pub fn new() -> Self {
        Self::default()
    }

    /// Throwaway resources for checking a configuration (`gatehouse
    /// validate`, the admin API's write check): state and shared entries
    /// are made fresh and dropped with it, and no background task ever
    /// starts.
    pub fn detached() -> Self {
        Self {
            inner: Arc::new(Inner {
                detached: true,
                ..Inner::default()
            }),
            claims: None,
        }
    }

    /// Whether these are [`Resources::detached`] ones.
    pub fn is_detached(&self) -> bool {
        self.inner.detached
    }

    /// A view for one compile: reaches the same entries and records what
    /// the compile asks for, for [`Resources::commit`].
    pub fn build(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            claims: Some(Arc::default()),
        }
    }

    fn get_or_init<T: Any + Send + Sync>(&self, key: Key, init: impl FnOnce() -> T) -> Arc<T> {
        let value = {
            let mut entries = lock(&self.inner.entries);
            if self.claims.is_none() {
                entries.pinned.insert(key.clone());
            }
            match entries.values.get(&key) {
                Some(v) => Arc::clone(v),
                None => {
                    let v: Value = Arc::new(init());
                    entries.values.insert(key.clone(), Arc::clone(&v));
                    v
                }
            }
        };
        if let Some(claims) = &self.claims {
            lock(claims).keys.insert(key);
        }
        match value.downcast::<T>() {
            Ok(v) => v,
            // The key holds the type id: another type is never stored
            // under it.
            Err(_) => unreachable!("resource entry of the wrong type"),
        }
    }

    /// The entry shared under `key` (by every plugin and scope that asks
    /// for the same key and type), made with `init` the first time.
    /// Put what the value depends on into the key (a pool's URL).
    pub fn shared<T: Any + Send + Sync>(&self, key: &str, init: impl FnOnce() -> T) -> Arc<T> {
        self.get_or_init(
            Key::Shared {
                key: key.into(),
                ty: TypeId::of::<T>(),
            },
            init,
        )
    }

    /// The gateway's metrics registry (one per gateway, kept across
    /// reloads; never dropped).
    pub fn metrics(&self) -> Arc<Metrics> {
        let key = Key::Shared {
            key: METRICS_KEY.into(),
            ty: TypeId::of::<Metrics>(),
        };
        let metrics = self.get_or_init(key.clone(), Metrics::default);
        lock(&self.inner.entries).pinned.insert(key);
        metrics
    }

    /// Asks for a background task under `key`. Nothing starts now: the
    /// task starts when the snapshot whose compile asked for it is swapped
    /// in, unless a task under the same key is already running (then that
    /// one goes on and `task` is dropped unused). It is told to stop when a
    /// swapped-in snapshot no longer asks for `key`, or when the gateway
    /// stops. Through the root handle or detached resources the request
    /// is ignored.
    pub fn background<F>(&self, key: &str, task: F)
    where
        F: FnOnce(Shutdown) -> TaskFuture + Send + 'static,
    {
        if let Some(claims) = &self.claims {
            lock(claims).tasks.push((key.into(), Box::new(task)));
        }
    }

    /// Makes the build view `build` current, after its snapshot was swapped
    /// in: drops the entries it did not ask for (pinned ones stay), tells
    /// the running tasks it did not ask for to stop, and returns the tasks
    /// to start, which the caller spawns on its runtime. A view of other
    /// resources, or any view of detached ones, changes nothing.
    #[must_use = "the returned tasks must be spawned"]
    pub fn commit(&self, build: &Resources) -> Vec<(Arc<str>, TaskFuture)> {
        let Some(claims) = &build.claims else {
            return Vec::new();
        };
        if self.inner.detached || !Arc::ptr_eq(&self.inner, &build.inner) {
            return Vec::new();
        }
        let claims = std::mem::take(&mut *lock(claims));
        {
            let mut entries = lock(&self.inner.entries);
            let Entries { values, pinned } = &mut *entries;
            values.retain(|k, _| claims.keys.contains(k) || pinned.contains(k));
        }
        let mut running = lock(&self.inner.running);
        let wanted: HashSet<&Arc<str>> = claims.tasks.iter().map(|(k, _)| k).collect();
        running.retain(|key, trigger| {
            let keep = wanted.contains(key);
            if !keep {
                trigger.fire();
            }
            keep
        });
        let mut start = Vec::new();
        for (key, task) in claims.tasks {
            if running.contains_key(&key) {
                continue;
            }
            let (trigger, shutdown) = Trigger::new();
            running.insert(Arc::clone(&key), trigger);
            start.push((key, task(shutdown)));
        }
        start
    }

    /// Tells every running background task to stop (gateway shutdown).
    pub fn stop_all(&self) {
        for (_, trigger) in lock(&self.inner.running).drain() {
            trigger.fire();
        }
    }

    /// Keys of the running background tasks, sorted (for tests and logs).
    pub fn running_tasks(&self) -> Vec<Arc<str>> {
        let mut keys: Vec<_> = lock(&self.inner.running).keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Number of state and shared entries held (for tests and logs).
    pub fn len(&self) -> usize {
        lock(&self.inner.entries).values.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a factory gets besides its config when it builds an instance.
#[derive(Debug, Clone, Copy)]
pub struct BuildCx<'a> {
    /// The registry name of the plugin being built.
    pub plugin: &'a str,
    /// Per-workspace data (consumers, credential indexes).
    pub env: &'a BuildEnv,
    /// Where this instance is attached.
    pub scope: &'a Scope,
    /// The gateway's long-lived resources (a build view).
    pub resources: &'a Resources,
}

impl<'a> BuildCx<'a> {
    /// A context for building `plugin` at `scope`.
    pub fn new(
        plugin: &'a str,
        env: &'a BuildEnv,
        scope: &'a Scope,
        resources: &'a Resources,
    ) -> Self {
        Self {
            plugin,
            env,
            scope,
            resources,
        }
    }

    /// This instance's state: the same `Arc` for every compile that builds
    /// this plugin at this scope with the same `compat` key and type `T`,
    /// so it survives reloads. Pass as `compat` the part of the config
    /// the state depends on (a limit's window, a cache's size): same
    /// config, same state; an incompatible change, new state (`init` runs
    /// again). Pass `""` when any config may keep the state.
    pub fn state<T: Any + Send + Sync>(&self, compat: &str, init: impl FnOnce() -> T) -> Arc<T> {
        self.resources.get_or_init(
            Key::State {
                plugin: self.plugin.into(),
                scope: self.scope.clone(),
                compat: compat.into(),
                ty: TypeId::of::<T>(),
            },
            init,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn cx<'a>(
        plugin: &'a str,
        env: &'a BuildEnv,
        scope: &'a Scope,
        res: &'a Resources,
    ) -> BuildCx<'a> {
        BuildCx::new(plugin, env, scope, res)
    }

    #[test]
    fn scopes_render_stable_names() {
        fn check(scope: Scope, want: &str) {
            assert_eq!(scope.to_string(), want);
        }
        check(Scope::Global, "global");
        check(Scope::Service("acme/orders".into()), "service:acme/orders");
        check(Scope::Route("r".into()), "route:r");
        check(Scope::Plan("acme/gold".into()), "plan:acme/gold");
        check(Scope::Consumer("alice".into()), "consumer:alice");
    }

    #[test]
    fn state_survives_compiles_that_ask_for_it() {
        let root = Resources::new();
        let env = BuildEnv::default();
        let scope = Scope::Route("r".into());
        let b1 = root.build();
        let s1 = cx("count", &env, &scope, &b1).state("", || AtomicU64::new(0));
        s1.fetch_add(5, Ordering::Relaxed);
        assert!(root.commit(&b1).is_empty());
        let b2 = root.build();
        let s2 = cx("count", &env, &scope, &b2).state("", || AtomicU64::new(0));
        assert!(Arc::ptr_eq(&s1, &s2));
        assert_eq!(s2.load(Ordering::Relaxed), 5);
        let _ = root.commit(&b2);
        // A compile that does not ask for it drops it after its swap.
        let b3 = root.build();
        let _ = root.commit(&b3);
        assert!(root.is_empty());
        let b4 = root.build();
        let s4 = cx("count", &env, &scope, &b4).state("", || AtomicU64::new(0));
        assert_eq!(s4.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn state_is_keyed_by_plugin_scope_compat_and_type() {
        let root = Resources::new();
        let env = BuildEnv::default();
        let r = Scope::Route("r".into());
        let s = Scope::Service("r".into());
        let b = root.build();
        let base = cx("p", &env, &r, &b).state("v1", || AtomicU64::new(1));
        let other = [
            cx("q", &env, &r, &b).state("v1", || AtomicU64::new(2)),
            cx("p", &env, &s, &b).state("v1", || AtomicU64::new(3)),
            cx("p", &env, &r, &b).state("v2", || AtomicU64::new(4)),
        ];
        for o in &other {
            assert!(!Arc::ptr_eq(&base, o));
        }
        let typed = cx("p", &env, &r, &b).state("v1", || String::from("x"));
        assert_eq!(*typed, "x");
        assert_eq!(root.len(), 5);
        // A failed compile's entries never become current; the next
        // successful one drops what it does not ask for.
        let next = root.build();
        let again = cx("p", &env, &r, &next).state("v1", || AtomicU64::new(9));
        assert!(Arc::ptr_eq(&base, &again));
        let _ = root.commit(&next);
        assert_eq!(root.len(), 1);
    }

    #[test]
    fn shared_entries_are_shared_by_key_and_root_ones_are_pinned() {
        let root = Resources::new();
        let b = root.build();
        let a = b.shared("pool:redis://a", || AtomicU64::new(1));
        let a2 = b.shared("pool:redis://a", || AtomicU64::new(2));
        assert!(Arc::ptr_eq(&a, &a2));
        let pinned = root.shared("pinned", || AtomicU64::new(7));
        let metrics = b.metrics();
        let _ = root.commit(&root.build());
        assert!(Arc::ptr_eq(
            &pinned,
            &root.shared("pinned", || AtomicU64::new(0))
        ));
        assert!(Arc::ptr_eq(&metrics, &root.metrics()));
        let fresh = root.build().shared("pool:redis://a", || AtomicU64::new(3));
        assert_eq!(fresh.load(Ordering::Relaxed), 3);
    }

    fn task(
        log: Arc<Mutex<Vec<String>>>,
        name: &'static str,
    ) -> impl FnOnce(Shutdown) -> TaskFuture {
        move |mut shutdown: Shutdown| -> TaskFuture {
            lock(&log).push(format!("made {name}"));
            Box::pin(async move {
                shutdown.stopped().await;
                lock(&log).push(format!("stopped {name}"));
            })
        }
    }

    #[tokio::test]
    async fn background_tasks_start_on_commit_and_stop_when_not_asked_for() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let root = Resources::new();
        let b1 = root.build();
        b1.background("jwks", task(log.clone(), "jwks-1"));
        b1.background("sync", task(log.clone(), "sync-1"));
        // Compiling starts nothing.
        assert!(lock(&log).is_empty());
        assert!(root.running_tasks().is_empty());
        let started = root.commit(&b1);
        assert_eq!(started.len(), 2);
        let handles: Vec<_> = started.into_iter().map(|(_, f)| tokio::spawn(f)).collect();
        assert_eq!(
            root.running_tasks(),
            vec![Arc::from("jwks"), Arc::from("sync")]
        );
        // Asked for again: the running one goes on, the new one is unused.
        let b2 = root.build();
        b2.background("jwks", task(log.clone(), "jwks-2"));
        let started = root.commit(&b2);
        assert!(started.is_empty());
        let mut handles = handles.into_iter();
        let jwks = handles.next().unwrap_or_else(|| unreachable!());
        let sync = handles.next().unwrap_or_else(|| unreachable!());
        sync.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(root.running_tasks(), vec![Arc::from("jwks")]);
        root.stop_all();
        jwks.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(root.running_tasks().is_empty());
        assert_eq!(
            *lock(&log),
            [
                "made jwks-1",
                "made sync-1",
                "stopped sync-1",
                "stopped jwks-1"
            ]
        );
    }

    #[test]
    fn detached_resources_never_start_tasks() {
        let root = Resources::detached();
        assert!(root.is_detached());
        let b = root.build();
        let ran = Arc::new(AtomicU64::new(0));
        let r = ran.clone();
        b.background("t", move |_| {
            r.fetch_add(1, Ordering::Relaxed);
            Box::pin(async {})
        });
        assert!(root.commit(&b).is_empty());
        assert_eq!(ran.load(Ordering::Relaxed), 0);
        // A view of other resources is refused too.
        let other = Resources::new();
        assert!(other.commit(&b).is_empty());
    }
}
