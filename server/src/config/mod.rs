//! Broker configuration: a Kafka `server.properties` file plus
//! `--override key=value` arguments, turned into a typed [`BrokerConfig`].
//!
//! Keys use Kafka's names and defaults so existing habits and scripts carry
//! over. An unknown key or a value that does not parse is an error naming the
//! key, the value and its line; Strom never silently falls back to a default,
//! because a typo such as `log.retention.hour=1` would otherwise keep data a
//! week longer than intended.
//!
//! Where Kafka has several keys for one setting, its precedence applies:
//! `log.retention.ms` > `log.retention.minutes` > `log.retention.hours`,
//! `log.roll.ms` > `log.roll.hours`, `log.dirs` > `log.dir`.
//!
//! Cluster mode: without `zookeeper.connect` the broker is a single broker on
//! the embedded coordination store; with it, the broker joins a cluster, and
//! `broker.id` must then be set explicitly (two brokers defaulting to id 0
//! would clash).

mod error;
mod listener;
mod properties;
mod settings;

use std::path::{Path, PathBuf};

pub use error::{ConfigError, Origin};
pub use listener::Listener;
pub use properties::{parse_properties, Property};

use crate::protocol::frame::REQUEST_HEADER_MIN_BYTES;
use settings::Settings;

/// Every key Strom accepts.
const KNOWN_KEYS: &[&str] = &[
    "broker.id",
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "log.dir",
    "num.partitions",
    "default.replication.factor",
    "auto.create.topics.enable",
    "log.segment.bytes",
    "log.roll.ms",
    "log.roll.hours",
    "log.retention.ms",
    "log.retention.minutes",
    "log.retention.hours",
    "log.retention.bytes",
    "log.retention.check.interval.ms",
    "log.index.interval.bytes",
    "message.max.bytes",
    "socket.request.max.bytes",
    "queued.max.request.bytes",
    "max.connections",
    "max.connections.per.ip",
    "connections.max.idle.ms",
    "offsets.topic.num.partitions",
    "offsets.topic.replication.factor",
    "group.initial.rebalance.delay.ms",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "offsets.retention.minutes",
    "num.shards",
    "log.durability",
    "log.flush.interval.ms",
    "log.write.inline",
    "replica.fetch.max.bytes",
    "replica.fetch.min.bytes",
    "replica.fetch.wait.max.ms",
    "replica.fetch.response.max.bytes",
    "replica.fetch.backoff.ms",
    "replica.socket.timeout.ms",
    "zookeeper.connect",
    "zookeeper.session.timeout.ms",
    "zookeeper.connection.timeout.ms",
    "unclean.leader.election.enable",
    "auto.leader.rebalance.enable",
    "leader.imbalance.check.interval.seconds",
    "leader.imbalance.per.broker.percentage",
    "controlled.shutdown.enable",
    "controlled.shutdown.timeout.ms",
    "replica.lag.time.max.ms",
    "min.insync.replicas",
    "num.replica.fetchers",
    "replica.high.watermark.checkpoint.interval.ms",
    "log.format",
    "admin.listeners",
];

const DEFAULT_LISTENER: &str = "PLAINTEXT://127.0.0.1:9092";
/// Default `admin.listeners` (Redpanda's admin port): loopback only, since the admin API has no
/// authentication.
const DEFAULT_ADMIN_LISTENER: &str = "http://127.0.0.1:9644";
const DEFAULT_LOG_DIR: &str = "./data";
const MS_PER_MINUTE: i64 = 60 * 1000;
const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
/// Kafka's default for both log.roll.hours and log.retention.hours (a week).
const DEFAULT_HOURS: i32 = 168;
/// Smallest segment: small enough for tests that force rolls, large enough
/// to hold a record batch header and an index entry's worth of data.
const LOG_SEGMENT_BYTES_MIN: i32 = 1024;
/// Default of `queued.max.request.bytes`, per connection: room for a pipelining producer's
/// in-flight requests (5 by default, each up to `message.max.bytes` ≈ 1 MiB) several times
/// over, while a connection cannot make the broker hold more than this in undispatched requests.
/// (Kafka's default is -1, unbounded, for its broker-wide queue.)
const QUEUED_MAX_REQUEST_BYTES_DEFAULT: i64 = 16 << 20;
/// Upper bound on shards: one per core, and no machine Strom targets has more.
const NUM_SHARDS_MAX: usize = 1024;
/// Kafka's default `zookeeper.session.timeout.ms`.
const ZOOKEEPER_SESSION_TIMEOUT_MS_DEFAULT: i32 = 18_000;
/// Kafka's default `leader.imbalance.check.interval.seconds`.
const LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS_DEFAULT: i64 = 300;
/// Kafka's default `leader.imbalance.per.broker.percentage`.
const LEADER_IMBALANCE_PER_BROKER_PERCENTAGE_DEFAULT: u32 = 10;
/// Default `controlled.shutdown.timeout.ms` (Strom's key): how long a stopping
/// broker waits for the controller to move its leaderships before it exits anyway.
const CONTROLLED_SHUTDOWN_TIMEOUT_MS_DEFAULT: i64 = 30_000;

/// `log.format`: how the broker writes its own log lines (on stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event; colour only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// When appended data is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDurability {
    /// Leave flushing to the OS (Kafka's default; replication gives safety).
    None,
    /// Flush every `log.flush.interval.ms`.
    Interval,
    /// Flush before acknowledging each produce.
    Sync,
}

