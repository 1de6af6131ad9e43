//! Topic-level configs (Kafka's names) and how they combine with the broker's defaults into an
//! engine [`LogConfig`]. One table lists every config a topic may set; anything else is
//! INVALID_CONFIG, as in Kafka.

use std::collections::BTreeMap;

use strom_engine::log::{CleanupPolicy, Durability, LogConfig, DEFAULT_DELETE_RETENTION_MS};

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
        "compression.type" => match value.trim() {
            // Strom stores batches as producers compressed them.
            "producer" => Ok(()),
            _ => Err(invalid(key, value, "only 'producer' is supported")),
        },
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
