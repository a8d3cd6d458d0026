//! The consistency of a store file: every index agrees with what it indexes.

use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::store::file::tables::{
    CLAIMS, ENTITIES, ENTITY_EXPIRY, EVENTS, FAILURES, FAILURE_EXPIRY, HANDLED, HANDLED_TOKEN,
    META, PARKED, PARKED_BYTES_KEY, PARKED_TOKEN,
};

/// Checks that every index of the file agrees with the records it indexes, and the parked
/// byte count with the parked records. Run on a closed store's file.
pub(crate) fn check_indexes(path: &Path) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let index = |def: TableDefinition<(u64, &str), ()>| -> Vec<(u64, String)> {
        let t = txn.open_table(def).unwrap();
        let rows = t.iter().unwrap().map(|r| {
            let (k, _) = r.unwrap();
            let (d, id) = k.value();
            (d, id.to_owned())
        });
        rows.collect()
    };
    let events = txn.open_table(EVENTS).unwrap();
    let (mut handled, mut claims) = (Vec::new(), Vec::new());
    for row in events.iter().unwrap() {
        let (k, v) = row.unwrap();
        let (deadline, t) = v.value();
        match t {
            HANDLED_TOKEN => handled.push((deadline, k.value().to_owned())),
            PARKED_TOKEN => assert_eq!(deadline, u64::MAX),
            _ => claims.push((deadline, k.value().to_owned())),
        }
    }
    handled.sort();
    claims.sort();
    assert_eq!(index(HANDLED), handled, "the handled index");
    assert_eq!(index(CLAIMS), claims, "the claims index");
    let entities = txn.open_table(ENTITIES).unwrap();
    let mut expiry: Vec<(u64, String)> = entities
        .iter()
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (v.value().0, k.value().to_owned())
        })
        .collect();
    expiry.sort();
    assert_eq!(index(ENTITY_EXPIRY), expiry, "the entity expiry index");
    let failures = txn.open_table(FAILURES).unwrap();
    let mut expiry: Vec<(u64, String)> = failures
        .iter()
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (v.value().2, k.value().to_owned())
        })
        .collect();
    expiry.sort();
    assert_eq!(index(FAILURE_EXPIRY), expiry, "the failure expiry index");
    let parked = txn.open_table(PARKED).unwrap();
    let bytes: usize = parked
        .iter()
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            let (ty, token, _, error, _, _) = v.value();
            k.value().len() + ty.len() + token.len() + error.len()
        })
        .sum();
    let meta = txn.open_table(META).unwrap();
    let stored = meta.get(PARKED_BYTES_KEY).unwrap().map_or(0, |v| v.value());
    assert_eq!(stored, bytes as u64, "the parked byte count");
}
