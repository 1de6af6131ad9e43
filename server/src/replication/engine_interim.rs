//! Stand-ins for the engine's leader-epoch cache until it lands (branch repl-engine), kept in one
//! place so the swap is one file: with them a follower behaves as if its log carried no epochs
//! (an empty log's behaviour: no truncation, `last_fetched_epoch` -1), and a leader answers no
//! diverging epoch.

use strom_engine::log::PartitionLog;

/// The log's leader epochs, oldest first: (epoch, start offset). Interim: none known.
pub fn leader_epoch_entries(_log: &PartitionLog) -> Vec<(i32, i64)> {
    Vec::new()
}

/// Where `epoch` ends in this log: (the largest epoch <= `epoch`, its end offset), (-1, -1) when
/// unknown. Interim: always unknown.
pub fn end_offset_for_epoch(_log: &PartitionLog, _epoch: i32) -> (i32, i64) {
    (-1, -1)
}
