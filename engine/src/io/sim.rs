//! A simulated disk for crash tests (built only with `cfg(test)` or the `simulation` feature, so
//! a release build carries none of it).
//!
//! It keeps every file in memory and models what survives a power loss the way Linux file
//! systems (ext4, xfs) behave, with the durability points the engine relies on:
//!
//! - **File data** (writes, `set_len`) lives in the page cache until `fdatasync`/`fsync` of that
//!   file: then everything written to it so far is durable. On a crash each write since the
//!   last sync is independently dropped, kept, or torn (only an arbitrary byte range of it
//!   reached the disk), and writes between two size changes land in any order, as page
//!   write-back may. A write kept past a dropped one leaves zeros in between (a hole). Each size
//!   change (`set_len`) is kept or dropped.
//! - **Directory entries** (create, rename, unlink, mkdir) are durable only after an fsync of
//!   the directory that holds them (or `syncfs`). A crash keeps a random prefix of each
//!   directory's entry changes since its last sync: metadata is journaled in order, so a later
//!   name change never survives without the earlier ones of the same directory. A file whose
//!   name did not survive is gone, whatever was synced into it; so is a directory whose entry
//!   did not survive, with everything under it.
//!
//! [`SimDisk::crash`] replaces the disk's contents with one such image (chosen by a seeded
//! [`SimRng`], so a run reproduces exactly) and bumps a generation: every handle opened before
//! the crash fails with `EIO` from then on, as if the process that held it had died.
//!
//! Faults for proving the checker: [`SimFaults::file_sync_is_a_no_op`] makes `fdatasync`
//! return success without making anything durable (a disk that lies).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A small deterministic generator (SplitMix64): the whole simulation draws from seeded ones,
/// so a failing seed replays exactly. Not for anything but tests.
#[derive(Debug, Clone)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Deliberate misbehaviour, to prove that the crash checker catches a broken durability path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimFaults {
    /// `fdatasync` of a file succeeds without making its data durable.
    pub file_sync_is_a_no_op: bool,
}

/// How [`SimDisk::open`] treats a missing or existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimOpen {
    /// The file must exist.
    Existing,
    /// Create it if missing; `truncate` empties an existing one.
    Create { truncate: bool },
}

/// A file-system change not yet durable. `SetLen` splits runs of writes that may be reordered.
#[derive(Debug, Clone)]
enum DataOp {
    Write { position: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct Inode {
    /// What reads see (the page cache).
    data: Vec<u8>,
    /// What survives a crash for sure.
    durable: Vec<u8>,
    /// Changes since the last sync, in the order they were made.
    unsynced: Vec<DataOp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(u64),
    Dir,
}

/// One atomic change of a directory's entries (a rename is two names at once).
type DirOp = Vec<(String, Option<Node>)>;

#[derive(Debug, Default, Clone)]
struct Dir {
    entries: BTreeMap<String, Node>,
    durable: BTreeMap<String, Node>,
    unsynced: Vec<DirOp>,
}

#[derive(Debug, Default)]
struct DiskState {
    /// Bumped by every crash: handles from before it are dead.
    generation: u64,
    next_inode: u64,
    inodes: HashMap<u64, Inode>,
    dirs: BTreeMap<PathBuf, Dir>,
    /// Directories that always exist (the mount points); everything else hangs off them.
    roots: Vec<PathBuf>,
    faults: SimFaults,
}

/// The simulated disk. Shared (`Arc`) by every handle on it; a mutex keeps it `Send + Sync`
/// like the real files it stands for (it is only ever used from one test thread).
pub struct SimDisk {
    state: Mutex<DiskState>,
}

impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SimDisk")
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

fn dead_handle() -> io::Error {
    io::Error::other("simulated crash: the handle belongs to a process that died (EIO)")
}

fn split(path: &Path) -> io::Result<(&Path, String)> {
    match (
        path.parent(),
        path.file_name().and_then(|name| name.to_str()),
    ) {
        (Some(parent), Some(name)) => Ok((parent, name.to_string())),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        )),
    }
}

impl Dir {
    fn apply(&mut self, op: DirOp) {
        for (name, node) in &op {
            match node {
                Some(node) => self.entries.insert(name.clone(), *node),
                None => self.entries.remove(name),
            };
        }
        self.unsynced.push(op);
    }

    fn sync(&mut self) {
        self.durable = self.entries.clone();
        self.unsynced.clear();
    }
}

