//! `strom test-fs` (hidden): a FUSE filesystem that can lose power.
//!
//! It mounts `--mount` as a passthrough to `--backing`, except that nothing reaches the backing
//! directory before it is made durable: file data waits in memory until an fsync/fdatasync of
//! that file, and creations, renames and removals are undone on a power loss unless an fsync of
//! their directory followed (see [`journal`] for the exact model). Tests run a broker with its
//! log dir on the mount, kill it, and make the filesystem lose power:
//!
//! - SIGUSR1: power loss. Every unsynced byte and directory operation is dropped, the
//!   filesystem unmounts and the process exits 0. The backing directory is what a disk would
//!   hold after the machine lost power; mount a new `strom test-fs` over it to "reboot".
//! - SIGTERM / SIGINT: clean shutdown. Everything is made durable first, then it unmounts.
//!
//! It prints one JSON line when mounted (`{"event":"mounted",...}`) and one when it stops
//! (`{"event":"power_lost"|"shut_down", "files":..,"bytes":..,"namespace_ops":..}`).
//! Linux only; mounting needs root (or fusermount3 from the `fuse3` package).

pub mod fs;
pub mod journal;
pub mod overlay;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use self::fs::{PowerLossFs, ShutdownReport};

#[derive(Args, Debug)]
pub struct TestFsArgs {
    /// The directory that holds what is durable (the simulated disk).
    #[arg(long)]
    pub backing: PathBuf,
    /// Where to mount the filesystem (an existing, empty directory).
    #[arg(long)]
    pub mount: PathBuf,
    /// FUSE worker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// Runs the filesystem until a signal stops it; returns the exit code.
pub fn run(args: &TestFsArgs) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: strom test-fs: {error}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &TestFsArgs) -> io::Result<()> {
    // Block the control signals before any thread starts, so every thread inherits the mask and
    // only the sigwait below receives them.
    let signals = control_signals()?;
    let filesystem = PowerLossFs::new(&args.backing)?;
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("strom-powerloss".to_string()),
        fuser::MountOption::Subtype("strom-powerloss".to_string()),
    ];
    config.n_threads = Some(args.threads.max(1));
    let session = fuser::Session::new(filesystem.clone(), &args.mount, &config)?;
    let background = session.spawn()?;
    print_event(
        "mounted",
        serde_json::json!({
            "backing": args.backing.display().to_string(),
            "mount": args.mount.display().to_string(),
        }),
    );

    let signal = wait_for(&signals)?;
    let (event, report) = if signal == libc::SIGUSR1 {
        ("power_lost", filesystem.lose_power())
    } else {
        ("shut_down", filesystem.sync_everything()?)
    };
    // The filesystem answers EIO from here on; unmounting ends the session thread.
    background.umount_and_join()?;
    print_event(event, report_json(&report));
    Ok(())
}

fn report_json(report: &ShutdownReport) -> serde_json::Value {
    serde_json::to_value(report).unwrap_or(serde_json::Value::Null)
}

fn print_event(event: &str, details: serde_json::Value) {
    let mut line = serde_json::json!({ "event": event });
    if let (Some(line), Some(details)) = (line.as_object_mut(), details.as_object()) {
        line.extend(details.clone());
    }
    let mut stdout = io::stdout().lock();
    // The test reads these lines; a closed stdout only loses the report.
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

fn control_signals() -> io::Result<libc::sigset_t> {
    // SAFETY: sigemptyset/sigaddset initialise the set we own; pthread_sigmask only changes this
    // thread's mask (inherited by the threads started after it).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGUSR1, libc::SIGTERM, libc::SIGINT] {
            libc::sigaddset(&mut set, signal);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(set)
    }
}

fn wait_for(signals: &libc::sigset_t) -> io::Result<libc::c_int> {
    let mut signal: libc::c_int = 0;
    // SAFETY: sigwait reads the initialised set and writes the received signal number.
    let rc = unsafe { libc::sigwait(signals, &mut signal) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(signal)
}