/// The broker's typed configuration. Field names follow the Kafka keys, with
/// units resolved (`log.retention.hours` becomes `log_retention_ms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// `broker.id`.
    pub broker_id: i32,
    /// `listeners`: where to accept connections (one PLAINTEXT listener).
    pub listener: Listener,
    /// `advertised.listeners`: the address clients are told to use; defaults
    /// to `listeners`. Must not be a wildcard host.
    pub advertised_listener: Listener,
    /// `admin.listeners`: `host:port` of the admin HTTP API (`/metrics`, readiness and
    /// liveness), from `http://host:port`; `None` when set to an empty value (off).
    pub admin_listener: Option<String>,
    /// `log.dirs` (or `log.dir`), comma separated.
    pub log_dirs: Vec<PathBuf>,
    /// `num.partitions`: partitions of auto-created topics.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `log.segment.bytes`.
    pub log_segment_bytes: u32,
    /// `log.roll.ms` or `log.roll.hours`.
    pub log_roll_ms: u64,
    /// `log.retention.ms`/`.minutes`/`.hours`; `None` means unlimited (-1).
    pub log_retention_ms: Option<u64>,
    /// `log.retention.bytes`; `None` means unlimited (-1).
    pub log_retention_bytes: Option<u64>,
    /// `log.retention.check.interval.ms`.
    pub log_retention_check_interval_ms: u64,
    /// `log.index.interval.bytes`.
    pub log_index_interval_bytes: u32,
    /// `message.max.bytes`: largest record batch accepted.
    pub message_max_bytes: u32,
    /// `socket.request.max.bytes`: largest request frame accepted.
    pub socket_request_max_bytes: u32,
    /// `queued.max.request.bytes`: bytes of one connection's requests read but not yet
    /// dispatched before the broker stops reading from it; `None` means unbounded (-1). A single
    /// larger request is still read, once the queue before it is empty.
    pub queued_max_request_bytes: Option<u64>,
    /// `max.connections`: client connections open at once, broker-wide (all shards); a
    /// connection accepted past it is closed at once. Kafka's default (i32::MAX) leaves the
    /// process's file-descriptor limit as the real bound.
    pub max_connections: u32,
    /// `max.connections.per.ip`: client connections open at once from one IP address.
    pub max_connections_per_ip: u32,
    /// `connections.max.idle.ms`: a connection with no request in flight that has not sent or
    /// been sent a byte for this long is closed (Kafka's default: 10 minutes).
    pub connections_max_idle_ms: u64,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor` (Kafka's 3): in a cluster, `__consumer_offsets` is
    /// created once this many brokers are live. A single broker on the embedded store creates
    /// it with one replica.
    pub offsets_topic_replication_factor: i16,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: u32,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: u32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: u32,
    /// `offsets.retention.minutes`.
    pub offsets_retention_minutes: u32,
    /// `num.shards` (Strom): shard threads; defaults to the available cores.
    pub num_shards: usize,
    /// `log.durability` (Strom): `none`, `interval` or `sync`.
    pub log_durability: LogDurability,
    /// `log.flush.interval.ms`: flush period when `log.durability=interval`.
    pub log_flush_interval_ms: u64,
    /// `log.write.inline` (Strom): the shard thread writes appends into the page cache itself
    /// (`pwritev`) instead of through io_uring, whose worker threads take every buffered ext4
    /// write; see `LogConfig::write_inline`.
    pub log_write_inline: bool,
    /// How followers fetch from their leaders: `replica.fetch.max.bytes` (per partition),
    /// `replica.fetch.min.bytes`, `replica.fetch.wait.max.ms`,
    /// `replica.fetch.response.max.bytes`, `replica.fetch.backoff.ms`,
    /// `replica.socket.timeout.ms` (Kafka's keys and defaults).
    pub replica_fetch: ReplicaFetchSettings,
    /// `zookeeper.connect`: `host:port[,host:port…][/chroot]`, validated by
    /// the coordination client's parser (a host without a port means ZooKeeper's 2181, as its own clients read it). `None`: a single broker on the embedded store.
    pub zookeeper_connect: Option<String>,
    /// `zookeeper.session.timeout.ms`: a broker whose session is silent this long is
    /// declared dead (its ephemeral znodes go).
    pub zookeeper_session_timeout_ms: u64,
    /// `zookeeper.connection.timeout.ms`: how long to wait for a connection to ZooKeeper;
    /// defaults to the session timeout, as in Kafka.
    pub zookeeper_connection_timeout_ms: u64,
    /// `unclean.leader.election.enable`: the broker default for electing a replica that
    /// is not in the ISR when no ISR member is alive (topic config overrides it).
    pub unclean_leader_election_enable: bool,
    /// `auto.leader.rebalance.enable`: the controller periodically moves leadership
    /// back to each partition's preferred (first assigned) replica.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`: period of that check.
    pub leader_imbalance_check_interval_seconds: u64,
    /// `leader.imbalance.per.broker.percentage`: share (0..=100) of a broker's preferred
    /// partitions led elsewhere above which the controller rebalances.
    pub leader_imbalance_per_broker_percentage: u32,
    /// `controlled.shutdown.enable`: on SIGTERM, ask the controller to move this
    /// broker's leaderships away before exiting.
    pub controlled_shutdown_enable: bool,
    /// `controlled.shutdown.timeout.ms` (Strom): the bound on that wait.
    pub controlled_shutdown_timeout_ms: u64,
    /// `replica.lag.time.max.ms`: a follower not caught up with its leader for this long leaves
    /// the ISR.
    pub replica_lag_time_max_ms: u64,
    /// `min.insync.replicas`: the fewest ISR members an `acks=all` produce needs (topics may
    /// override it).
    pub min_insync_replicas: u32,
    /// `num.replica.fetchers`: fetcher connections per (leader broker, shard).
    pub num_replica_fetchers: u32,
    /// `replica.high.watermark.checkpoint.interval.ms`: how often the high watermarks are
    /// written to each log dir's `replication-offset-checkpoint`.
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    /// Every key the file or an override set, with its value as written: DescribeConfigs
    /// reports these as STATIC_BROKER_CONFIG (the rest as DEFAULT_CONFIG), and the broker logs
    /// them at start.
    pub explicit_settings: std::collections::BTreeMap<String, String>,
    /// `log.format`: `text` (default) or `json`.
    pub log_format: LogFormat,
}

