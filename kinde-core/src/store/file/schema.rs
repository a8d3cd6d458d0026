//! Opening a store file: its schema version checked (or written, or upgraded), and what
//! expired while it was closed removed.

use std::path::Path;

use redb::{Database, ReadableTable, TableHandle};

use super::tables::{Tables, META, SCHEMA_KEY, SCHEMA_VERSION};

/// Why a file could not be prepared.
pub(super) enum Prepare {
    Incompatible(String),
    Db(redb::Error),
}

impl<E: Into<redb::Error>> From<E> for Prepare {
    fn from(e: E) -> Self {
        Prepare::Db(e.into())
    }
}

/// Checks (or writes) the schema version, removes what expired while the file was closed and
/// trims to `capacity`, in one fsynced transaction.
pub(super) fn prepare(db: &Database, now: u64, capacity: u64, path: &Path) -> Result<(), Prepare> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        let version = meta.get(SCHEMA_KEY)?.map(|v| v.value());
        match version {
            Some(SCHEMA_VERSION) => {}
            // Version 1 held claims and completions only: its tables are unchanged in version
            // 2, which adds the tables of ordering and parking.
            Some(1) => {
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
                tracing::info!(path = %path.display(), "file store: schema upgraded from version 1 to {SCHEMA_VERSION}");
            }
            Some(v) => {
                return Err(Prepare::Incompatible(format!(
                    "the store file has schema version {v}; this kinde-core reads versions 1 and {SCHEMA_VERSION}"
                )))
            }
            None => {
                let foreign = txn
                    .list_tables()?
                    .map(|t| t.name().to_owned())
                    .find(|name| name != META.name());
                if let Some(name) = foreign {
                    return Err(Prepare::Incompatible(format!(
                        "not a kinde-webhooks store file (it holds a table `{name}` and no schema \
                         version); refusing to change it"
                    )));
                }
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
            }
        }
    }
    {
        let mut tables = Tables::open(&txn)?;
        let purged = tables.purge_expired(now, usize::MAX)?;
        tables.trim_to(capacity)?;
        tracing::debug!(path = %path.display(), purged, entries = tables.len()?, "file store opened");
    }
    txn.commit()?;
    Ok(())
}
