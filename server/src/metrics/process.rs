//! The process's own gauges, read from the kernel when scraped: CPU time, resident memory and
//! open file descriptors.

use std::path::Path;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time of every thread.
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    /// Entries of /proc/self/fd (segment files, sockets, rings, pipes).
    pub open_files: u64,
}

/// Reads the process's stats; a value the kernel does not give is 0.
pub fn read_process_stats() -> ProcessStats {
    ProcessStats {
        cpu_seconds: cpu_seconds(),
        resident_memory_bytes: resident_memory_bytes(Path::new("/proc/self/statm")),
        open_files: count_entries(Path::new("/proc/self/fd")),
    }
}

#[allow(clippy::cast_precision_loss, reason = "seconds of CPU time as a float")]
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0.0;
        }
        usage
    };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The second field of `statm` (resident pages) times the page size.
fn resident_memory_bytes(statm: &Path) -> u64 {
    // SAFETY: sysconf has no memory effects.
    let page_bytes = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    std::fs::read_to_string(statm)
        .ok()
        .and_then(|text| parse_statm_resident_pages(&text))
        .map_or(0, |pages| pages.saturating_mul(page_bytes))
}

fn parse_statm_resident_pages(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

fn count_entries(dir: &Path) -> u64 {
    // The directory handle read_dir opens is itself one entry while it is read.
    std::fs::read_dir(dir).map_or(0, |entries| (entries.count() as u64).saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_gives_resident_pages() {
        assert_eq!(
            parse_statm_resident_pages("1000 250 30 1 0 100 0\n"),
            Some(250)
        );
        assert_eq!(parse_statm_resident_pages("1000"), None);
    }

    #[test]
    fn this_process_has_memory_cpu_and_files() {
        let before = read_process_stats();
        // Many, so that files other tests of this process close meanwhile cannot hide them.
        let files: Vec<std::fs::File> = (0..64)
            .map(|_| std::fs::File::open("/proc/self/statm").expect("open statm"))
            .collect();
        let after = read_process_stats();
        drop(files);
        assert!(before.resident_memory_bytes > 0);
        assert!(before.cpu_seconds >= 0.0);
        assert!(
            after.open_files >= before.open_files + 32,
            "open files count: {before:?} {after:?}"
        );
    }
}