impl BrokerConfig {
    /// Reads `path` (if given) and applies `overrides` (`key=value`) after it.
    pub fn load(path: Option<&Path>, overrides: &[impl AsRef<str>]) -> Result<Self, ConfigError> {
        let properties = match path {
            None => Vec::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                parse_properties(&text, &path.display().to_string())?
            }
        };
        Self::from_settings(&Settings::new(properties, overrides, KNOWN_KEYS)?)
    }

    /// Parses properties `text` (named `source` in errors), then `overrides`.
    pub fn from_properties_text(
        text: &str,
        source: &str,
        overrides: &[impl AsRef<str>],
    ) -> Result<Self, ConfigError> {
        let properties = parse_properties(text, source)?;
        Self::from_settings(&Settings::new(properties, overrides, KNOWN_KEYS)?)
    }

    /// Whether this broker joins a cluster through ZooKeeper (`zookeeper.connect` set).
    pub fn is_cluster_mode(&self) -> bool {
        self.zookeeper_connect.is_some()
    }

    /// `offsets.retention.minutes` in milliseconds.
    pub fn offsets_retention_ms(&self) -> u64 {
        u64::from(self.offsets_retention_minutes) * 60 * 1000
    }

    fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let listener = match single_listener(settings, "listeners")? {
            Some(listener) => listener,
            None => Listener::parse(DEFAULT_LISTENER)
                .map_err(|reason| settings.invalid("listeners", reason))?,
        };
        let advertised_listener = match single_listener(settings, "advertised.listeners")? {
            Some(advertised) if advertised.is_routable() => advertised,
            Some(_) => {
                return Err(settings.invalid(
                    "advertised.listeners",
                    "clients cannot connect to an empty or wildcard host",
                ))
            }
            None if listener.is_routable() => listener.clone(),
            None => {
                return Err(ConfigError::Inconsistent {
                    reason: format!(
                        "listeners={listener} binds a wildcard host that clients cannot \
                         connect to; set advertised.listeners"
                    ),
                })
            }
        };

        let group_min_session_timeout_ms =
            settings.integer("group.min.session.timeout.ms", 6_000, 0, u32::MAX)?;
        let group_max_session_timeout_ms =
            settings.integer("group.max.session.timeout.ms", 1_800_000, 0, u32::MAX)?;
        if group_min_session_timeout_ms > group_max_session_timeout_ms {
            return Err(ConfigError::Inconsistent {
                reason: format!(
                    "group.min.session.timeout.ms={group_min_session_timeout_ms} exceeds \
                     group.max.session.timeout.ms={group_max_session_timeout_ms}"
                ),
            });
        }

        let zookeeper_connect = settings.parse_with("zookeeper.connect", |text| {
            crate::coordination::parse_connect_string(text.trim())
                .map(|_| text.trim().to_owned())
                .map_err(|error| error.to_string())
        })?;
        if zookeeper_connect.is_some() && !settings.is_set("broker.id") {
            return Err(ConfigError::Inconsistent {
                reason: "broker.id must be set when zookeeper.connect is set: every broker \
                         of a cluster needs its own id"
                    .to_owned(),
            });
        }
        let zookeeper_session_timeout_ms = settings.integer(
            "zookeeper.session.timeout.ms",
            ZOOKEEPER_SESSION_TIMEOUT_MS_DEFAULT,
            1,
            i32::MAX,
        )?;

        Ok(Self {
            broker_id: settings.integer("broker.id", 0, 0, i32::MAX)?,
            listener,
            advertised_listener,
            admin_listener: settings
                .parse_with("admin.listeners", parse_admin_listener)?
                .unwrap_or_else(|| parse_admin_listener(DEFAULT_ADMIN_LISTENER).ok().flatten()),
            log_dirs: log_dirs(settings)?,
            num_partitions: settings.integer("num.partitions", 1, 1, i32::MAX)?,
            default_replication_factor: settings.integer(
                "default.replication.factor",
                1,
                1,
                i16::MAX,
            )?,
            auto_create_topics_enable: settings.boolean("auto.create.topics.enable", true)?,
            log_segment_bytes: to_u32(settings.integer(
                "log.segment.bytes",
                1_073_741_824,
                LOG_SEGMENT_BYTES_MIN,
                i32::MAX,
            )?),
            log_roll_ms: log_roll_ms(settings)?,
            log_retention_ms: u64::try_from(log_retention_ms(settings)?).ok(),
            log_retention_bytes: u64::try_from(settings.integer(
                "log.retention.bytes",
                -1,
                -1,
                i64::MAX,
            )?)
            .ok(),
            log_retention_check_interval_ms: to_u64(settings.integer(
                "log.retention.check.interval.ms",
                300_000,
                1,
                i64::MAX,
            )?),
            log_index_interval_bytes: to_u32(settings.integer(
                "log.index.interval.bytes",
                4096,
                0,
                i32::MAX,
            )?),
            message_max_bytes: to_u32(settings.integer(
                "message.max.bytes",
                1_048_588,
                0,
                i32::MAX,
            )?),
            socket_request_max_bytes: to_u32(settings.integer(
                "socket.request.max.bytes",
                104_857_600,
                // A smaller limit would refuse every request.
                i32::try_from(REQUEST_HEADER_MIN_BYTES).unwrap_or(i32::MAX),
                i32::MAX,
            )?),
            queued_max_request_bytes: queued_max_request_bytes(settings)?,
            max_connections: to_u32(settings.integer("max.connections", i32::MAX, 0, i32::MAX)?),
            max_connections_per_ip: to_u32(settings.integer(
                "max.connections.per.ip",
                i32::MAX,
                0,
                i32::MAX,
            )?),
            connections_max_idle_ms: to_u64(settings.integer(
                "connections.max.idle.ms",
                600_000,
                1,
                i64::MAX,
            )?),
            offsets_topic_num_partitions: settings.integer(
                "offsets.topic.num.partitions",
                50,
                1,
                i32::MAX,
            )?,
            offsets_topic_replication_factor: settings.integer(
                "offsets.topic.replication.factor",
                3,
                1,
                i16::MAX,
            )?,
            group_initial_rebalance_delay_ms: to_u32(settings.integer(
                "group.initial.rebalance.delay.ms",
                3_000,
                0,
                i32::MAX,
            )?),
            group_min_session_timeout_ms,
            group_max_session_timeout_ms,
            offsets_retention_minutes: to_u32(settings.integer(
                "offsets.retention.minutes",
                10_080,
                1,
                i32::MAX,
            )?),
            num_shards: settings.integer("num.shards", available_cores(), 1, NUM_SHARDS_MAX)?,
            log_durability: settings
                .parse_with("log.durability", parse_durability)?
                .unwrap_or(LogDurability::None),
            log_flush_interval_ms: to_u64(settings.integer(
                "log.flush.interval.ms",
                1_000,
                1,
                i64::MAX,
            )?),
            log_write_inline: settings.boolean("log.write.inline", true)?,
            replica_fetch: ReplicaFetchSettings::from_settings(settings)?,
            zookeeper_connect,
            zookeeper_session_timeout_ms: to_u64(i64::from(zookeeper_session_timeout_ms)),
            zookeeper_connection_timeout_ms: to_u64(i64::from(settings.integer(
                "zookeeper.connection.timeout.ms",
                zookeeper_session_timeout_ms,
                1,
                i32::MAX,
            )?)),
            unclean_leader_election_enable: settings
                .boolean("unclean.leader.election.enable", false)?,
            auto_leader_rebalance_enable: settings.boolean("auto.leader.rebalance.enable", true)?,
            leader_imbalance_check_interval_seconds: to_u64(settings.integer(
                "leader.imbalance.check.interval.seconds",
                LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS_DEFAULT,
                1,
                i64::MAX,
            )?),
            leader_imbalance_per_broker_percentage: settings.integer(
                "leader.imbalance.per.broker.percentage",
                LEADER_IMBALANCE_PER_BROKER_PERCENTAGE_DEFAULT,
                0,
                100,
            )?,
            controlled_shutdown_enable: settings.boolean("controlled.shutdown.enable", true)?,
            controlled_shutdown_timeout_ms: to_u64(settings.integer(
                "controlled.shutdown.timeout.ms",
                CONTROLLED_SHUTDOWN_TIMEOUT_MS_DEFAULT,
                1,
                i64::MAX,
            )?),
            replica_lag_time_max_ms: to_u64(settings.integer(
                "replica.lag.time.max.ms",
                10_000,
                1,
                i64::MAX,
            )?),
            min_insync_replicas: settings.integer("min.insync.replicas", 1, 1, i32::MAX as u32)?,
            num_replica_fetchers: settings.integer("num.replica.fetchers", 1, 1, 64)?,
            replica_high_watermark_checkpoint_interval_ms: to_u64(settings.integer(
                "replica.high.watermark.checkpoint.interval.ms",
                5_000,
                1,
                i64::MAX,
            )?),
            explicit_settings: settings.explicit(),
            log_format: settings
                .parse_with("log.format", parse_log_format)?
                .unwrap_or_default(),
        })
    }
}

