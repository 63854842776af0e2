//! Versioned schema migrations, embedded in the binary: numbered SQL files
//! per backend under `crates/store/migrations/`. A backend applies the ones
//! its `schema_migrations` table lacks, in one transaction, when it opens;
//! a database newer than the binary is refused. Migrations are append-only:
//! never edit one that has shipped, add the next number.

/// One migration: its number and SQL.
pub(crate) struct Migration {
    pub version: i64,
    pub sql: &'static str,
}

pub(crate) const SQLITE: &[Migration] = &[Migration {
    version: 1,
    sql: include_str!("../migrations/sqlite/0001_init.sql"),
}];

pub(crate) const POSTGRES: &[Migration] = &[Migration {
    version: 1,
    sql: include_str!("../migrations/postgres/0001_init.sql"),
}];

/// The newest SQLite schema this binary knows.
pub const SQLITE_SCHEMA_VERSION: i64 = 1;
/// The newest PostgreSQL schema this binary knows.
pub const POSTGRES_SCHEMA_VERSION: i64 = 1;

/// The migrations after `current`, or the too-new error.
pub(crate) fn pending(
    all: &'static [Migration],
    current: i64,
) -> Result<&'static [Migration], crate::StoreError> {
    let supported = all.last().map_or(0, |m| m.version);
    if current > supported {
        return Err(crate::StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    let from = all
        .iter()
        .position(|m| m.version > current)
        .unwrap_or(all.len());
    Ok(&all[from..])
}
