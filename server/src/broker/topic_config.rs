//! Topic-level configs (Kafka's names) and how they combine with the broker's defaults into an
//! engine [`LogConfig`]. One table lists every config a topic may set; anything else is
//! INVALID_CONFIG, as in Kafka.

use std::collections::BTreeMap;

use strom_engine::log::{CleanupPolicy, Durability, LogConfig, DEFAULT_DELETE_RETENTION_MS};

use super::dynamic_config::{BrokerValueSource, DynamicBrokerConfigs};
use super::topics::TopicError;
use crate::config::{BrokerConfig, LogDurability};

/// Topic configs Strom understands, with the broker property each one overrides.
pub const TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("cleanup.policy", "log.cleanup.policy"),
    ("delete.retention.ms", "log.cleaner.delete.retention.ms"),
    ("compression.type", "compression.type"),
    ("durability", "log.durability"),
    ("flush.ms", "log.flush.interval.ms"),
    ("index.interval.bytes", "log.index.interval.bytes"),
    ("max.message.bytes", "message.max.bytes"),
    ("message.timestamp.type", "log.message.timestamp.type"),
    ("min.insync.replicas", "min.insync.replicas"),
    ("retention.bytes", "log.retention.bytes"),
    ("retention.ms", "log.retention.ms"),
    ("segment.bytes", "log.segment.bytes"),
    ("segment.ms", "log.roll.ms"),
    (
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
    ),
];

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> TopicError {
    TopicError::InvalidConfig {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn parse_i64(key: &str, value: &str, min: i64) -> Result<i64, TopicError> {
    let parsed: i64 = value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "not an integer"))?;
    if parsed < min {
        return Err(invalid(key, value, format!("must be at least {min}")));
    }
    Ok(parsed)
}

fn parse_durability(key: &str, value: &str) -> Result<LogDurability, TopicError> {
    match value.trim() {
        "none" => Ok(LogDurability::None),
        "interval" => Ok(LogDurability::Interval),
        "sync" => Ok(LogDurability::Sync),
        _ => Err(invalid(key, value, "expected none, interval or sync")),
    }
}

/// Checks one topic config key and value.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), TopicError> {
    match key {
        "cleanup.policy" => match value.trim() {
            "delete" | "compact" => Ok(()),
            _ => Err(invalid(key, value, "expected delete or compact")),
        },
        "compression.type" => TopicCompression::parse(value).map(|_| ()).ok_or_else(|| {
            invalid(
                key,
                value,
                "expected producer, uncompressed, gzip, snappy, lz4 or zstd",
            )
        }),
        "durability" => parse_durability(key, value).map(|_| ()),
        "message.timestamp.type" => match value.trim() {
            "CreateTime" => Ok(()),
            _ => Err(invalid(key, value, "only CreateTime is supported")),
        },
        "unclean.leader.election.enable" => match value.trim() {
            "true" | "false" => Ok(()),
            _ => Err(invalid(key, value, "expected true or false")),
        },
        "flush.ms" | "min.insync.replicas" => parse_i64(key, value, 1).map(|_| ()),
        "index.interval.bytes" => parse_i64(key, value, 1).map(|_| ()),
        "max.message.bytes" => parse_i64(key, value, 0).and_then(|v| {
            i32::try_from(v)
                .map(|_| ())
                .map_err(|_| invalid(key, value, "exceeds 2^31-1"))
        }),
        "retention.bytes" | "retention.ms" => parse_i64(key, value, -1).map(|_| ()),
        "delete.retention.ms" => parse_i64(key, value, 0).map(|_| ()),
        "segment.bytes" => parse_i64(key, value, 1024).and_then(|v| {
            u32::try_from(v)
                .map(|_| ())
                .map_err(|_| invalid(key, value, "exceeds 2^32-1"))
        }),
        "segment.ms" => parse_i64(key, value, 1).map(|_| ()),
        _ => Err(invalid(key, value, "unknown topic config")),
    }
}

pub fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), TopicError> {
    configs
        .iter()
        .try_for_each(|(key, value)| validate_topic_config(key, value))
}

/// `compression.type`: how a topic stores its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopicCompression {
    /// As the producer compressed them (the zero-copy path).
    #[default]
    Producer,
    /// In this codec: a batch arriving in another one is recompressed on the leader.
    Codec(Codec),
}