impl Default for BrokerConfig {
    /// Kafka's defaults (plus Strom's for its own keys).
    fn default() -> Self {
        // No settings: only built-in defaults, which a unit test keeps valid.
        Self::from_settings(&Settings::default()).expect("built-in defaults are valid")
    }
}

/// The one listener in `key`, `None` when unset. Several listeners are
/// refused: Kafka requires a distinct name per listener and Strom has only
/// PLAINTEXT.
fn single_listener(settings: &Settings, key: &str) -> Result<Option<Listener>, ConfigError> {
    settings.parse_with(key, |text| {
        let mut listeners = text.split(',').map(str::trim);
        let first = listeners.next().unwrap_or_default();
        if listeners.next().is_some() {
            return Err("only one PLAINTEXT listener is supported".to_owned());
        }
        Listener::parse(first)
    })
}

fn log_dirs(settings: &Settings) -> Result<Vec<PathBuf>, ConfigError> {
    let key = if settings.is_set("log.dirs") {
        "log.dirs"
    } else {
        "log.dir"
    };
    let dirs = settings.parse_with(key, |text| {
        text.split(',')
            .map(str::trim)
            .map(|dir| {
                if dir.is_empty() {
                    Err("empty directory in list".to_owned())
                } else {
                    Ok(PathBuf::from(dir))
                }
            })
            .collect()
    })?;
    Ok(dirs.unwrap_or_else(|| vec![PathBuf::from(DEFAULT_LOG_DIR)]))
}

