//! Simulated power loss, checked. Seeded crash-and-recover cycles of a partition log on a
//! simulated disk ([`crate::io::sim`]): each cycle opens the log on what the last crash left,
//! checks it, runs a random mix of work (leader and replicated appends, segment rolls with small
//! segments, index writes on seal and close, time and size retention, DeleteRecords, truncation
//! to an offset and full truncation, leader epochs, waits for writes and for durability), then
//! either cuts the power or closes the log cleanly and cuts the power after. Some histories
//! (see [`Flavour`]) also open the log under a [`LogDir`], write the replication-offset
//! checkpoint, or are compacted (keyed records, compaction passes and their segment swaps).
//!
//! After every open the checker verifies:
//! - every batch acknowledged as durable (under `durability=sync`: below the log's durable
//!   offset at the crash; under any policy: everything a clean close or an earlier recovery
//!   left on disk) is there, byte for byte, at its offset — in a compacted log, every durable
//!   record is there unless a later record with its key is;
//! - every batch read back is one that was appended at that offset, byte for byte (compacted:
//!   or a cleaned copy of one, with a subset of its records and a valid CRC);
//! - offsets are contiguous from the log start to the log end, no gap, no overlap (compacted:
//!   in order without overlap);
//! - every offset-index entry points at a batch start of its segment; every time-index entry
//!   at a batch start (or the segment's base) and never hides a larger timestamp before it;
//! - the leader-epoch cache agrees with the batches' epochs and lies within the log;
//! - log start <= high watermark <= log end after every step; the log start never goes back;
//! - a clean close is recognised as one; the replication-offset checkpoint reads back as last
//!   written.
//!
//! Commands:
//! - the CI run (10,000 cycles, ~20-35 s in debug on the 2-core machine):
//!   `cargo nextest run -p strom-engine crash_simulation`;
//! - a longer run: `STROM_SIM_CYCLES=1000000 cargo test --release -p strom-engine --lib
//!   crash_simulation_every -- --nocapture` (`STROM_SIM_FIRST_SEED=<n>` starts elsewhere);
//! - one failing history, exactly as it failed (`STROM_SIM_TRACE=1` prints every step):
//!   `STROM_SIM_SEED=<seed> cargo test -p strom-engine --lib crash_simulation_every --
//!   --nocapture`.
//!
//! Not covered: `durability=interval` (its syncs follow wall-clock timers, which would make runs
//! unrepeatable), tombstones (their removal after `delete.retention.ms` needs a clock-aware
//! oracle), and I/O errors other than power loss.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::batch::{split_record_set, BatchHeader};
use crate::io::sim::{SimDisk, SimFaults, SimRng};
use crate::io::Fs;

/// Cycles per CI run (the brief: at least 10,000 within about a minute in debug).
const CYCLES_DEFAULT: u64 = 10_000;
/// Cycles on one disk before starting a fresh one: long enough for segments to roll, retention
/// to delete and crashes to pile up; short enough that a failing seed replays quickly.
const CYCLES_PER_HISTORY: u64 = 20;
const FIRST_SEED_DEFAULT: u64 = 0x5EED_0000;
/// Operations between two crashes (plus the one append every cycle makes).
const OPS_PER_CYCLE_MAX: u64 = 10;

/// A batch as the driver knows it.
#[derive(Debug, Clone)]
struct ModelBatch {
    next_offset: i64,
    bytes: Vec<u8>,
    /// Whether the log promised it survives a crash.
    durable: bool,
}

#[derive(Debug, Default)]
struct Model {
    /// The log as the driver believes it is now, by base offset.
    live: BTreeMap<i64, ModelBatch>,
    /// Every batch ever appended, by base offset: all a crash may bring back.
    ever: HashMap<i64, HashSet<Vec<u8>>>,
    /// The log start as last made durable (checkpointed) by the log.
    durable_log_start: i64,
    /// The newest leader epoch the driver used: epochs only grow, as a controller's do.
    epoch: i32,
    clock_ms: i64,
    /// The last cycle ended with a clean close: the next open must say so.
    expect_clean: bool,
    /// The high watermark last written to the replication-offset checkpoint (written durably,
    /// so exactly this must be read back).
    replication_checkpoint: Option<i64>,
    flavour: Flavour,
    /// Compacted histories: the high watermark as the (simulated) replica owner last set it.
    /// It only grows, is never past the durable offset, and truncation never goes below it —
    /// what replication guarantees and compaction relies on (it removes a record only for a
    /// later one below the high watermark, which no truncation may take away).
    committed: i64,
    /// Numbers the values of keyed records (compacted histories), so each is unique.
    next_value_id: u64,
}