impl Inode {
    fn write(&mut self, position: u64, bytes: &[u8]) {
        write_into(&mut self.data, position, bytes);
        self.unsynced.push(DataOp::Write {
            position,
            bytes: bytes.to_vec(),
        });
    }

    fn set_len(&mut self, len_bytes: u64) {
        self.data.resize(to_usize(len_bytes), 0);
        self.unsynced.push(DataOp::SetLen(len_bytes));
    }

    fn sync(&mut self) {
        self.durable = self.data.clone();
        self.unsynced.clear();
    }

    /// A crash image of this file: the durable bytes plus an arbitrary choice of the unsynced
    /// changes (see the module comment).
    fn crash_image(&self, rng: &mut SimRng) -> Vec<u8> {
        let mut image = self.durable.clone();
        // A quarter of the time everything got out, a quarter nothing did: the common cases
        // must come up often, not only the mixes.
        match rng.below(4) {
            0 => return self.data.clone(),
            1 => return image,
            _ => {}
        }
        let mut run: Vec<(u64, &[u8])> = Vec::new();
        for op in &self.unsynced {
            match op {
                DataOp::Write { position, bytes } => run.push((*position, bytes)),
                DataOp::SetLen(len_bytes) => {
                    apply_writes(&mut image, &mut run, rng);
                    if rng.chance(50) {
                        image.resize(to_usize(*len_bytes), 0);
                    }
                }
            }
        }
        apply_writes(&mut image, &mut run, rng);
        image
    }
}

/// Applies a run of writes in a random order, each dropped, kept whole or torn.
fn apply_writes(image: &mut Vec<u8>, run: &mut Vec<(u64, &[u8])>, rng: &mut SimRng) {
    // Fisher-Yates, from the seeded generator.
    for index in (1..run.len()).rev() {
        let other = to_usize(rng.below(index as u64 + 1));
        run.swap(index, other);
    }
    for (position, bytes) in run.drain(..) {
        match rng.below(10) {
            0..=2 => {}
            3..=7 => write_into(image, position, bytes),
            _ => {
                // Torn: only bytes [from, to) reached the disk.
                let len = bytes.len() as u64;
                let from = rng.below(len + 1);
                let to = rng.between(from, len);
                let kept = bytes.get(to_usize(from)..to_usize(to)).unwrap_or(&[]);
                if !kept.is_empty() {
                    write_into(image, position + from, kept);
                }
            }
        }
    }
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).expect("simulated files fit in memory")
}

fn write_into(data: &mut Vec<u8>, position: u64, bytes: &[u8]) {
    let start = to_usize(position);
    let end = start + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[start..end].copy_from_slice(bytes);
}