fn log_roll_ms(settings: &Settings) -> Result<u64, ConfigError> {
    if settings.is_set("log.roll.ms") {
        return Ok(to_u64(settings.integer("log.roll.ms", 1, 1, i64::MAX)?));
    }
    let hours = settings.integer("log.roll.hours", DEFAULT_HOURS, 1, i32::MAX)?;
    Ok(to_u64(i64::from(hours) * MS_PER_HOUR))
}

/// Retention in ms, -1 for unlimited.
fn log_retention_ms(settings: &Settings) -> Result<i64, ConfigError> {
    if settings.is_set("log.retention.ms") {
        return settings.integer("log.retention.ms", -1, -1, i64::MAX);
    }
    let (key, default, unit_ms) = if settings.is_set("log.retention.minutes") {
        ("log.retention.minutes", -1, MS_PER_MINUTE)
    } else {
        ("log.retention.hours", DEFAULT_HOURS, MS_PER_HOUR)
    };
    let count = settings.integer(key, default, -1, i32::MAX)?;
    // -1 stays -1 (unlimited); i32 * 3.6e6 always fits i64.
    Ok(if count < 0 {
        -1
    } else {
        i64::from(count) * unit_ms
    })
}

/// `queued.max.request.bytes`: -1 (unbounded) or a positive byte count; 0 would never let a
/// request through.
fn queued_max_request_bytes(settings: &Settings) -> Result<Option<u64>, ConfigError> {
    let value = settings.integer(
        "queued.max.request.bytes",
        QUEUED_MAX_REQUEST_BYTES_DEFAULT,
        -1,
        i64::MAX,
    )?;
    match value {
        -1 => Ok(None),
        0 => Err(settings.invalid(
            "queued.max.request.bytes",
            "0 would never read a request; use -1 for unbounded",
        )),
        bytes => Ok(Some(to_u64(bytes))),
    }
}

/// `admin.listeners`: one `http://host:port`, or an empty value for no admin listener.
fn parse_admin_listener(text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.contains(',') {
        return Err("only one admin listener is supported".to_owned());
    }
    let Some(address) = text.strip_prefix("http://") else {
        return Err("expected http://host:port (or an empty value to turn it off)".to_owned());
    };
    let port = address
        .rsplit_once(':')
        .and_then(|(host, port)| (!host.is_empty()).then_some(port))
        .ok_or_else(|| "expected http://host:port".to_owned())?;
    port.parse::<u16>()
        .map_err(|_| format!("port {port} is not a number from 0 to 65535"))?;
    Ok(Some(address.to_owned()))
}

fn parse_durability(text: &str) -> Result<LogDurability, String> {
    match text.to_ascii_lowercase().as_str() {
        "none" => Ok(LogDurability::None),
        "interval" => Ok(LogDurability::Interval),
        "sync" => Ok(LogDurability::Sync),
        _ => Err("expected none, interval or sync".to_owned()),
    }
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected text or json".to_owned()),
    }
}

fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(NUM_SHARDS_MAX)
}

/// For values already range-checked to be non-negative.
fn to_u32(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// For values already range-checked to be non-negative.
/// Kafka's `replica.fetch.*` settings (see [`BrokerConfig::replica_fetch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaFetchSettings {
    pub max_bytes: i32,
    pub min_bytes: i32,
    pub wait_max_ms: i32,
    pub response_max_bytes: i32,
    pub backoff_ms: u64,
    pub socket_timeout_ms: u64,
}

/// The longest `replica.fetch.wait.max.ms`: the fetch handler holds no fetch longer.
const REPLICA_FETCH_WAIT_MAX_MS_LIMIT: i32 = 60_000;

