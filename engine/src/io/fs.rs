//! [`Fs`]: every file-system call the log makes besides reads and writes of open files —
//! create, open, read a small file whole, rename, remove, list a directory, sync a directory or
//! the whole file system — on the real file system, or in crash tests on a simulated disk
//! ([`super::sim`]).
//!
//! Why an enum chosen once per log rather than a trait object or a generic: the log stays one
//! concrete type (no generic parameter spreading through the server), the real arm is a direct
//! call (no virtual call, no allocation), and without `cfg(test)` or the `simulation` feature
//! the simulated arm does not exist at all. None of these calls is on the per-append path; the
//! per-append path goes through [`SharedFile`], which makes the same choice per handle.

use std::io::{self, Write};
use std::path::Path;

use super::file::SharedFile;

/// How to open a file: always for reading and writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist.
    Existing,
    /// Create it if missing; `truncate` empties an existing one.
    Create { truncate: bool },
}

/// The file system a log lives on. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub enum Fs {
    /// The machine's file system, through `std::fs` and io_uring.
    #[default]
    Real,
    /// A process's view of a simulated disk whose power can be cut
    /// ([`super::sim::SimDisk::crash`]).
    #[cfg(any(test, feature = "simulation"))]
    Simulated(super::sim::SimFs),
}

impl Fs {
    pub fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        match self {
            Fs::Real => std::fs::create_dir_all(dir),
            #[cfg(any(test, feature = "simulation"))]
            Fs::Simulated(sim) => sim.create_dir_all(dir),
        }
    }

    pub fn open(&self, path: &Path, mode: OpenMode) -> io::Result<SharedFile> {
        match self {
            Fs::Real => {
                let mut options = std::fs::OpenOptions::new();
                options.read(true).write(true);
                if let OpenMode::Create { truncate } = mode {
                    options.create(true).truncate(truncate);
                }
                options.open(path).map(SharedFile::new)
            }
            #[cfg(any(test, feature = "simulation"))]
            Fs::Simulated(sim) => {
                let mode = match mode {
                    OpenMode::Existing => super::sim::SimOpen::Existing,
                    OpenMode::Create { truncate } => super::sim::SimOpen::Create { truncate },
                };
                SharedFile::simulated(sim.open(path, mode)?)
            }
        }
    }

    /// The whole contents of a (small) file.
    pub fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        match self {
            Fs::Real => std::fs::read(path),
            #[cfg(any(test, feature = "simulation"))]
            Fs::Simulated(sim) => sim.read_file(path),
        }
    }

    /// The whole contents of a (small) text file.
    pub fn read_to_string(&self, path: &Path) -> io::Result<String> {
        String::from_utf8(self.read(path)?)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
    }

    pub fn exists(&self, path: &Path) -> bool {
        match self {
            Fs::Real => path.exists(),
            #[cfg(any(test, feature = "simulation"))]
            Fs::Simulated(sim) => sim.exists(path).unwrap_or(false),
        }
    }

    /// Renames a file within its directory.
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        match self {
            Fs::Real => std::fs::rename(from, to),
            #[cfg(any(test, feature = "simulation"))]
            Fs::Simulated(sim) => sim.rename(from, to),
        }
    }

    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        match self {
            Fs::Real => std::fs::remove_file(path),
            #[cfg(any(test, feature = "simulation"))]
            Fs::Simulated(sim) => sim.remove_file(path),
        }
    }

    /// The names in `dir` (names that are not UTF-8 are skipped: the log names none so).
    pub fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        match self {
            Fs::Real => {
                let mut names = Vec::new();
                for entry in std::fs::read_dir(dir)? {
                    if let Ok(name) = entry?.file_name().into_string() {
                        names.push(name);
                    }
                }
                Ok(names)
            }
            #[cfg(any(test, feature = "simulation"))]
            Fs::Simulated(sim) => sim.list_dir(dir),
        }
    }

    /// fsync of a directory: makes creations, renames and deletions in it durable.
    pub fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        match self {
            Fs::Real => std::fs::File::open(dir).and_then(|handle| handle.sync_all()),
            #[cfg(any(test, feature = "simulation"))]
            Fs::Simulated(sim) => sim.sync_dir(dir),
        }
    }

    /// Creates (or empties) `path`, writes `contents`, and fdatasyncs it if `sync`: a blocking
    /// write of a small file (checkpoints), done inline on the calling thread.
    pub fn write_file(&self, path: &Path, contents: &[u8], sync: bool) -> io::Result<()> {
        match self {
            Fs::Real => {
                let mut file = std::fs::File::create(path)?;
                file.write_all(contents)?;
                if sync {
                    file.sync_data()?;
                }
                Ok(())
            }
            #[cfg(any(test, feature = "simulation"))]
            Fs::Simulated(sim) => {
                let file = sim.open(path, super::sim::SimOpen::Create { truncate: true })?;
                file.write_at(&[bytes::Bytes::copy_from_slice(contents)], 0)?;
                if sync {
                    file.sync_data()?;
                }
                Ok(())
            }
        }
    }
}