impl SimDisk {
    /// An empty disk on which `root` (and everything above it) exists durably.
    pub fn new(root: &Path) -> Arc<SimDisk> {
        let mut state = DiskState::default();
        state.dirs.insert(root.to_path_buf(), Dir::default());
        state.roots.push(root.to_path_buf());
        Arc::new(SimDisk {
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        // A panic while the lock was held is a test failure already; the state is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A view of the disk for a process started now (e.g. a log about to open).
    pub fn fs(self: &Arc<Self>) -> SimFs {
        SimFs {
            disk: self.clone(),
            generation: self.lock().generation,
        }
    }

    pub fn set_faults(&self, faults: SimFaults) {
        self.lock().faults = faults;
    }

    /// How many crashes this disk went through.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Power loss: the disk keeps every durable byte and name plus an arbitrary (seeded) choice
    /// of what was not yet durable (see the module comment). Handles opened before it fail from
    /// now on.
    pub fn crash(&self, rng: &mut SimRng) {
        let mut state = self.lock();
        // Directory entries: durable ones plus a prefix of the changes since.
        let mut dirs: BTreeMap<PathBuf, Dir> = BTreeMap::new();
        for (path, dir) in &state.dirs {
            let mut entries = dir.durable.clone();
            let kept = to_usize(rng.below(dir.unsynced.len() as u64 + 1));
            for op in dir.unsynced.iter().take(kept) {
                for (name, node) in op {
                    match node {
                        Some(node) => entries.insert(name.clone(), *node),
                        None => entries.remove(name),
                    };
                }
            }
            dirs.insert(
                path.clone(),
                Dir {
                    durable: entries.clone(),
                    entries,
                    unsynced: Vec::new(),
                },
            );
        }
        // Only what hangs off a root through surviving entries is still there.
        let mut reachable: BTreeMap<PathBuf, Dir> = BTreeMap::new();
        let mut files: BTreeSet<u64> = BTreeSet::new();
        let mut pending: Vec<PathBuf> = state.roots.clone();
        while let Some(path) = pending.pop() {
            let Some(dir) = dirs.remove(&path) else {
                continue;
            };
            for (name, node) in &dir.entries {
                match node {
                    Node::Dir => pending.push(path.join(name)),
                    Node::File(inode) => {
                        files.insert(*inode);
                    }
                }
            }
            reachable.insert(path, dir);
        }
        // A directory entry whose directory did not survive with it (an unsynced mkdir whose
        // contents' parent entry survived) names nothing: drop such entries.
        let surviving_dirs: BTreeSet<PathBuf> = reachable.keys().cloned().collect();
        for (path, dir) in reachable.iter_mut() {
            dir.entries.retain(|name, node| {
                *node != Node::Dir || surviving_dirs.contains(&path.join(name))
            });
            dir.durable = dir.entries.clone();
        }
        let mut inodes = HashMap::new();
        for inode in files {
            let image = state
                .inodes
                .get(&inode)
                .map(|data| data.crash_image(rng))
                .unwrap_or_default();
            inodes.insert(
                inode,
                Inode {
                    durable: image.clone(),
                    data: image,
                    unsynced: Vec::new(),
                },
            );
        }
        state.dirs = reachable;
        state.inodes = inodes;
        state.generation += 1;
    }
}

/// One process's view of a [`SimDisk`]: the path operations (what `std::fs` offers). It
/// belongs to the disk's generation it was taken in: after a crash every call fails, as the
/// process that held it is gone — a log opened before a crash can no longer touch the disk.
#[derive(Debug, Clone)]
pub struct SimFs {
    disk: Arc<SimDisk>,
    generation: u64,
}

impl SimFs {
    fn lock(&self) -> io::Result<MutexGuard<'_, DiskState>> {
        let state = self.disk.lock();
        if state.generation != self.generation {
            return Err(dead_handle());
        }
        Ok(state)
    }

    pub fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock()?;
        let missing: Vec<&Path> = path
            .ancestors()
            .take_while(|ancestor| !state.dirs.contains_key(*ancestor))
            .collect();
        for dir in missing.into_iter().rev() {
            let (parent, name) = split(dir)?;
            let parent_dir = state
                .dirs
                .get_mut(parent)
                .ok_or_else(|| not_found(parent))?;
            if parent_dir.entries.contains_key(&name) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: a file", dir.display()),
                ));
            }
            parent_dir.apply(vec![(name, Some(Node::Dir))]);
            state.dirs.insert(dir.to_path_buf(), Dir::default());
        }
        Ok(())
    }

    fn lookup(state: &DiskState, path: &Path) -> io::Result<Option<Node>> {
        let (parent, name) = split(path)?;
        let dir = state.dirs.get(parent).ok_or_else(|| not_found(parent))?;
        Ok(dir.entries.get(&name).copied())
    }

    pub fn open(&self, path: &Path, mode: SimOpen) -> io::Result<SimFile> {
        let mut state = self.lock()?;
        let inode = match (Self::lookup(&state, path)?, mode) {
            (Some(Node::File(inode)), SimOpen::Create { truncate: true }) => {
                if let Some(data) = state.inodes.get_mut(&inode) {
                    data.set_len(0);
                }
                inode
            }
            (Some(Node::File(inode)), _) => inode,
            (Some(Node::Dir), _) => {
                return Err(io::Error::other(format!(
                    "{}: is a directory",
                    path.display()
                )))
            }
            (None, SimOpen::Existing) => return Err(not_found(path)),
            (None, SimOpen::Create { .. }) => {
                let inode = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(inode, Inode::default());
                let (parent, name) = split(path)?;
                state
                    .dirs
                    .get_mut(parent)
                    .ok_or_else(|| not_found(parent))?
                    .apply(vec![(name, Some(Node::File(inode)))]);
                inode
            }
        };
        Ok(SimFile {
            disk: self.disk.clone(),
            inode,
            generation: state.generation,
        })
    }

    pub fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let state = self.lock()?;
        match Self::lookup(&state, path)? {
            Some(Node::File(inode)) => Ok(state
                .inodes
                .get(&inode)
                .map(|inode| inode.data.clone())
                .unwrap_or_default()),
            _ => Err(not_found(path)),
        }
    }

    pub fn exists(&self, path: &Path) -> io::Result<bool> {
        let state = self.lock()?;
        Ok(state.dirs.contains_key(path) || matches!(Self::lookup(&state, path), Ok(Some(_))))
    }

    /// Renames a file within its directory (the only kind of rename the log does), atomically
    /// replacing any file at `to`.
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock()?;
        let (from_parent, from_name) = split(from)?;
        let (to_parent, to_name) = split(to)?;
        if from_parent != to_parent {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the simulated disk renames only within a directory",
            ));
        }
        let dir = state
            .dirs
            .get_mut(from_parent)
            .ok_or_else(|| not_found(from_parent))?;
        let node = match dir.entries.get(&from_name) {
            Some(Node::File(inode)) => Node::File(*inode),
            _ => return Err(not_found(from)),
        };
        dir.apply(vec![(to_name, Some(node)), (from_name, None)]);
        Ok(())
    }

    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock()?;
        let (parent, name) = split(path)?;
        let dir = state
            .dirs
            .get_mut(parent)
            .ok_or_else(|| not_found(parent))?;
        match dir.entries.get(&name) {
            Some(Node::File(_)) => {
                dir.apply(vec![(name, None)]);
                Ok(())
            }
            _ => Err(not_found(path)),
        }
    }

    /// Names in `dir`, files and directories.
    pub fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.lock()?;
        let dir = state.dirs.get(dir).ok_or_else(|| not_found(dir))?;
        Ok(dir.entries.keys().cloned().collect())
    }

    /// fsync of a directory: its entries as they are now become durable.
    pub fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock()?;
        state
            .dirs
            .get_mut(dir)
            .ok_or_else(|| not_found(dir))?
            .sync();
        Ok(())
    }

    /// `syncfs`: everything on the disk becomes durable.
    pub fn sync_all(&self) -> io::Result<()> {
        let mut state = self.lock()?;
        let no_op = state.faults.file_sync_is_a_no_op;
        for dir in state.dirs.values_mut() {
            dir.sync();
        }
        if !no_op {
            for inode in state.inodes.values_mut() {
                inode.sync();
            }
        }
        Ok(())
    }
}