impl ReplicaFetchSettings {
    fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        Ok(ReplicaFetchSettings {
            max_bytes: settings.integer("replica.fetch.max.bytes", 1 << 20, 1, i32::MAX)?,
            min_bytes: settings.integer("replica.fetch.min.bytes", 1, 1, i32::MAX)?,
            wait_max_ms: settings.integer(
                "replica.fetch.wait.max.ms",
                500,
                0,
                REPLICA_FETCH_WAIT_MAX_MS_LIMIT,
            )?,
            response_max_bytes: settings.integer(
                "replica.fetch.response.max.bytes",
                10 << 20,
                1,
                i32::MAX,
            )?,
            backoff_ms: to_u64(settings.integer("replica.fetch.backoff.ms", 1_000, 0, i64::MAX)?),
            socket_timeout_ms: to_u64(settings.integer(
                "replica.socket.timeout.ms",
                30_000,
                1,
                i64::MAX,
            )?),
        })
    }
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_OVERRIDES: &[&str] = &[];

    fn parse(text: &str) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::from_properties_text(text, "server.properties", NO_OVERRIDES)
    }

    #[test]
    fn defaults_match_kafka() {
        let config = BrokerConfig::default();
        assert_eq!(config, parse("").expect("empty file is valid"));
        assert_eq!(config.broker_id, 0);
        assert_eq!(
            config.listener,
            Listener::parse(DEFAULT_LISTENER).expect("valid")
        );
        assert_eq!(config.advertised_listener, config.listener);
        assert_eq!(config.log_dirs, vec![PathBuf::from("./data")]);
        assert_eq!(config.num_partitions, 1);
        assert_eq!(config.default_replication_factor, 1);
        assert!(config.auto_create_topics_enable);
        assert_eq!(config.log_segment_bytes, 1_073_741_824);
        assert_eq!(config.log_roll_ms, 168 * 3_600_000);
        assert_eq!(config.log_retention_ms, Some(168 * 3_600_000));
        assert_eq!(config.log_retention_bytes, None);
        assert_eq!(config.log_retention_check_interval_ms, 300_000);
        assert_eq!(config.log_index_interval_bytes, 4096);
        assert_eq!(config.message_max_bytes, 1_048_588);
        assert_eq!(config.socket_request_max_bytes, 104_857_600);
        assert_eq!(config.queued_max_request_bytes, Some(16 << 20));
        assert_eq!(config.offsets_topic_num_partitions, 50);
        assert_eq!(config.offsets_topic_replication_factor, 3);
        assert_eq!(config.group_initial_rebalance_delay_ms, 3_000);
        assert_eq!(config.group_min_session_timeout_ms, 6_000);
        assert_eq!(config.group_max_session_timeout_ms, 1_800_000);
        assert_eq!(config.offsets_retention_ms(), 10_080 * 60_000);
        assert!(config.num_shards >= 1);
        assert_eq!(config.log_durability, LogDurability::None);
        assert_eq!(config.log_flush_interval_ms, 1_000);
        assert_eq!(config.zookeeper_connect, None);
        assert!(!config.is_cluster_mode());
        assert_eq!(config.zookeeper_session_timeout_ms, 18_000);
        assert_eq!(config.zookeeper_connection_timeout_ms, 18_000);
        assert!(!config.unclean_leader_election_enable);
        assert!(config.auto_leader_rebalance_enable);
        assert_eq!(config.leader_imbalance_check_interval_seconds, 300);
        assert_eq!(config.leader_imbalance_per_broker_percentage, 10);
        assert!(config.controlled_shutdown_enable);
        assert_eq!(config.controlled_shutdown_timeout_ms, 30_000);
        let fetch = &config.replica_fetch;
        assert_eq!(
            (fetch.max_bytes, fetch.min_bytes, fetch.wait_max_ms),
            (1 << 20, 1, 500)
        );
        assert_eq!(
            (
                fetch.response_max_bytes,
                fetch.backoff_ms,
                fetch.socket_timeout_ms
            ),
            (10 << 20, 1_000, 30_000)
        );
    }

    #[test]
    fn replica_fetch_keys_parse_and_are_bounded() {
        let config = parse(
            "replica.fetch.max.bytes=2048\n\
             replica.fetch.min.bytes=10\n\
             replica.fetch.wait.max.ms=100\n\
             replica.fetch.response.max.bytes=4096\n\
             replica.fetch.backoff.ms=50\n\
             replica.socket.timeout.ms=700\n",
        )
        .expect("valid");
        assert_eq!(
            config.replica_fetch,
            ReplicaFetchSettings {
                max_bytes: 2048,
                min_bytes: 10,
                wait_max_ms: 100,
                response_max_bytes: 4096,
                backoff_ms: 50,
                socket_timeout_ms: 700,
            }
        );
        assert!(parse("replica.fetch.wait.max.ms=60001\n").is_err());
        assert!(parse("replica.fetch.max.bytes=0\n").is_err());
    }

    #[test]
    fn cluster_mode_keys_parse() {
        let config = parse(
            "broker.id=2\n\
             zookeeper.connect=zk1:2181,zk2:2181/strom\n\
             zookeeper.session.timeout.ms=6000\n\
             zookeeper.connection.timeout.ms=2000\n\
             unclean.leader.election.enable=true\n\
             auto.leader.rebalance.enable=false\n\
             leader.imbalance.check.interval.seconds=5\n\
             leader.imbalance.per.broker.percentage=0\n\
             controlled.shutdown.enable=false\n\
             controlled.shutdown.timeout.ms=1500\n",
        )
        .expect("valid");
        assert!(config.is_cluster_mode());
        assert_eq!(
            config.zookeeper_connect.as_deref(),
            Some("zk1:2181,zk2:2181/strom")
        );
        assert_eq!(config.broker_id, 2);
        assert_eq!(config.zookeeper_session_timeout_ms, 6_000);
        assert_eq!(config.zookeeper_connection_timeout_ms, 2_000);
        assert!(config.unclean_leader_election_enable);
        assert!(!config.auto_leader_rebalance_enable);
        assert_eq!(config.leader_imbalance_check_interval_seconds, 5);
        assert_eq!(config.leader_imbalance_per_broker_percentage, 0);
        assert!(!config.controlled_shutdown_enable);
        assert_eq!(config.controlled_shutdown_timeout_ms, 1_500);
    }

    #[test]
    fn connection_timeout_defaults_to_the_session_timeout() {
        let config = parse("zookeeper.session.timeout.ms=6000").expect("valid");
        assert_eq!(config.zookeeper_connection_timeout_ms, 6_000);
    }

    #[test]
    fn cluster_mode_requires_an_explicit_broker_id() {
        let error = parse("zookeeper.connect=127.0.0.1:2181").expect_err("no broker.id");
        assert!(matches!(error, ConfigError::Inconsistent { .. }), "{error}");
        assert!(error.to_string().contains("broker.id"), "{error}");
        // broker.id=0 set explicitly is a valid id in a cluster.
        let config = parse("zookeeper.connect=127.0.0.1:2181\nbroker.id=0").expect("valid");
        assert_eq!(config.broker_id, 0);
    }

    #[test]
    fn replication_keys_default_to_kafkas_and_can_be_set() {
        let config = parse("").expect("defaults");
        assert_eq!(config.replica_lag_time_max_ms, 10_000);
        assert_eq!(config.min_insync_replicas, 1);
        assert_eq!(config.num_replica_fetchers, 1);
        assert_eq!(config.replica_high_watermark_checkpoint_interval_ms, 5_000);
        let config =
            parse("replica.lag.time.max.ms=3000\nmin.insync.replicas=2\nnum.replica.fetchers=2")
                .expect("valid");
        assert_eq!(
            (
                config.replica_lag_time_max_ms,
                config.min_insync_replicas,
                config.num_replica_fetchers
            ),
            (3_000, 2, 2)
        );
        assert!(parse("min.insync.replicas=0").is_err());
    }

    #[test]
    fn malformed_zookeeper_connect_names_the_key_and_line() {
        let error =
            parse("broker.id=1\nzookeeper.connect=zk1:2181,zk2:notaport/strom").expect_err("bad");
        assert!(
            matches!(error, ConfigError::InvalidValue { ref key, .. } if key == "zookeeper.connect"),
            "{error}"
        );
        assert!(
            error.to_string().starts_with("server.properties:2:"),
            "{error}"
        );
        assert!(parse("broker.id=1\nzookeeper.connect=").is_err());
    }

    #[test]
    fn retention_precedence_ms_over_minutes_over_hours() {
        let all = "log.retention.hours=1\nlog.retention.minutes=2\nlog.retention.ms=3\n";
        assert_eq!(parse(all).expect("valid").log_retention_ms, Some(3));
        let no_ms = "log.retention.hours=1\nlog.retention.minutes=2\n";
        assert_eq!(parse(no_ms).expect("valid").log_retention_ms, Some(120_000));
        let hours = "log.retention.hours=1\n";
        assert_eq!(
            parse(hours).expect("valid").log_retention_ms,
            Some(3_600_000)
        );
    }

    #[test]
    fn retention_minus_one_is_unlimited() {
        for text in [
            "log.retention.ms=-1",
            "log.retention.minutes=-1",
            "log.retention.hours=-1",
        ] {
            assert_eq!(parse(text).expect("valid").log_retention_ms, None, "{text}");
        }
        assert!(parse("log.retention.ms=-2").is_err());
        assert_eq!(
            parse("log.retention.bytes=1000")
                .expect("valid")
                .log_retention_bytes,
            Some(1000)
        );
    }

    #[test]
    fn roll_ms_over_hours_and_log_dirs_over_log_dir() {
        let config =
            parse("log.roll.hours=2\nlog.roll.ms=50\nlog.dir=/x\nlog.dirs=/a, /b").expect("valid");
        assert_eq!(config.log_roll_ms, 50);
        assert_eq!(
            config.log_dirs,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        let config = parse("log.roll.hours=2\nlog.dir=/x").expect("valid");
        assert_eq!(config.log_roll_ms, 7_200_000);
        assert_eq!(config.log_dirs, vec![PathBuf::from("/x")]);
        assert!(parse("log.dirs=/a,,/b").is_err());
    }

    #[test]
    fn log_format_and_explicit_settings() {
        let config = parse("log.format=json\nnum.partitions=3").expect("valid");
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(
            config
                .explicit_settings
                .get("num.partitions")
                .map(String::as_str),
            Some("3")
        );
        assert!(!config.explicit_settings.contains_key("broker.id"));
        assert_eq!(parse("").expect("valid").log_format, LogFormat::Text);
        assert!(parse("log.format=xml").is_err());
    }

    #[test]
    fn overrides_apply_after_the_file() {
        let config = BrokerConfig::from_properties_text(
            "num.partitions=3\nbroker.id=1\n",
            "server.properties",
            &["num.partitions=4", "log.retention.ms=10"],
        )
        .expect("valid");
        assert_eq!(config.num_partitions, 4);
        assert_eq!(config.broker_id, 1);
        assert_eq!(config.log_retention_ms, Some(10));
        // An override of a lower-precedence key does not beat a file ms key.
        let config = BrokerConfig::from_properties_text(
            "log.retention.ms=5",
            "server.properties",
            &["log.retention.hours=1"],
        )
        .expect("valid");
        assert_eq!(config.log_retention_ms, Some(5));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let error = parse("num.partitions=1\nlog.retention.hour=1\n").expect_err("unknown");
        assert_eq!(
            error.to_string(),
            "server.properties:2: unknown config key \"log.retention.hour\""
        );
    }

    #[test]
    fn malformed_value_names_key_value_and_line() {
        let error = parse("\n\nnum.partitions = three\n").expect_err("malformed");
        assert_eq!(
            error.to_string(),
            "server.properties:3: invalid value \"three\" for num.partitions: \
             not an integer in range"
        );
        let error = BrokerConfig::from_properties_text("", "f", &["auto.create.topics.enable=yes"])
            .expect_err("malformed");
        assert!(matches!(
            error,
            ConfigError::InvalidValue { ref key, ref value, origin: Origin::Override, .. }
                if key == "auto.create.topics.enable" && value == "yes"
        ));
    }

    #[test]
    fn out_of_range_values_are_errors() {
        for text in [
            "num.partitions=0",
            "broker.id=-1",
            "log.segment.bytes=100",
            "socket.request.max.bytes=5",
            "num.shards=0",
            "log.flush.interval.ms=0",
            "message.max.bytes=3000000000",
            "zookeeper.session.timeout.ms=0",
            "zookeeper.connection.timeout.ms=0",
            "leader.imbalance.check.interval.seconds=0",
            "leader.imbalance.per.broker.percentage=101",
            "controlled.shutdown.timeout.ms=0",
            "unclean.leader.election.enable=maybe",
            "auto.leader.rebalance.enable=1",
            "controlled.shutdown.enable=yes",
        ] {
            assert!(
                matches!(parse(text), Err(ConfigError::InvalidValue { .. })),
                "{text}"
            );
        }
    }

    #[test]
    fn listeners_parse_and_validate() {
        let config =
            parse("listeners=PLAINTEXT://0.0.0.0:19092\nadvertised.listeners=broker:19092")
                .expect("valid");
        assert_eq!(config.listener.bind_address(), "0.0.0.0:19092");
        assert_eq!(config.advertised_listener.host, "broker");

        let error = parse("listeners=SSL://h:9093").expect_err("ssl");
        assert!(error.to_string().contains("only PLAINTEXT"), "{error}");
        let error = parse("listeners=PLAINTEXT://a:1,PLAINTEXT://b:2").expect_err("two");
        assert!(error.to_string().contains("only one"), "{error}");
        let error = parse("listeners=PLAINTEXT://:9092").expect_err("wildcard advertised");
        assert!(matches!(error, ConfigError::Inconsistent { .. }), "{error}");
        assert!(parse("advertised.listeners=PLAINTEXT://0.0.0.0:1").is_err());
    }

    #[test]
    fn the_admin_listener_is_on_by_default_and_off_when_empty() {
        let config = parse("").expect("defaults");
        assert_eq!(config.admin_listener.as_deref(), Some("127.0.0.1:9644"));
        let config = parse("admin.listeners=http://0.0.0.0:19644").expect("valid");
        assert_eq!(config.admin_listener.as_deref(), Some("0.0.0.0:19644"));
        assert_eq!(parse("admin.listeners=").expect("off").admin_listener, None);
        let overridden = BrokerConfig::from_properties_text("", "test", &["admin.listeners="])
            .expect("off by override");
        assert_eq!(overridden.admin_listener, None);
        for bad in [
            "https://127.0.0.1:9644",
            "127.0.0.1:9644",
            "http://127.0.0.1",
            "http://:9644",
            "http://h:70000",
            "http://a:1,http://b:2",
        ] {
            let error = parse(&format!("admin.listeners={bad}")).expect_err(bad);
            assert!(
                error.to_string().contains("admin.listeners"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn durability_policy() {
        let config = parse("log.durability=interval\nlog.flush.interval.ms=250").expect("valid");
        assert_eq!(config.log_durability, LogDurability::Interval);
        assert_eq!(config.log_flush_interval_ms, 250);
        assert_eq!(
            parse("log.durability=SYNC").expect("valid").log_durability,
            LogDurability::Sync
        );
        let error = parse("log.durability=always").expect_err("bad");
        assert!(error.to_string().contains("log.durability"), "{error}");
    }

    #[test]
    fn appends_are_written_inline_unless_turned_off() {
        assert!(parse("").expect("valid").log_write_inline);
        assert!(
            !parse("log.write.inline=false")
                .expect("valid")
                .log_write_inline
        );
        assert!(parse("log.write.inline=sometimes").is_err());
    }

    #[test]
    fn connection_limits_default_to_kafkas_and_parse() {
        let config = parse("").expect("defaults");
        assert_eq!(config.max_connections, i32::MAX as u32);
        assert_eq!(config.max_connections_per_ip, i32::MAX as u32);
        assert_eq!(config.connections_max_idle_ms, 600_000);
        let config =
            parse("max.connections=100\nmax.connections.per.ip=10\nconnections.max.idle.ms=2500\n")
                .expect("valid");
        assert_eq!(
            (
                config.max_connections,
                config.max_connections_per_ip,
                config.connections_max_idle_ms
            ),
            (100, 10, 2500)
        );
        for text in [
            "max.connections=-1",
            "max.connections.per.ip=x",
            "connections.max.idle.ms=0",
        ] {
            assert!(parse(text).is_err(), "{text} is refused");
        }
    }

    #[test]
    fn queued_max_request_bytes_is_positive_or_unbounded() {
        assert_eq!(
            parse("queued.max.request.bytes=-1")
                .expect("valid")
                .queued_max_request_bytes,
            None
        );
        assert_eq!(
            parse("queued.max.request.bytes=4096")
                .expect("valid")
                .queued_max_request_bytes,
            Some(4096)
        );
        for text in ["queued.max.request.bytes=0", "queued.max.request.bytes=-2"] {
            let error = parse(text).expect_err("out of range");
            assert!(
                error.to_string().contains("queued.max.request.bytes"),
                "{error}"
            );
        }
    }

    #[test]
    fn session_timeout_bounds_must_be_ordered() {
        let error = parse("group.min.session.timeout.ms=9000\ngroup.max.session.timeout.ms=8000")
            .expect_err("inconsistent");
        assert!(matches!(error, ConfigError::Inconsistent { .. }));
    }

    #[test]
    fn load_reads_a_file_and_reports_missing_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.properties");
        std::fs::write(&path, "broker.id=7\nnum.shards=2\n").expect("write");
        let config = BrokerConfig::load(Some(&path), &["num.shards=3"]).expect("valid");
        assert_eq!((config.broker_id, config.num_shards), (7, 3));

        let missing = dir.path().join("nope.properties");
        let error = BrokerConfig::load(Some(&missing), NO_OVERRIDES).expect_err("missing");
        assert!(matches!(error, ConfigError::Read { .. }));
        assert!(BrokerConfig::load(None, NO_OVERRIDES).is_ok());
    }
}
