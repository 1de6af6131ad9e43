//! The controller as a pure state machine (see [`Controller`]).

mod api;

pub use api::{Action, ControllerConfig, ElectionKind, Event, StateWrite, TopicRecord};

/// At most this many state writes go in one ZooKeeper `multi`: a state znode
/// write is ~200 bytes with its path, so this stays far below ZooKeeper's
/// 1 MB `jute.maxbuffer` for a request.
pub const STATE_WRITES_PER_MULTI_MAX: usize = 500;

// TEMPORARY SHIM (lead's local type check only; replaced by the real machine on merge).
pub struct Controller;
impl Controller {
    pub fn new(_config: ControllerConfig) -> Self {
        Controller
    }
    pub fn handle(&mut self, _event: Event, _now_ms: i64) -> Vec<Action> {
        Vec::new()
    }
    pub fn check_invariants(&self) -> Result<(), String> {
        Ok(())
    }
    pub fn next_deadline_ms(&self) -> Option<i64> {
        None
    }
}
