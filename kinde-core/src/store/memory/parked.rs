//! The memory store's parked events: bounded by count and bytes.

use std::collections::HashMap;

use crate::event::EventId;
use crate::store::{ParkLimits, ParkedEvent};

#[derive(Default)]
pub(super) struct ParkedSet {
    by_id: HashMap<EventId, ParkedEvent>,
    bytes: usize,
}

impl ParkedSet {
    /// Parks (or re-parks) `event` unless that would pass `limits`; whether it did.
    pub(super) fn park(&mut self, event: ParkedEvent, limits: ParkLimits) -> bool {
        let old = self.by_id.get(&event.event_id).map(ParkedEvent::size);
        let count = self.by_id.len() + usize::from(old.is_none());
        let bytes = self.bytes - old.unwrap_or(0) + event.size();
        if count > limits.events || bytes > limits.bytes {
            return false;
        }
        self.bytes = bytes;
        self.by_id.insert(event.event_id.clone(), event);
        true
    }

    pub(super) fn get(&self, id: &EventId) -> Option<&ParkedEvent> {
        self.by_id.get(id)
    }

    pub(super) fn remove(&mut self, id: &EventId) -> bool {
        if self.by_id.is_empty() {
            return false; // the common case of a completion: nothing parked, nothing to hash
        }
        match self.by_id.remove(id) {
            Some(e) => {
                self.bytes -= e.size();
                true
            }
            None => false,
        }
    }

    /// Every parked event, oldest first.
    pub(super) fn list(&self) -> Vec<ParkedEvent> {
        let mut all: Vec<ParkedEvent> = self.by_id.values().cloned().collect();
        all.sort_by(|a, b| {
            (a.first_attempt_ms, a.event_id.as_str())
                .cmp(&(b.first_attempt_ms, b.event_id.as_str()))
        });
        all
    }
}