/// What a history exercises beyond the core mix. Drawn from the seed by its own generator, so
/// adding a kind of work leaves the histories without it (and their seeds) as they were; the
/// regression tests replay with none of it, exactly as their bugs were found.
#[derive(Debug, Clone, Copy, Default)]
struct Flavour {
    /// Open the log under a [`LogDir`] (one clean-shutdown marker for the dir, written after a
    /// `syncfs`) instead of on its own.
    log_dir: bool,
    /// Write the log dir's `replication-offset-checkpoint` now and then.
    replication_checkpoint: bool,
    /// `cleanup.policy=compact` with keyed records and compaction passes (whose segment swaps
    /// crash like everything else); the checker then allows what compaction may do.
    compact: bool,
}

impl Flavour {
    fn of(seed: u64) -> Flavour {
        let mut rng = SimRng::new(seed ^ 0xF1A7_F1A7_F1A7_F1A7);
        Flavour {
            log_dir: rng.chance(30),
            replication_checkpoint: rng.chance(50),
            compact: rng.chance(30),
        }
    }
}

impl Model {
    fn record(&mut self, base: i64, next_offset: i64, bytes: Vec<u8>) {
        self.ever.entry(base).or_default().insert(bytes.clone());
        self.live.insert(
            base,
            ModelBatch {
                next_offset,
                bytes,
                durable: false,
            },
        );
    }

    fn mark_durable_below(&mut self, offset: i64) {
        for batch in self.live.values_mut() {
            if batch.next_offset <= offset {
                batch.durable = true;
            }
        }
    }
}

type Check = std::result::Result<(), String>;