/// An open file on a [`SimDisk`].
pub struct SimFile {
    disk: Arc<SimDisk>,
    inode: u64,
    /// The disk's generation when opened: after a crash the handle is dead.
    generation: u64,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimFile(inode {})", self.inode)
    }
}

impl SimFile {
    fn with_inode<T>(&self, work: impl FnOnce(&mut Inode, SimFaults) -> T) -> io::Result<T> {
        let mut state = self.disk.lock();
        if state.generation != self.generation {
            return Err(dead_handle());
        }
        let faults = state.faults;
        // An unlinked file stays readable and writable through its handles, as on Linux.
        let inode = state.inodes.get_mut(&self.inode).ok_or_else(dead_handle)?;
        Ok(work(inode, faults))
    }

    /// Writes `parts`, concatenated, at `position` (one write: a crash may tear it anywhere).
    pub fn write_at(&self, parts: &[bytes::Bytes], position: u64) -> io::Result<()> {
        let bytes: Vec<u8> = parts.iter().flat_map(|part| part.iter().copied()).collect();
        if bytes.is_empty() {
            return Ok(());
        }
        self.with_inode(|inode, _| inode.write(position, &bytes))
    }

    /// Appends up to `len_bytes` read at `position` to `buf`; returns how many were read.
    pub fn read_at(&self, buf: &mut Vec<u8>, position: u64, len_bytes: usize) -> io::Result<usize> {
        self.with_inode(|inode, _| {
            let start = to_usize(position).min(inode.data.len());
            let end = start.saturating_add(len_bytes).min(inode.data.len());
            buf.extend_from_slice(&inode.data[start..end]);
            end - start
        })
    }

    pub fn sync_data(&self) -> io::Result<()> {
        self.with_inode(|inode, faults| {
            if !faults.file_sync_is_a_no_op {
                inode.sync();
            }
        })
    }