/// The codecs of a RecordBatch's attributes (bits 0–2), Kafka's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Codec {
    /// The codec of attribute bits 0–2; `None` for the values Kafka does not define.
    pub fn from_attributes(attributes: i16) -> Option<Codec> {
        match attributes & 0x7 {
            0 => Some(Codec::None),
            1 => Some(Codec::Gzip),
            2 => Some(Codec::Snappy),
            3 => Some(Codec::Lz4),
            4 => Some(Codec::Zstd),
            _ => None,
        }
    }
}

impl TopicCompression {
    /// Kafka's `compression.type` values; `None` for anything else.
    pub fn parse(value: &str) -> Option<TopicCompression> {
        Some(match value.trim() {
            "producer" => TopicCompression::Producer,
            "uncompressed" => TopicCompression::Codec(Codec::None),
            "gzip" => TopicCompression::Codec(Codec::Gzip),
            "snappy" => TopicCompression::Codec(Codec::Snappy),
            "lz4" => TopicCompression::Codec(Codec::Lz4),
            "zstd" => TopicCompression::Codec(Codec::Zstd),
            _ => return None,
        })
    }

    /// The topic's setting from its overrides (validated when set; `producer` otherwise).
    pub fn of_topic(overrides: &BTreeMap<String, String>) -> TopicCompression {
        overrides
            .get("compression.type")
            .and_then(|value| TopicCompression::parse(value))
            .unwrap_or_default()
    }
}

/// The broker-level default of a topic config, as text.
pub fn broker_default(config: &BrokerConfig, key: &str) -> Option<String> {
    let text = match key {
        "cleanup.policy" => "delete".to_string(),
        "delete.retention.ms" => DEFAULT_DELETE_RETENTION_MS.to_string(),
        "compression.type" => "producer".to_string(),
        "durability" => match config.log_durability {
            LogDurability::None => "none",
            LogDurability::Interval => "interval",
            LogDurability::Sync => "sync",
        }
        .to_string(),
        "flush.ms" => config.log_flush_interval_ms.to_string(),
        "index.interval.bytes" => config.log_index_interval_bytes.to_string(),
        "max.message.bytes" => config.message_max_bytes.to_string(),
        "message.timestamp.type" => "CreateTime".to_string(),
        "min.insync.replicas" => config.min_insync_replicas.to_string(),
        "retention.bytes" => config
            .log_retention_bytes
            .map_or(-1, |v| v as i64)
            .to_string(),
        "retention.ms" => config.log_retention_ms.map_or(-1, |v| v as i64).to_string(),
        "segment.bytes" => config.log_segment_bytes.to_string(),
        "segment.ms" => config.log_roll_ms.to_string(),
        "unclean.leader.election.enable" => config.unclean_leader_election_enable.to_string(),
        _ => return None,
    };
    Some(text)
}

/// Where a config's value comes from (Kafka's DescribeConfigs `config_source` numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// A topic override in `/config/topics/<t>` (Kafka's TOPIC_CONFIG, "DYNAMIC_TOPIC_CONFIG").
    DynamicTopic = 1,
    /// This broker's dynamic config (`/config/brokers/<id>`).
    DynamicBroker = 2,
    /// The cluster-wide dynamic default (`/config/brokers/<default>`).
    DynamicDefaultBroker = 3,
    /// Set in the broker's properties file or by `--override`.
    StaticBroker = 4,
    /// Nobody set it: the built-in default.
    Default = 5,
}

