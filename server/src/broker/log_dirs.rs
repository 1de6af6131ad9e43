//! The broker's log dirs (`log.dirs`) and which one holds each partition, as Kafka does it:
//!
//! - Each partition replica lives in exactly one log dir, as `<dir>/<topic>-<partition>/`.
//! - At start every dir is scanned and each partition is opened where it is found. A partition
//!   found in two dirs is a startup error: which copy is the right one cannot be told, and
//!   opening either would hide the other.
//! - A partition new to this broker goes to the dir holding the fewest partitions (Kafka's
//!   rule: a count, not bytes), the first such dir on a tie.
//! - Each dir keeps its own clean-shutdown marker (one engine [`LogDir`] per dir, so a partition
//!   that fails to close only makes its own dir recover), its own `meta.properties`, and its own
//!   `replication-offset-checkpoint` for the partitions it holds. The embedded coordination
//!   store, the pid file and the `strom broker stop` handle stay in the first dir.
//!
//! Read at open and at removal only (a mutex, never on the data path).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use strom_engine::log::LogDir;

use super::topics::validate_topic_name;

/// topic, partition index.
pub type PartitionKey = (String, i32);

/// `<topic>-<index>` as a partition directory name: the topic and index, or `None` for
/// anything else in a log dir (`__coordination`, a `*-delete` directory, files).
pub fn parse_partition_dir_name(name: &str) -> Option<(&str, i32)> {
    if name.ends_with("-delete") {
        return None;
    }
    let (topic, index) = name.rsplit_once('-')?;
    let index: i32 = index.parse().ok()?;
    (index >= 0 && validate_topic_name(topic).is_ok()).then_some((topic, index))
}

/// Partition directories found in `dirs`, by the index of the dir that holds each. Errors if a
/// partition is in two dirs.
pub fn scan(dirs: &[PathBuf]) -> Result<HashMap<PartitionKey, usize>, String> {
    let mut found: HashMap<PartitionKey, usize> = HashMap::new();
    for (dir_index, dir) in dirs.iter().enumerate() {
        let entries = std::fs::read_dir(dir)
            .map_err(|error| format!("cannot list log dir {}: {error}", dir.display()))?;
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            let file_name = entry.file_name();
            let Some((topic, index)) = file_name.to_str().and_then(parse_partition_dir_name) else {
                continue;
            };
            if let Some(other) = found.insert((topic.to_string(), index), dir_index) {
                return Err(format!(
                    "partition {topic}-{index} is in two log dirs, {} and {}: remove the stale \
                     copy before starting",
                    dirs[other].display(),
                    dir.display()
                ));
            }
        }
    }
    Ok(found)
}

struct Placement {
    by_partition: HashMap<PartitionKey, usize>,
    /// Partitions per dir (the placement rule's count).
    counts: Vec<usize>,
}

impl Placement {
    fn new(by_partition: HashMap<PartitionKey, usize>, dir_count: usize) -> Self {
        let mut counts = vec![0; dir_count];
        for &dir in by_partition.values() {
            counts[dir] += 1;
        }
        Placement {
            by_partition,
            counts,
        }
    }
}

/// The broker's log dirs, shared by every shard.
pub struct LogDirs {
    /// One engine log dir (clean-shutdown marker) per `log.dirs` entry, in config order.
    dirs: Vec<Arc<LogDir>>,
    placement: Mutex<Placement>,
}

impl LogDirs {
    /// Opens every log dir (each notes whether its last stop was clean and removes its marker)
    /// and scans them for partitions. Call at start, before any partition opens.
    pub fn open(paths: &[PathBuf]) -> Result<LogDirs, String> {
        assert!(
            !paths.is_empty(),
            "the config guarantees at least one log dir"
        );
        let mut dirs = Vec::with_capacity(paths.len());
        for path in paths {
            dirs.push(Arc::new(
                LogDir::open(path).map_err(|error| error.to_string())?,
            ));
        }
        let found = scan(paths)?;
        Ok(LogDirs {
            placement: Mutex::new(Placement::new(found, dirs.len())),
            dirs,
        })
    }