    pub fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.with_inode(|inode, _| inode.set_len(len_bytes))
    }

    pub fn len_bytes(&self) -> io::Result<u64> {
        self.with_inode(|inode, _| inode.data.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        PathBuf::from("/sim")
    }

    fn read(disk: &Arc<SimDisk>, path: &Path) -> Option<Vec<u8>> {
        disk.fs().read_file(path).ok()
    }

    #[test]
    fn synced_data_and_names_survive_every_crash() {
        for seed in 0..200 {
            let disk = SimDisk::new(&root());
            let dir = root().join("p");
            disk.fs().create_dir_all(&dir).expect("mkdir");
            disk.fs().sync_dir(&root()).expect("sync root");
            let file = disk
                .fs()
                .open(&dir.join("a"), SimOpen::Create { truncate: false })
                .expect("create");
            file.write_at(&[bytes::Bytes::from_static(b"hello")], 0)
                .expect("write");
            file.sync_data().expect("sync");
            disk.fs().sync_dir(&dir).expect("sync dir");
            file.write_at(&[bytes::Bytes::from_static(b"world")], 5)
                .expect("write");
            disk.crash(&mut SimRng::new(seed));
            let after = read(&disk, &dir.join("a")).expect("the synced name survives");
            assert_eq!(&after[..5], b"hello", "seed {seed}");
            assert!(after.len() <= 10);
            assert!(file.len_bytes().is_err(), "handles die with the crash");
        }
    }

    #[test]
    fn unsynced_names_and_data_may_go_each_way() {
        let mut outcomes = BTreeSet::new();
        for seed in 0..400 {
            let disk = SimDisk::new(&root());
            let file = disk
                .fs()
                .open(&root().join("a"), SimOpen::Create { truncate: false })
                .expect("create");
            file.write_at(&[bytes::Bytes::from_static(b"abcdefgh")], 0)
                .expect("write");
            file.sync_data().expect("data synced, name not");
            disk.fs()
                .rename(&root().join("a"), &root().join("b"))
                .expect("rename");
            disk.crash(&mut SimRng::new(seed));
            let a = read(&disk, &root().join("a"));
            let b = read(&disk, &root().join("b"));
            assert!(a.is_none() || b.is_none(), "a rename is atomic");
            for content in a.iter().chain(b.iter()) {
                assert_eq!(content, b"abcdefgh", "synced data is whole");
            }
            outcomes.insert((a.is_some(), b.is_some()));
        }
        // Never created durably, created but not renamed, renamed.
        assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    }

    #[test]
    fn unsynced_writes_are_dropped_kept_or_torn() {
        let mut seen = BTreeSet::new();
        for seed in 0..400 {
            let disk = SimDisk::new(&root());
            let file = disk
                .fs()
                .open(&root().join("a"), SimOpen::Create { truncate: false })
                .expect("create");
            disk.fs().sync_dir(&root()).expect("sync");
            file.write_at(&[bytes::Bytes::from_static(b"0123456789")], 0)
                .expect("write");
            disk.crash(&mut SimRng::new(seed));
            let after = read(&disk, &root().join("a")).expect("synced name");
            for (index, byte) in after.iter().enumerate() {
                assert!(
                    *byte == 0 || *byte == b'0' + index as u8,
                    "only written bytes or holes"
                );
            }
            seen.insert(after);
        }
        assert!(seen.contains(&Vec::new()), "dropped");
        assert!(seen.contains(b"0123456789".as_slice()), "kept");
        assert!(seen.len() > 4, "torn in several ways: {}", seen.len());
    }

    #[test]
    fn an_unsynced_directory_takes_its_files_with_it() {
        let mut lost = 0;
        for seed in 0..100 {
            let disk = SimDisk::new(&root());
            let dir = root().join("p");
            disk.fs().create_dir_all(&dir).expect("mkdir");
            let file = disk
                .fs()
                .open(&dir.join("a"), SimOpen::Create { truncate: false })
                .expect("create");
            file.sync_data().expect("sync");
            disk.fs().sync_dir(&dir).expect("sync dir, not its parent");
            disk.crash(&mut SimRng::new(seed));
            if !disk.fs().exists(&dir).expect("alive") {
                lost += 1;
                assert!(!disk.fs().exists(&dir.join("a")).expect("alive"));
            }
        }
        assert!(
            lost > 0,
            "an mkdir without a sync of the parent can be lost"
        );
    }

    #[test]
    fn a_lying_sync_makes_nothing_durable() {
        let disk = SimDisk::new(&root());
        disk.set_faults(SimFaults {
            file_sync_is_a_no_op: true,
        });
        let file = disk
            .fs()
            .open(&root().join("a"), SimOpen::Create { truncate: false })
            .expect("create");
        disk.fs().sync_dir(&root()).expect("sync");
        file.write_at(&[bytes::Bytes::from_static(b"x")], 0)
            .expect("write");
        file.sync_data().expect("lies");
        let mut lost = false;
        for seed in 0..50 {
            let mut rng = SimRng::new(seed);
            let image = disk
                .lock()
                .inodes
                .get(&file.inode)
                .map(|inode| inode.crash_image(&mut rng))
                .unwrap_or_default();
            lost |= image.is_empty();
        }
        assert!(lost, "data after a lying sync can be lost");
    }
}