/// The broker properties that set the broker-level value of `broker_key` (the `ms` key and
/// its coarser-unit synonyms, which the typed config folds into one value).
pub fn broker_key_synonyms(broker_key: &str) -> &'static [&'static str] {
    match broker_key {
        "log.retention.ms" => &[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
        "log.roll.ms" => &["log.roll.ms", "log.roll.hours"],
        "log.segment.bytes" => &["log.segment.bytes"],
        "log.retention.bytes" => &["log.retention.bytes"],
        "log.durability" => &["log.durability"],
        "log.flush.interval.ms" => &["log.flush.interval.ms"],
        "log.index.interval.bytes" => &["log.index.interval.bytes"],
        "message.max.bytes" => &["message.max.bytes"],
        "min.insync.replicas" => &["min.insync.replicas"],
        "unclean.leader.election.enable" => &["unclean.leader.election.enable"],
        _ => &[],
    }
}

/// Where the broker's value of `broker_key` comes from: a dynamic broker config, the
/// properties, or the default.
pub fn broker_value_source(
    config: &BrokerConfig,
    dynamic: &DynamicBrokerConfigs,
    broker_key: &str,
) -> ConfigSource {
    match dynamic.source(config, broker_key_synonyms(broker_key)) {
        BrokerValueSource::DynamicBroker => ConfigSource::DynamicBroker,
        BrokerValueSource::DynamicDefault => ConfigSource::DynamicDefaultBroker,
        BrokerValueSource::Static => ConfigSource::StaticBroker,
        BrokerValueSource::Default => ConfigSource::Default,
    }
}

/// One config of a topic as DescribeConfigs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    pub value: Option<String>,
    pub source: ConfigSource,
    /// Every level that sets it, most specific first (Kafka's synonyms): (name, value, source).
    pub synonyms: Vec<(String, Option<String>, ConfigSource)>,
}

/// `key` of a topic with `overrides`, on a broker whose effective configuration is `config`
/// (with `dynamic` applied): the value, where it comes from, and its synonyms.
pub fn describe_topic_config(
    config: &BrokerConfig,
    dynamic: &DynamicBrokerConfigs,
    overrides: &BTreeMap<String, String>,
    key: &str,
    broker_key: &str,
) -> DescribedConfig {
    let broker_value = broker_default(config, key);
    let broker_source = broker_value_source(config, dynamic, broker_key);
    let mut synonyms = Vec::new();
    if let Some(value) = overrides.get(key) {
        synonyms.push((
            key.to_string(),
            Some(value.clone()),
            ConfigSource::DynamicTopic,
        ));
    }
    synonyms.push((broker_key.to_string(), broker_value.clone(), broker_source));
    let (value, source) = match overrides.get(key) {
        Some(value) => (Some(value.clone()), ConfigSource::DynamicTopic),
        None => (broker_value, broker_source),
    };
    DescribedConfig {
        value,
        source,
        synonyms,
    }
}

