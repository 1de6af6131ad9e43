//! The controller as a pure state machine (see [`Controller`]).

mod api;

pub use api::{Action, ControllerConfig, ElectionKind, Event, StateWrite, TopicRecord};

/// At most this many state writes go in one ZooKeeper `multi`: a state znode
/// write is ~200 bytes with its path, so this stays far below ZooKeeper's
/// 1 MB `jute.maxbuffer` for a request.
pub const STATE_WRITES_PER_MULTI_MAX: usize = 500;
