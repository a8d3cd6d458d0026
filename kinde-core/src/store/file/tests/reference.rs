//! Random runs of the protocol against the file store and the memory store (the reference):
//! every answer must be the same (tokens aside), and so must the parked set at the end; then
//! the file's indexes are checked. A few events share two entities (one event has none), so
//! the runs cross ordering, ties, tombstones, parking, replays and stale tokens.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::store::MemoryStore;

/// Event `i`'s entity, if any: (key, timestamp). Events 1 and 2 tie on `user:1`.
fn entity_of(i: usize) -> Option<(&'static str, i64)> {
    [
        Some(("user:0", 100)),
        Some(("user:1", 200)),
        Some(("user:1", 200)),
        Some(("user:0", 50)),
        None,
    ][i]
}

const EVENTS: usize = 5;

#[derive(Debug, Clone)]
enum Op {
    Claim {
        event: usize,
        replay: bool,
    },
    Complete {
        event: usize,
        deletes: bool,
        stale: bool,
    },
    Release {
        event: usize,
        stale: bool,
    },
    Fail {
        event: usize,
        park_after: u32,
        one_parked_at_most: bool,
    },
    Unpark {
        event: usize,
    },
    ParkedEvent {
        event: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let event = 0..EVENTS;
    prop_oneof![
        3 => (event.clone(), any::<bool>()).prop_map(|(event, replay)| Op::Claim { event, replay }),
        2 => (event.clone(), any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(event, deletes, stale)| Op::Complete { event, deletes, stale }),
        1 => (event.clone(), prop::bool::weighted(0.2))
            .prop_map(|(event, stale)| Op::Release { event, stale }),
        2 => (event.clone(), 1..=3u32, any::<bool>()).prop_map(|(event, park_after, one)| Op::Fail {
            event,
            park_after,
            one_parked_at_most: one
        }),
        1 => event.clone().prop_map(|event| Op::Unpark { event }),
        1 => event.prop_map(|event| Op::ParkedEvent { event }),
    ]
}

/// An answer, tokens left out.
#[derive(Debug, PartialEq)]
enum Answer {
    Claim(Result<Claim, String>),
    Fenced(Fenced),
    Failed(Failed),
    Unparked(bool),
    Parked(Option<crate::store::ParkedEvent>),
}

/// One store and the tokens it handed out, per event: the first (to try stale) and the last.
struct Run<'a> {
    store: &'a dyn IdempotencyStore,
    tokens: HashMap<usize, (ClaimToken, ClaimToken)>,
}

impl Run<'_> {
    fn token(&self, event: usize, stale: bool) -> ClaimToken {
        match self.tokens.get(&event) {
            Some((first, _)) if stale => first.clone(),
            Some((_, last)) => last.clone(),
            None => ClaimToken::from_string("none:0".into()),
        }
    }

    async fn apply(&mut self, op: &Op, at_ms: i64) -> Answer {
        let event_id = |i: usize| id(&format!("event_{i}"));
        let entity = |i: usize| entity_of(i).map(|(key, timestamp)| Entity { key, timestamp });
        match *op {
            Op::Claim { event, replay } => {
                let eid = event_id(event);
                let request = ClaimRequest::new(&eid, HOUR, HOUR)
                    .entity(entity(event))
                    .replay(replay);
                let answer = self.store.claim(&request).await;
                let answer = answer.map_err(|e| e.to_string()).map(|c| match c {
                    Claim::StartProcessing { token, previous } => {
                        let entry = self
                            .tokens
                            .entry(event)
                            .or_insert((token.clone(), token.clone()));
                        entry.1 = token;
                        // The token itself differs by store: keep the rest.
                        Claim::StartProcessing {
                            token: ClaimToken::from_string(String::new()),
                            previous,
                        }
                    }
                    other => other,
                });
                Answer::Claim(answer)
            }
            Op::Complete {
                event,
                deletes,
                stale,
            } => {
                let completion = Completion::new(HOUR).entity(entity(event), deletes);
                let token = self.token(event, stale);
                let done = self
                    .store
                    .complete(&event_id(event), &token, &completion)
                    .await;
                Answer::Fenced(done.unwrap())
            }
            Op::Release { event, stale } => {
                let key = entity_of(event).map(|(k, _)| k);
                let token = self.token(event, stale);
                Answer::Fenced(
                    self.store
                        .release(&event_id(event), &token, key)
                        .await
                        .unwrap(),
                )
            }
            Op::Fail {
                event,
                park_after,
                one_parked_at_most,
            } => {
                let limits = if one_parked_at_most {
                    ParkLimits {
                        events: 1,
                        bytes: usize::MAX,
                    }
                } else {
                    ParkLimits::default()
                };
                let failure = Failure {
                    at_ms,
                    ..failure(park_after, limits, HOUR)
                };
                let key = entity_of(event).map(|(k, _)| k);
                let token = self.token(event, false);
                Answer::Failed(
                    self.store
                        .fail(&event_id(event), &token, key, &failure)
                        .await
                        .unwrap(),
                )
            }
            Op::Unpark { event } => {
                let key = entity_of(event).map(|(k, _)| k);
                Answer::Unparked(self.store.unpark(&event_id(event), key).await.unwrap())
            }
            Op::ParkedEvent { event } => {
                Answer::Parked(self.store.parked_event(&event_id(event)).await.unwrap())
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_file_store_answers_as_the_memory_store_does(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.redb");
        let clock = ManualClock::new(t0());
        let file = open(&path, &clock, 1_000);
        let memory = MemoryStore::default();
        rt.block_on(async {
            let mut f = Run { store: &file, tokens: HashMap::new() };
            let mut m = Run { store: &memory, tokens: HashMap::new() };
            for (n, op) in ops.iter().enumerate() {
                let at_ms = 1_700_000_000_000 + n as i64;
                let (want, got) = (m.apply(op, at_ms).await, f.apply(op, at_ms).await);
                assert_eq!(got, want, "op {n}: {op:?} (all: {ops:?})");
            }
            assert_eq!(file.parked().await.unwrap(), memory.parked().await.unwrap());
        });
        drop(file);
        check_indexes(&path);
    }
}