    /// Scans the dirs again (after stray replicas were removed at start).
    pub fn rescan(&self) -> Result<(), String> {
        let found = scan(&self.paths())?;
        *self.lock() = Placement::new(found, self.dirs.len());
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Placement> {
        // A panic while holding it left plain data, still consistent enough to place by.
        self.placement
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|dir| dir.root().to_path_buf())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// The engine log dir at `index` (config order).
    pub fn dir(&self, index: usize) -> &Arc<LogDir> {
        &self.dirs[index]
    }

    pub fn dirs(&self) -> &[Arc<LogDir>] {
        &self.dirs
    }

    /// The index of the dir holding a partition, if it has one.
    pub fn dir_index_of(&self, topic: &str, index: i32) -> Option<usize> {
        self.lock()
            .by_partition
            .get(&(topic.to_string(), index))
            .copied()
    }

    /// The dir a partition lives in: where it is, or for a partition new here the dir with the
    /// fewest partitions (which from now on holds it). Returns the dir's index and the
    /// partition's directory.
    pub fn place(&self, topic: &str, index: i32) -> (usize, PathBuf) {
        let mut placement = self.lock();
        let key = (topic.to_string(), index);
        let dir_index = match placement.by_partition.get(&key) {
            Some(&dir_index) => dir_index,
            None => {
                let dir_index = fewest(&placement.counts);
                placement.by_partition.insert(key, dir_index);
                placement.counts[dir_index] += 1;
                dir_index
            }
        };
        (
            dir_index,
            super::partition::partition_dir(self.dirs[dir_index].root(), topic, index),
        )
    }

    /// Forgets a partition whose directory was removed.
    pub fn forget(&self, topic: &str, index: i32) {
        let mut placement = self.lock();
        if let Some(dir_index) = placement.by_partition.remove(&(topic.to_string(), index)) {
            placement.counts[dir_index] -= 1;
        }
    }

    /// The partitions each dir holds (by dir index).
    pub fn partitions_by_dir(&self) -> Vec<Vec<PartitionKey>> {
        let placement = self.lock();
        let mut by_dir = vec![Vec::new(); self.dirs.len()];
        for (key, &dir_index) in &placement.by_partition {
            by_dir[dir_index].push(key.clone());
        }
        by_dir
    }

    /// The root of the dir at `index`.
    pub fn path(&self, index: usize) -> &Path {
        self.dirs[index].root()
    }
}

/// The index of the smallest count, the first on a tie.
fn fewest(counts: &[usize]) -> usize {
    counts
        .iter()
        .enumerate()
        .min_by_key(|&(index, count)| (*count, index))
        .map_or(0, |(index, _)| index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_directory_names_are_recognised() {
        assert_eq!(parse_partition_dir_name("orders-3"), Some(("orders", 3)));
        assert_eq!(parse_partition_dir_name("a-b-0"), Some(("a-b", 0)));
        assert_eq!(parse_partition_dir_name("__coordination"), None);
        assert_eq!(parse_partition_dir_name("t-0.0123abcd-delete"), None);
        assert_eq!(parse_partition_dir_name("t-"), None);
        assert_eq!(parse_partition_dir_name("meta.properties"), None);
        assert_eq!(parse_partition_dir_name("t-x"), None);
    }

    #[test]
    fn new_partitions_go_to_the_dir_with_fewest_and_found_ones_stay_where_they_are() {
        let root = tempfile::tempdir().expect("tempdir");
        let paths: Vec<PathBuf> = (0..3).map(|i| root.path().join(format!("d{i}"))).collect();
        for path in &paths {
            std::fs::create_dir_all(path).expect("mkdir");
        }
        // Dir 1 already holds two partitions, dir 2 one.
        for name in ["old-0", "old-1"] {
            std::fs::create_dir(paths[1].join(name)).expect("mkdir");
        }
        std::fs::create_dir(paths[2].join("old-2")).expect("mkdir");
        let dirs = LogDirs::open(&paths).expect("open");
        assert_eq!(
            dirs.dir_index_of("old-0", 0),
            None,
            "topic `old`, not `old-0`"
        );
        assert_eq!(dirs.dir_index_of("old", 1), Some(1));
        assert_eq!(dirs.place("old", 2).0, 2, "found where it is");
        let placed: Vec<usize> = (0..6).map(|index| dirs.place("new", index).0).collect();
        // Counts start at [0, 2, 1]; each goes to the fewest, the first dir on a tie.
        assert_eq!(placed, vec![0, 0, 2, 0, 1, 2]);
        assert_eq!(dirs.place("new", 0).0, 0, "placed once");
        dirs.forget("new", 0);
        assert_eq!(dirs.dir_index_of("new", 0), None);
        let counts: Vec<usize> = dirs.partitions_by_dir().iter().map(Vec::len).collect();
        assert_eq!(counts, vec![2, 3, 3]);
    }

    #[test]
    fn a_partition_in_two_dirs_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let paths: Vec<PathBuf> = (0..2).map(|i| root.path().join(format!("d{i}"))).collect();
        for path in &paths {
            std::fs::create_dir_all(path.join("t-0")).expect("mkdir");
        }
        let error = scan(&paths).expect_err("refused");
        assert!(
            error.contains("t-0") && error.contains("two log dirs"),
            "{error}"
        );
    }
}