/// `STROM_SIM_TRACE=1` prints every step (with `--nocapture`), for reading a failing seed.
fn trace(message: impl FnOnce() -> String) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("STROM_SIM_TRACE").is_some()) {
        println!("{}", message());
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

fn random_config(rng: &mut SimRng) -> LogConfig {
    LogConfig {
        segment_bytes: rng.between(1024, 3000),
        index_interval_bytes: rng.between(64, 600),
        retention_ms: rng.chance(30).then(|| rng.between(50, 400) as i64),
        retention_bytes: rng.chance(50).then(|| rng.between(2000, 8000)),
        durability: if rng.chance(75) {
            Durability::Sync
        } else {
            Durability::None
        },
        write_inline: rng.chance(50),
        ..LogConfig::default()
    }
}

/// Opens the log on the disk's current contents, checks it, and runs one cycle of work.
async fn run_cycle(
    disk: &Arc<SimDisk>,
    root: &Path,
    model: &mut Model,
    rng: &mut SimRng,
    flavour: Flavour,
) -> Check {
    let dir = root.join("topic-0");
    let mut config = random_config(rng);
    if flavour.compact {
        config.cleanup_policy = CleanupPolicy::Compact;
        config.min_cleanable_dirty_ratio = 0.1;
    }
    let durability = config.durability;
    let fs = Fs::Simulated(disk.fs());
    let log_dir = if flavour.log_dir {
        Some(LogDir::open_on(fs.clone(), root).map_err(|error| format!("log dir open: {error}"))?)
    } else {
        None
    };
    let scope = log_dir
        .as_ref()
        .map_or(ShutdownScope::OwnMarker, LogDir::scope);
    let (log, report) = PartitionLog::open_on(fs.clone(), &dir, config, scope)
        .await
        .map_err(|error| format!("open failed: {error}"))?;
    let checkpoint_path = root.join(REPLICATION_OFFSET_CHECKPOINT_FILE);
    if let Some(expected) = model.replication_checkpoint {
        let read = OffsetCheckpointFile::read_on(&fs, &checkpoint_path)
            .map_err(|error| format!("replication checkpoint unreadable: {error}"))?;
        let found = read.get(&("topic".to_string(), 0)).copied();
        if found != Some(expected) {
            return Err(format!(
                "replication checkpoint holds {found:?}, {expected} was written durably"
            ));
        }
    }
    if model.expect_clean && !report.clean_shutdown {
        return Err(format!(
            "a clean close was not recognised as one: {report:?}"
        ));
    }
    trace(|| {
        format!(
            "open ({durability:?}): {report:?}; log [{}, {}), epochs {:?}",
            log.log_start_offset(),
            log.log_end_offset(),
            log.leader_epoch_entries()
        )
    });
    check_recovered(&log, model).await?;
    if flavour.compact {
        log.reset_high_watermark(model.committed);
        model.committed = log.high_watermark();
    } else {
        log.set_high_watermark_follows_log_end(true);
    }
    for _ in 0..rng.between(0, OPS_PER_CYCLE_MAX) {
        step(&log, model, rng, durability).await?;
        if flavour.replication_checkpoint && rng.chance(30) {
            let high_watermark = log.high_watermark();
            let offsets = PartitionOffsets::from([(("topic".to_string(), 0), high_watermark)]);
            OffsetCheckpointFile::write_on(&fs, &checkpoint_path, &offsets)
                .map_err(|error| format!("replication checkpoint: {error}"))?;
            trace(|| format!("replication checkpoint {high_watermark}"));
            model.replication_checkpoint = Some(high_watermark);
        }
        let (start, high_watermark, end) = (
            log.log_start_offset(),
            log.high_watermark(),
            log.log_end_offset(),
        );
        if !(start <= high_watermark && high_watermark <= end) {
            return Err(format!(
                "log start {start} <= high watermark {high_watermark} <= log end {end} broken"
            ));
        }
    }
    // Appends go on after recovery.
    append_leader(&log, model, rng, true).await?;
    if rng.chance(15) {
        trace(|| "clean close, then power loss".into());
        log.close()
            .await
            .map_err(|error| format!("clean close failed: {error}"))?;
        if let Some(log_dir) = &log_dir {
            let closed = log_dir
                .close()
                .map_err(|error| format!("log dir close failed: {error}"))?;
            if closed != LogDirClose::MarkedClean {
                return Err(format!("the log dir closed {closed:?}"));
            }
        }
        model.mark_durable_below(i64::MAX);
        model.expect_clean = true;
    } else {
        if durability == Durability::Sync {
            model.mark_durable_below(log.durable_offset());
        }
        model.expect_clean = false;
        trace(|| format!("power loss; durable offset {}", log.durable_offset()));
    }
    disk.crash(rng);
    // The process that held the log is gone: its handles fail, its tasks end.
    let _ = log.close().await;
    Ok(())
}

/// One random piece of work.
async fn step(
    log: &Rc<PartitionLog>,
    model: &mut Model,
    rng: &mut SimRng,
    durability: Durability,
) -> Check {
    if model.flavour.compact && rng.chance(20) {
        let target = rng.between(
            model.committed as u64,
            log.durable_offset().max(model.committed) as u64,
        );
        log.set_high_watermark(target as i64);
        model.committed = log.high_watermark();
        trace(|| format!("high watermark {}", model.committed));
        return Ok(());
    }
    if model.flavour.compact && rng.chance(12) {
        let outcome = log
            .compact(model.clock_ms)
            .await
            .map_err(|error| format!("compact: {error}"))?;
        trace(|| format!("compact: {outcome:?}"));
        return Ok(());
    }
    match rng.below(100) {
        0..=39 => append_leader(log, model, rng, false).await,
        40..=49 => append_replicated(log, model, rng).await,
        50..=54 => {
            model.epoch += 1;
            trace(|| format!("epoch {}", model.epoch));
            if rng.chance(50) {
                log.start_leader_epoch(model.epoch)
                    .map_err(|error| format!("start_leader_epoch: {error}"))?;
            }
            Ok(())
        }
        55..=62 => {
            let (start, next) = (log.log_start_offset(), log.next_offset());
            // A compacted log is never truncated below its high watermark (see `committed`).
            let lowest = if model.flavour.compact {
                start.max(model.committed).min(next)
            } else {
                start
            };
            let offset = rng.between(lowest as u64, next as u64) as i64;
            truncate(log, model, offset).await
        }
        63..=64 => {
            // Below or at the log start: the whole log goes, a new one starts there.
            let start = log.log_start_offset();
            let offset = start - rng.below(3) as i64;
            if model.flavour.compact && model.committed > offset.max(0) {
                return Ok(());
            }
            truncate(log, model, offset.max(0)).await
        }
        65..=72 => {
            model.clock_ms += rng.below(300) as i64;
            let outcome = log
                .enforce_retention(model.clock_ms)
                .map_err(|error| format!("retention: {error}"))?;
            trace(|| format!("retention at {}: {outcome:?}", model.clock_ms));
            moved_log_start(log, model);
            Ok(())
        }
        73..=77 => {
            let (start, high_watermark) = (log.log_start_offset(), log.high_watermark());
            let offset = rng.between(start as u64, high_watermark as u64) as i64;
            trace(|| format!("delete_records_before({offset})"));
            log.delete_records_before(offset)
                .map_err(|error| format!("delete_records_before({offset}): {error}"))?;
            moved_log_start(log, model);
            Ok(())
        }
        78..=87 => {
            // Let the writer and syncer get some way.
            for _ in 0..rng.between(1, 4) {
                tokio::task::yield_now().await;
            }
            Ok(())
        }
        _ => {
            // A sync point: wait until everything written is durable.
            if durability == Durability::Sync {
                let target = log.next_offset();
                let mut progress = log.subscribe();
                progress
                    .wait_for(|progress| progress.failed || progress.durable_offset >= target)
                    .await
                    .map_err(|_| "log dropped".to_string())?;
            }
            Ok(())
        }
    }
}

fn moved_log_start(log: &PartitionLog, model: &mut Model) {
    let start = log.log_start_offset();
    model.durable_log_start = start;
    model.live.retain(|_, batch| batch.next_offset > start);
}

async fn truncate(log: &PartitionLog, model: &mut Model, offset: i64) -> Check {
    let full = offset <= log.log_start_offset();
    trace(|| format!("truncate_to({offset})"));
    let new_end = log
        .truncate_to(offset)
        .await
        .map_err(|error| format!("truncate_to({offset}): {error}"))?;
    if full {
        model.live.clear();
        model.durable_log_start = offset;
    } else {
        // A batch holding `offset` in its middle goes whole.
        model.live.retain(|_, batch| batch.next_offset <= offset);
        if model.flavour.compact {
            // Compaction may have emptied the batches the model still lists.
        } else if let Some(kept_end) = model
            .live
            .values()
            .next_back()
            .map(|batch| batch.next_offset)
        {
            if new_end != kept_end {
                return Err(format!(
                    "truncate_to({offset}) ended the log at {new_end}, expected {kept_end}"
                ));
            }
        }
    }
    Ok(())
}

/// A random record set of one or two batches.
fn record_set(rng: &mut SimRng, model: &mut Model) -> Bytes {
    let clock_ms = model.clock_ms;
    let mut bytes = Vec::new();
    if model.flavour.compact {
        for _ in 0..rng.between(1, 2) {
            // Few keys, so compaction finds older values to remove; unique values, so every
            // record is recognisable; no tombstones (they may go after delete.retention.ms).
            let records: Vec<(Vec<u8>, Vec<u8>)> = (0..rng.between(1, 4))
                .map(|_| {
                    model.next_value_id += 1;
                    let padding = "x".repeat(rng.below(60) as usize);
                    (
                        format!("k{}", rng.below(6)).into_bytes(),
                        format!("v{}{padding}", model.next_value_id).into_bytes(),
                    )
                })
                .collect();
            let keyed: Vec<crate::batch::build::KeyValue<'_>> = records
                .iter()
                .map(|(key, value)| (Some(key.as_slice()), Some(value.as_slice())))
                .collect();
            bytes.extend(crate::batch::build::build_keyed_batch(
                &keyed,
                clock_ms - rng.below(20) as i64,
            ));
        }
        return Bytes::from(bytes);
    }
    for _ in 0..rng.between(1, 2) {
        let count = rng.between(1, 4) as i32;
        let value_bytes = rng.between(0, 150) as usize;
        // Timestamps mostly grow, sometimes go back (producers' clocks differ).
        let timestamp_ms = clock_ms - rng.below(20) as i64;
        bytes.extend(crate::batch::build::build_batch(
            0,
            count,
            value_bytes,
            timestamp_ms,
            -1,
            -1,
            -1,
        ));
    }
    Bytes::from(bytes)
}

/// The batch as the log stores it: base offset and leader epoch patched in (both outside the
/// CRC).
fn stored(original: &[u8], base_offset: i64, epoch: i32) -> Vec<u8> {
    let mut bytes = original.to_vec();
    bytes[..8].copy_from_slice(&base_offset.to_be_bytes());
    bytes[12..16].copy_from_slice(&epoch.to_be_bytes());
    bytes
}

async fn append_leader(
    log: &PartitionLog,
    model: &mut Model,
    rng: &mut SimRng,
    wait_written: bool,
) -> Check {
    model.clock_ms += rng.between(1, 30) as i64;
    let record_set = record_set(rng, model);
    let receipt = log
        .append(record_set.clone(), model.epoch)
        .await
        .map_err(|error| format!("append: {error}"))?;
    trace(|| {
        format!(
            "append [{}, {}] epoch {}",
            receipt.base_offset, receipt.last_offset, model.epoch
        )
    });
    let mut base = receipt.base_offset;
    for range in split_record_set(&record_set).map_err(|error| error.to_string())? {
        let original = &record_set[range];
        let header = BatchHeader::parse(original).map_err(|error| error.to_string())?;
        let next = base + i64::from(header.last_offset_delta) + 1;
        model.record(base, next, stored(original, base, model.epoch));
        base = next;
    }
    if base != receipt.last_offset + 1 {
        return Err(format!("receipt {receipt:?} does not cover the batches"));
    }
    match rng.below(3) {
        _ if wait_written => receipt.written().wait().await,
        0 => receipt.written().wait().await,
        1 => receipt.durable().wait().await,
        _ => Ok(()),
    }
    .map_err(|error| format!("waiting for an append: {error}"))
}

async fn append_replicated(log: &PartitionLog, model: &mut Model, rng: &mut SimRng) -> Check {
    // A leader's batches: its offsets and its (newer or same) epoch.
    if rng.chance(30) {
        model.epoch += 1;
    }
    model.clock_ms += rng.between(1, 30) as i64;
    let original = record_set(rng, model);
    let mut bytes = Vec::with_capacity(original.len());
    let mut base = log.next_offset();
    let mut batches = Vec::new();
    for range in split_record_set(&original).map_err(|error| error.to_string())? {
        let batch = &original[range];
        let header = BatchHeader::parse(batch).map_err(|error| error.to_string())?;
        let next = base + i64::from(header.last_offset_delta) + 1;
        let stored = stored(batch, base, model.epoch);
        bytes.extend_from_slice(&stored);
        batches.push((base, next, stored));
        base = next;
    }
    let bytes = Bytes::from(bytes);
    let validated = log
        .validate_replicated_record_set(&bytes)
        .map_err(|error| format!("validate replicated: {error}"))?;
    let receipt = log
        .append_replicated(bytes, validated)
        .await
        .map_err(|error| format!("append_replicated: {error}"))?;
    for (base, next, stored) in batches {
        trace(|| format!("replicated append [{base}, {next}) epoch {}", model.epoch));
        model.record(base, next, stored);
    }
    if rng.chance(50) {
        receipt
            .written()
            .wait()
            .await
            .map_err(|error| format!("waiting for a replicated append: {error}"))?;
    }
    Ok(())
}

/// A batch read back from the log.
struct ReadBatch {
    base: i64,
    next: i64,
    epoch: i32,
    bytes: Vec<u8>,
}

async fn read_back(log: &PartitionLog) -> std::result::Result<Vec<ReadBatch>, String> {
    let mut batches = Vec::new();
    let mut offset = log.log_start_offset();
    while let Some(range) = log
        .read(offset, 1 << 20, i64::MAX)
        .await
        .map_err(|error| format!("read at {offset}: {error}"))?
    {
        let bytes = range
            .read_to_vec()
            .await
            .map_err(|error| format!("read range at {offset}: {error}"))?;
        for batch_range in split_record_set(&bytes).map_err(|error| format!("split: {error}"))? {
            let batch = bytes[batch_range].to_vec();
            let header = BatchHeader::parse(&batch).map_err(|error| error.to_string())?;
            batches.push(ReadBatch {
                base: header.base_offset,
                next: header.next_offset(),
                epoch: header.partition_leader_epoch,
                bytes: batch,
            });
        }
        if range.next_offset <= offset {
            return Err(format!("a read at {offset} did not move forward"));
        }
        offset = range.next_offset;
    }
    Ok(batches)
}

/// Everything the checker promises about a freshly opened log; then the model takes what was
/// found as the (durable) truth.
async fn check_recovered(log: &PartitionLog, model: &mut Model) -> Check {
    let (log_start, log_end) = (log.log_start_offset(), log.log_end_offset());
    if log_start < model.durable_log_start {
        return Err(format!(
            "the log start went back from {} to {log_start}",
            model.durable_log_start
        ));
    }
    let batches = read_back(log).await?;
    if model.flavour.compact {
        check_compacted(&batches, model, log_start, log_end)?;
    } else {
        check_exact(&batches, model, log_start, log_end)?;
    }
    check_leader_epochs(log, &batches, log_start, log_end)?;
    check_indexes(log).await?;
    // What survived is on disk now: the next crash must keep it.
    model.live = batches
        .into_iter()
        .map(|batch| {
            (
                batch.base,
                ModelBatch {
                    next_offset: batch.next,
                    bytes: batch.bytes,
                    durable: true,
                },
            )
        })
        .collect();
    model.durable_log_start = log_start;
    model.epoch = model.epoch.max(log.latest_leader_epoch().unwrap_or(0));
    Ok(())
}

/// The checks of a log that is never compacted: contiguous, every batch one that was appended
/// there, every durable batch there byte for byte.
fn check_exact(batches: &[ReadBatch], model: &Model, log_start: i64, log_end: i64) -> Check {
    // Contiguity: from the batch holding the log start to the log end, no gap, no overlap.
    let mut expected_base: Option<i64> = None;
    for batch in batches {
        match expected_base {
            None if batch.base > log_start || batch.next <= log_start => {
                return Err(format!(
                    "the first batch [{}, {}) does not hold the log start {log_start}",
                    batch.base, batch.next
                ))
            }
            Some(expected) if batch.base != expected => {
                return Err(format!(
                    "batch at {} follows one that ended at {expected}",
                    batch.base
                ))
            }
            _ => {}
        }
        expected_base = Some(batch.next);
        let known = model
            .ever
            .get(&batch.base)
            .is_some_and(|appended| appended.contains(&batch.bytes));
        if !known {
            return Err(format!(
                "batch at offset {} was never appended there (or not with these bytes)",
                batch.base
            ));
        }
    }
    let read_end = expected_base.unwrap_or(log_start);
    if read_end != log_end {
        return Err(format!(
            "batches end at {read_end} but the log end offset is {log_end}"
        ));
    }
    // Durable batches survived, byte for byte.
    let found: HashMap<i64, &ReadBatch> = batches.iter().map(|batch| (batch.base, batch)).collect();
    for (base, expected) in model.live.iter().filter(|(_, batch)| batch.durable) {
        match found.get(base) {
            Some(batch) if batch.bytes == expected.bytes => {}
            Some(batch) => {
                return Err(format!(
                    "durable batch [{base}, {}) came back as another batch [{}, {}) (log is [{log_start}, {log_end}))",
                    expected.next_offset, batch.base, batch.next
                ))
            }
            None => {
                return Err(format!(
                    "durable batch [{base}, {}) is lost (log is [{log_start}, {log_end}))",
                    expected.next_offset
                ))
            }
        }
    }
    Ok(())
}

/// A record: its absolute offset, its key, its bytes as stored.
type RecordOf = (i64, Vec<u8>, Vec<u8>);

/// The records of a batch.
fn records_of(batch: &[u8]) -> std::result::Result<Vec<RecordOf>, String> {
    let header = BatchHeader::parse(batch).map_err(|error| error.to_string())?;
    crate::batch::RecordEntries::new(batch)
        .map(|entry| {
            let entry =
                entry.map_err(|error| format!("batch at {}: {error}", header.base_offset))?;
            Ok((
                header.base_offset + i64::from(entry.offset_delta),
                entry.key.unwrap_or_default().to_vec(),
                entry.bytes.to_vec(),
            ))
        })
        .collect()
}

/// The checks of a compacted log: batches in offset order without overlap (compaction leaves
/// gaps); every batch one that was appended there, or a cleaned copy of one (same offsets, a
/// subset of its records, a valid CRC); and every durable record still there unless a later
/// record with its key is.
fn check_compacted(batches: &[ReadBatch], model: &Model, log_start: i64, log_end: i64) -> Check {
    let mut previous_end: Option<i64> = None;
    let mut found: HashMap<i64, (Vec<u8>, Vec<u8>)> = HashMap::new();
    let mut latest_by_key: HashMap<Vec<u8>, i64> = HashMap::new();
    for batch in batches {
        if previous_end.is_some_and(|end| batch.base < end) || batch.next <= log_start {
            return Err(format!(
                "batch [{}, {}) overlaps the one before or lies below the log start {log_start}",
                batch.base, batch.next
            ));
        }
        previous_end = Some(batch.next);
        let appended = model.ever.get(&batch.base);
        let exact = appended.is_some_and(|appended| appended.contains(&batch.bytes));
        if !exact {
            crate::batch::validate_stored_batch(&batch.bytes)
                .map_err(|error| format!("cleaned batch at {}: {error}", batch.base))?;
            let records = records_of(&batch.bytes)?;
            let is_cleaned_copy = appended.is_some_and(|appended| {
                appended.iter().any(|original| {
                    let same_offsets = BatchHeader::parse(original)
                        .is_ok_and(|header| header.next_offset() == batch.next);
                    let original_records = records_of(original).unwrap_or_default();
                    same_offsets
                        && records
                            .iter()
                            .all(|record| original_records.contains(record))
                })
            });
            if !is_cleaned_copy {
                return Err(format!(
                    "batch at offset {} is neither an appended batch nor a cleaned copy of one",
                    batch.base
                ));
            }
        }
        for (offset, key, bytes) in records_of(&batch.bytes)? {
            let latest = latest_by_key.entry(key.clone()).or_insert(offset);
            *latest = (*latest).max(offset);
            found.insert(offset, (key, bytes));
        }
    }
    if previous_end.is_some_and(|end| end > log_end) {
        return Err(format!("batches run past the log end {log_end}"));
    }
    for batch in model.live.values().filter(|batch| batch.durable) {
        for (offset, key, bytes) in records_of(&batch.bytes)? {
            match found.get(&offset) {
                Some((_, found_bytes)) if *found_bytes == bytes => {}
                Some(_) => return Err(format!("durable record at {offset} changed")),
                None if offset < log_start => {}
                None => {
                    let superseded = latest_by_key
                        .get(&key)
                        .is_some_and(|latest| *latest > offset);
                    if !superseded {
                        return Err(format!(
                            "durable record at {offset} (key {}) is lost and nothing later has its key",
                            String::from_utf8_lossy(&key)
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn check_leader_epochs(
    log: &PartitionLog,
    batches: &[ReadBatch],
    log_start: i64,
    log_end: i64,
) -> Check {
    let entries = log.leader_epoch_entries();
    for pair in entries.windows(2) {
        if pair[0].0 >= pair[1].0 || pair[0].1 >= pair[1].1 {
            return Err(format!("leader epochs do not increase: {entries:?}"));
        }
    }
    for &(epoch, start) in &entries {
        if start < log_start || start > log_end {
            return Err(format!(
                "epoch {epoch} starts at {start}, outside the log [{log_start}, {log_end}]: {entries:?}"
            ));
        }
    }
    for batch in batches.iter().filter(|batch| batch.epoch >= 0) {
        let cached = entries
            .iter()
            .rev()
            .find(|(_, start)| *start <= batch.base.max(log_start))
            .map(|(epoch, _)| *epoch);
        if cached != Some(batch.epoch) {
            return Err(format!(
                "batch at {} has epoch {} but the cache says {cached:?}: {entries:?}",
                batch.base, batch.epoch
            ));
        }
    }
    Ok(())
}

/// Every index entry of every segment points at a batch start of that segment.
async fn check_indexes(log: &PartitionLog) -> Check {
    let segments: Vec<_> = log
        .state
        .borrow()
        .segments
        .values()
        .map(|segment| {
            (
                segment.base_offset,
                segment.file.clone(),
                segment.size_bytes,
                segment.next_offset,
                segment.offset_index.entries().to_vec(),
                segment.time_index.entries().to_vec(),
            )
        })
        .collect();
    for (base, file, size_bytes, next_offset, offset_entries, time_entries) in segments {
        let len_bytes = file
            .len_bytes()
            .map_err(|error| format!("segment {base}: {error}"))?;
        if len_bytes != size_bytes {
            return Err(format!(
                "segment {base} is {len_bytes} bytes on disk, {size_bytes} in memory"
            ));
        }
        let bytes = file
            .read_exact_at(0, usize::try_from(size_bytes).unwrap_or(usize::MAX))
            .await
            .map_err(|error| format!("segment {base}: {error}"))?;
        // (position, base offset, max timestamp) of every batch.
        let mut starts: Vec<(u64, i64, i64)> = Vec::new();
        let mut end_offset = base;
        let ranges = if bytes.is_empty() {
            Vec::new()
        } else {
            split_record_set(&bytes).map_err(|error| format!("segment {base}: {error}"))?
        };
        for range in ranges {
            let header =
                BatchHeader::parse(&bytes[range.clone()]).map_err(|error| error.to_string())?;
            starts.push((range.start as u64, header.base_offset, header.max_timestamp));
            end_offset = header.next_offset();
        }
        if end_offset != next_offset {
            return Err(format!(
                "segment {base} ends at {end_offset} on disk, {next_offset} in memory"
            ));
        }
        for entry in offset_entries {
            let offset = base + i64::from(entry.relative_offset);
            let position = u64::from(entry.position);
            if !starts
                .iter()
                .any(|&(at, batch_base, _)| at == position && batch_base == offset)
            {
                return Err(format!(
                    "segment {base}: offset index entry ({offset} at byte {position}) names no batch"
                ));
            }
        }
        let mut last_timestamp = i64::MIN;
        for entry in time_entries {
            let offset = base + i64::from(entry.relative_offset);
            if entry.timestamp_ms <= last_timestamp {
                return Err(format!("segment {base}: time index timestamps do not grow"));
            }
            last_timestamp = entry.timestamp_ms;
            // The segment's base is a valid place to start a scan even when compaction removed
            // the batch there (a sealed segment's last entry may name it).
            let names_a_batch = starts
                .iter()
                .any(|&(_, batch_base, _)| batch_base == offset);
            if !(names_a_batch || entry.relative_offset == 0) {
                return Err(format!(
                    "segment {base}: time index entry ({}, {offset}) names no batch",
                    entry.timestamp_ms
                ));
            }
            let hidden = starts
                .iter()
                .filter(|&&(_, batch_base, _)| batch_base < offset)
                .map(|&(_, _, max_timestamp)| max_timestamp)
                .max();
            if hidden.is_some_and(|hidden| hidden > entry.timestamp_ms) {
                return Err(format!(
                    "segment {base}: time index entry ({}, {offset}) hides an earlier batch's timestamp {hidden:?}",
                    entry.timestamp_ms
                ));
            }
        }
    }
    Ok(())
}

/// Runs one history: a fresh disk, `cycles` crash-recover cycles. Errors name the cycle.
async fn run_history(
    seed: u64,
    cycles: u64,
    faults: SimFaults,
    flavour: Flavour,
) -> std::result::Result<(), String> {
    trace(|| format!("history {seed}: {flavour:?}"));
    let mut rng = SimRng::new(seed);
    let root = PathBuf::from("/sim");
    let disk = SimDisk::new(&root);
    disk.set_faults(faults);
    let mut model = Model {
        flavour,
        ..Model::default()
    };
    for cycle in 0..cycles {
        run_cycle(&disk, &root, &mut model, &mut rng, flavour)
            .await
            .map_err(|error| format!("cycle {cycle}: {error}"))?;
    }
    Ok(())
}

fn reproduce_hint(seed: u64) -> String {
    format!("reproduce with: STROM_SIM_SEED={seed} cargo test -p strom-engine --lib crash_simulation_every -- --nocapture")
}

#[test]
fn crash_simulation_every_promise_holds_across_crash_recover_cycles() {
    let started = std::time::Instant::now();
    if let Some(seed) = env_u64("STROM_SIM_SEED") {
        super::tests::run(async {
            if let Err(error) = run_history(
                seed,
                CYCLES_PER_HISTORY,
                SimFaults::default(),
                Flavour::of(seed),
            )
            .await
            {
                panic!("seed {seed}: {error}\n{}", reproduce_hint(seed));
            }
        });
        return;
    }
    let cycles = env_u64("STROM_SIM_CYCLES").unwrap_or(CYCLES_DEFAULT);
    let first_seed = env_u64("STROM_SIM_FIRST_SEED").unwrap_or(FIRST_SEED_DEFAULT);
    let histories = cycles.div_ceil(CYCLES_PER_HISTORY);
    super::tests::run(async {
        for history in 0..histories {
            let seed = first_seed + history;
            if let Err(error) = run_history(
                seed,
                CYCLES_PER_HISTORY,
                SimFaults::default(),
                Flavour::of(seed),
            )
            .await
            {
                panic!("seed {seed}: {error}\n{}", reproduce_hint(seed));
            }
        }
    });
    let elapsed = started.elapsed();
    let run = histories * CYCLES_PER_HISTORY;
    println!(
        "{run} crash-recover cycles in {:.1} s ({:.0} cycles/s)",
        elapsed.as_secs_f64(),
        run as f64 / elapsed.as_secs_f64().max(1e-9)
    );
}

/// The checker can fail: on a disk whose fdatasync lies, `durability=sync` acknowledges
/// appends that a crash then loses, and some seed among the first few dozen shows it.
#[test]
fn crash_simulation_catches_a_sync_that_does_not_sync() {
    let faults = SimFaults {
        file_sync_is_a_no_op: true,
    };
    let caught = super::tests::run(async {
        for seed in 0..50 {
            if let Err(error) =
                run_history(seed, CYCLES_PER_HISTORY, faults, Flavour::of(seed)).await
            {
                return Some((seed, error));
            }
        }
        None
    });
    let (seed, error) = caught.expect("a lying fdatasync must be caught within 50 seeds");
    println!("caught at seed {seed}: {error}");
    assert!(
        error.contains("durable batch") || error.contains("log start went back"),
        "seed {seed} failed for another reason: {error}"
    );
}

/// The checker can fail: a recovery that skips its scan after a crash (trusting torn tails and
/// stale indexes as a clean shutdown would) is caught within a few dozen seeds.
#[test]
fn crash_simulation_catches_a_recovery_that_skips_its_scan() {
    super::open::SKIP_RECOVERY.with(|skip| skip.set(true));
    let caught = super::tests::run(async {
        for seed in 0..50 {
            let flavour = Flavour::of(seed);
            if let Err(error) =
                run_history(seed, CYCLES_PER_HISTORY, SimFaults::default(), flavour).await
            {
                return Some((seed, error));
            }
        }
        None
    });
    super::open::SKIP_RECOVERY.with(|skip| skip.set(false));
    let (seed, error) =
        caught.expect("a recovery that skips its scan must be caught within 50 seeds");
    println!("caught at seed {seed}: {error}");
}

/// Replays one history that once found an engine bug (with the work the simulation did then:
/// no flavour); it must pass now.
fn replay(seed: u64) {
    super::tests::run(async {
        if let Err(error) = run_history(
            seed,
            CYCLES_PER_HISTORY,
            SimFaults::default(),
            Flavour::default(),
        )
        .await
        {
            panic!("seed {seed}: {error}\n{}", reproduce_hint(seed));
        }
    });
}

/// A new log's directory was not synced into its parent: a crash could take the whole log,
/// synced data included.
#[test]
fn regression_a_new_log_directory_is_durable_in_its_parent() {
    replay(1_592_590_336);
}

/// `truncate_to` an offset inside the batch that holds the log start ended the log below its
/// start.
#[test]
fn regression_truncation_never_ends_the_log_below_its_start() {
    replay(1_592_590_338);
}

/// DeleteRecords moved the durable log start past unsynced data; after a crash the log start
/// went back and offsets below it would have been handed out again.
#[test]
fn regression_the_log_start_never_goes_back_after_a_crash() {
    replay(1_592_590_015);
}

/// A truncation's cut was not synced: a crash brought the cut batches back in their segment
/// while their offsets had been reused, durably, in a later segment.
#[test]
fn regression_a_truncation_is_durable_before_its_offsets_are_reused() {
    replay(1_592_590_344);
}

/// Under `durability=none` the leader-epoch checkpoint was not synced: after a full truncation,
/// new appends and a crash, a stale checkpoint was trusted.
#[test]
fn regression_the_leader_epoch_checkpoint_is_synced_under_every_durability() {
    replay(1_592_590_500);
}

/// Recovery's cut of a torn tail was not synced, and the recovery point later moved past the
/// segment: a crash brought the torn tail back under a recovery point that trusts it.
#[test]
fn regression_a_recovery_cut_is_durable_before_the_recovery_point_passes_it() {
    replay(1_592_590_386);
}
