//! Throw-away PostgreSQL databases for tests: each [`TestDb`] is a fresh
//! database on the PostgreSQL the tests use (`GATEHOUSE_TEST_POSTGRES`, by
//! default `postgres://postgres@127.0.0.1:5432/postgres`), dropped again
//! with the value. A test that needs PostgreSQL fails with a clear message
//! when it is not reachable; it never skips.

use tokio_postgres::NoTls;

/// URL of the maintenance database the test databases are created from.
pub fn admin_url() -> String {
    std::env::var("GATEHOUSE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Runs `f` on a fresh current-thread runtime on its own thread, so it
/// works from sync code and from inside another runtime alike.
fn on_own_runtime<T: Send + 'static>(
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(f()))
    })
    .join()
    .ok()
    .and_then(Result::ok)
    .unwrap_or_else(|| panic!("the PostgreSQL test helper thread failed"))
}

/// A fresh, empty database; dropped (with `FORCE`) when this is dropped.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    /// Creates a database named `<prefix>_<random>`. Panics with a clear
    /// message when PostgreSQL is not reachable.
    pub fn create(prefix: &str) -> TestDb {
        let admin = admin_url();
        let name = format!("{prefix}_{:016x}{:016x}", rand_u64(), rand_u64());
        let (a, n) = (admin.clone(), name.clone());
        let made: Result<(), String> = on_own_runtime(move || {
            Box::pin(async move {
                let (client, conn) = tokio_postgres::connect(&a, NoTls).await.map_err(|e| {
                    format!(
                        "PostgreSQL is not reachable at {a} ({e}: {}); these tests need it: \
                         start it (`.ci/run` does) or set GATEHOUSE_TEST_POSTGRES",
                        std::error::Error::source(&e)
                            .map(ToString::to_string)
                            .unwrap_or_default()
                    )
                })?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("CREATE DATABASE {n}"))
                    .await
                    .map_err(|e| format!("CREATE DATABASE {n}: {e}"))
            })
        });
        if let Err(e) = made {
            panic!("{e}");
        }
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        TestDb {
            url: format!("{base}/{name}"),
            name,
        }
    }

    /// The database's URL (`postgres://.../<name>`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (admin_url(), self.name.clone());
        on_own_runtime(move || {
            Box::pin(async move {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin, NoTls).await {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            })
        });
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