/// The engine configuration of a topic's partitions: topic overrides over broker defaults.
/// Overrides were validated when set, so a value that fails to parse falls back to the default.
pub fn log_config(config: &BrokerConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let value = |key: &str| {
        overrides
            .get(key)
            .cloned()
            .or_else(|| broker_default(config, key))
            .unwrap_or_default()
    };
    let number = |key: &str, fallback: i64| value(key).trim().parse::<i64>().unwrap_or(fallback);
    let flush_ms = u64::try_from(number("flush.ms", 1000))
        .unwrap_or(1000)
        .max(1);
    let durability =
        match parse_durability("durability", &value("durability")).unwrap_or(LogDurability::None) {
            LogDurability::None => Durability::None,
            LogDurability::Interval => Durability::Interval { flush_ms },
            LogDurability::Sync => Durability::Sync,
        };
    let defaults = LogConfig::default();
    LogConfig {
        segment_bytes: u64::try_from(number("segment.bytes", 1 << 30))
            .unwrap_or(defaults.segment_bytes),
        segment_ms: number("segment.ms", defaults.segment_ms).max(1),
        segment_index_bytes: defaults.segment_index_bytes,
        index_interval_bytes: u64::try_from(number("index.interval.bytes", 4096))
            .unwrap_or(4096)
            .max(1),
        retention_ms: Some(number("retention.ms", -1)).filter(|ms| *ms >= 0),
        retention_bytes: u64::try_from(number("retention.bytes", -1)).ok(),
        max_message_bytes: usize::try_from(number("max.message.bytes", 1_048_588))
            .unwrap_or(1_048_588),
        durability,
        cleanup_policy: if value("cleanup.policy").trim() == "compact" {
            CleanupPolicy::Compact
        } else {
            CleanupPolicy::Delete
        },
        delete_retention_ms: number("delete.retention.ms", DEFAULT_DELETE_RETENTION_MS).max(0),
        write_inline: config.log_write_inline,
        ..defaults
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_config_validates_its_default_and_rejects_garbage() {
        let broker =
            BrokerConfig::from_properties_text("", "test", &[] as &[&str]).expect("defaults");
        for (key, _) in TOPIC_CONFIGS {
            let default = broker_default(&broker, key).expect("default");
            validate_topic_config(key, &default).unwrap_or_else(|e| panic!("{key}={default}: {e}"));
            assert!(validate_topic_config(key, "garbage!").is_err(), "{key}");
        }
        assert!(validate_topic_config("no.such.config", "1").is_err());
    }

    #[test]
    fn unclean_leader_election_is_a_topic_config_defaulting_to_the_broker_key() {
        validate_topic_config("unclean.leader.election.enable", "true").expect("valid");
        validate_topic_config("unclean.leader.election.enable", "false").expect("valid");
        assert!(validate_topic_config("unclean.leader.election.enable", "1").is_err());
        let off = BrokerConfig::from_properties_text("", "test", &[] as &[&str]).expect("config");
        assert_eq!(
            broker_default(&off, "unclean.leader.election.enable").as_deref(),
            Some("false")
        );
        let on = BrokerConfig::from_properties_text(
            "unclean.leader.election.enable=true",
            "test",
            &[] as &[&str],
        )
        .expect("config");
        assert_eq!(
            broker_default(&on, "unclean.leader.election.enable").as_deref(),
            Some("true")
        );
    }

    #[test]
    fn described_sources_follow_who_set_the_value() {
        let broker =
            BrokerConfig::from_properties_text("log.retention.hours=2", "test", &[] as &[&str])
                .expect("config");
        let none = BTreeMap::new();
        let no_dynamic = DynamicBrokerConfigs::default();
        let retention = describe_topic_config(
            &broker,
            &no_dynamic,
            &none,
            "retention.ms",
            "log.retention.ms",
        );
        assert_eq!(retention.value.as_deref(), Some("7200000"));
        assert_eq!(retention.source, ConfigSource::StaticBroker);
        let segment =
            describe_topic_config(&broker, &no_dynamic, &none, "segment.ms", "log.roll.ms");
        assert_eq!(segment.source, ConfigSource::Default);
        let dynamic = DynamicBrokerConfigs {
            cluster_default: BTreeMap::from([("log.roll.ms".to_string(), "60000".to_string())]),
            this_broker: BTreeMap::new(),
        };
        let segment = describe_topic_config(&broker, &dynamic, &none, "segment.ms", "log.roll.ms");
        assert_eq!(segment.source, ConfigSource::DynamicDefaultBroker);
        let overridden = BTreeMap::from([("retention.ms".to_string(), "5000".to_string())]);
        let described = describe_topic_config(
            &broker,
            &no_dynamic,
            &overridden,
            "retention.ms",
            "log.retention.ms",
        );
        assert_eq!(described.value.as_deref(), Some("5000"));
        assert_eq!(described.source, ConfigSource::DynamicTopic);
        assert_eq!(described.synonyms.len(), 2);
        assert_eq!(described.synonyms[1].2, ConfigSource::StaticBroker);
    }

    #[test]
    fn compression_types_are_kafkas() {
        for value in ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"] {
            validate_topic_config("compression.type", value).expect(value);
        }
        assert!(validate_topic_config("compression.type", "brotli").is_err());
        assert_eq!(
            TopicCompression::parse("lz4"),
            Some(TopicCompression::Codec(Codec::Lz4))
        );
        assert_eq!(Codec::from_attributes(0x13), Some(Codec::Lz4));
        assert_eq!(Codec::from_attributes(0x7), None);
    }

    #[test]
    fn overrides_win_over_broker_defaults() {
        let broker =
            BrokerConfig::from_properties_text("log.segment.bytes=2048", "test", &[] as &[&str])
                .expect("config");
        let overrides = BTreeMap::from([
            ("retention.ms".to_string(), "5000".to_string()),
            ("durability".to_string(), "sync".to_string()),
        ]);
        let config = log_config(&broker, &overrides);
        assert_eq!(config.segment_bytes, 2048);
        assert_eq!(config.retention_ms, Some(5000));
        assert_eq!(config.durability, Durability::Sync);
        assert_eq!(
            log_config(&broker, &BTreeMap::new()).durability,
            Durability::None
        );
    }
}
