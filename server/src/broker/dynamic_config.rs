//! Dynamic broker configs (Kafka's `kafka-configs --entity-type brokers`): values set at run
//! time in `/config/brokers/<default>` (every broker) and `/config/brokers/<id>` (one broker),
//! over the static properties. Only the keys Kafka allows to change at run time and that Strom
//! applies without a restart are accepted: the topic defaults (`log.retention.*`,
//! `log.segment.bytes`, `log.roll.*`, `log.flush.interval.ms`, `log.index.interval.bytes`,
//! `message.max.bytes`, `min.insync.replicas`).
//!
//! The effective configuration is the static one re-parsed with the dynamic values as later
//! overrides (cluster default first, then this broker's), so dynamic values are validated and
//! typed exactly as the properties file is.

use std::collections::BTreeMap;

use super::topics::TopicError;
use crate::config::BrokerConfig;

/// The entity name of the cluster-wide default (`/config/brokers/<default>`), as Kafka names it.
pub const DEFAULT_ENTITY: &str = "<default>";

/// Broker keys that may be changed at run time.
pub const DYNAMIC_BROKER_KEYS: &[&str] = &[
    "log.retention.ms",
    "log.retention.minutes",
    "log.retention.hours",
    "log.retention.bytes",
    "log.segment.bytes",
    "log.roll.ms",
    "log.roll.hours",
    "log.flush.interval.ms",
    "log.index.interval.bytes",
    "message.max.bytes",
    "min.insync.replicas",
    // Not `unclean.leader.election.enable`: the controller reads the broker default once, when
    // it is elected (the topic config of that name does change at run time).
];

/// The dynamic values this broker sees: the cluster default and its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynamicBrokerConfigs {
    pub cluster_default: BTreeMap<String, String>,
    pub this_broker: BTreeMap<String, String>,
}

/// Where a broker-level value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerValueSource {
    /// `/config/brokers/<id>` (Kafka's DYNAMIC_BROKER_CONFIG, 2).
    DynamicBroker,
    /// `/config/brokers/<default>` (DYNAMIC_DEFAULT_BROKER_CONFIG, 3).
    DynamicDefault,
    /// The properties file or `--override` (STATIC_BROKER_CONFIG, 4).
    Static,
    /// Nobody set it (DEFAULT_CONFIG, 5).
    Default,
}

impl BrokerValueSource {
    /// Kafka's DescribeConfigs `config_source` code.
    pub fn code(self) -> i8 {
        match self {
            BrokerValueSource::DynamicBroker => 2,
            BrokerValueSource::DynamicDefault => 3,
            BrokerValueSource::Static => 4,
            BrokerValueSource::Default => 5,
        }
    }
}

impl DynamicBrokerConfigs {
    /// Where the broker value set by any of `keys` (a key and its coarser-unit synonyms) comes
    /// from.
    pub fn source(&self, config: &BrokerConfig, keys: &[&str]) -> BrokerValueSource {
        let set_in = |map: &BTreeMap<String, String>| keys.iter().any(|key| map.contains_key(*key));
        if set_in(&self.this_broker) {
            BrokerValueSource::DynamicBroker
        } else if set_in(&self.cluster_default) {
            BrokerValueSource::DynamicDefault
        } else if set_in(&config.explicit_settings) {
            BrokerValueSource::Static
        } else {
            BrokerValueSource::Default
        }
    }

    pub fn is_empty(&self) -> bool {
        self.cluster_default.is_empty() && self.this_broker.is_empty()
    }
}

/// `static_config` with `layers` of dynamic values applied in order (later wins), re-parsed as
/// the properties file is.
fn with_layers(
    static_config: &BrokerConfig,
    layers: &[&BTreeMap<String, String>],
) -> Result<BrokerConfig, String> {
    let overrides: Vec<String> = static_config
        .explicit_settings
        .iter()
        .chain(layers.iter().flat_map(|layer| layer.iter()))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    let mut config = BrokerConfig::from_properties_text("", "dynamic broker configs", &overrides)
        .map_err(|error| error.to_string())?;
    // What the file and overrides set stays what was set statically: sources are told apart
    // through `DynamicBrokerConfigs::source`.
    config.explicit_settings = static_config.explicit_settings.clone();
    Ok(config)
}

/// The configuration this broker runs with: static, then the cluster default, then its own
/// dynamic values. A combination that does not parse (written by another tool) is logged and
/// the static configuration used.
pub fn effective_config(
    static_config: &BrokerConfig,
    dynamic: &DynamicBrokerConfigs,
) -> BrokerConfig {
    if dynamic.is_empty() {
        return static_config.clone();
    }
    with_layers(
        static_config,
        &[&dynamic.cluster_default, &dynamic.this_broker],
    )
    .unwrap_or_else(|error| {
        tracing::error!(%error, "ignoring dynamic broker configs that do not parse");
        static_config.clone()
    })
}

/// Checks a broker entity's new dynamic values: every key dynamic, every value valid over the
/// static configuration.
pub fn validate_dynamic_configs(
    static_config: &BrokerConfig,
    configs: &BTreeMap<String, String>,
) -> Result<(), TopicError> {
    if let Some(key) = configs
        .keys()
        .find(|key| !DYNAMIC_BROKER_KEYS.contains(&key.as_str()))
    {
        return Err(TopicError::InvalidRequest(format!(
            "{key} cannot be changed at run time (dynamic broker configs: {})",
            DYNAMIC_BROKER_KEYS.join(", ")
        )));
    }
    with_layers(static_config, &[configs])
        .map(|_| ())
        .map_err(|reason| {
            let (key, value) = configs
                .iter()
                .next()
                .map(|(k, v)| (k.clone(), v.clone()))
                .unwrap_or_default();
            TopicError::InvalidConfig { key, value, reason }
        })
}

/// The entity of a BROKER resource name: `""` is the cluster default, else a broker id.
pub fn broker_entity(resource_name: &str) -> Result<String, TopicError> {
    if resource_name.is_empty() {
        return Ok(DEFAULT_ENTITY.to_string());
    }
    resource_name
        .parse::<i32>()
        .ok()
        .filter(|id| *id >= 0)
        .map(|id| id.to_string())
        .ok_or_else(|| TopicError::InvalidRequest(format!("invalid broker id '{resource_name}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> BrokerConfig {
        BrokerConfig::from_properties_text(text, "test", &[] as &[&str]).expect("config")
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn this_brokers_values_win_over_the_default_which_wins_over_static() {
        let static_config = config("log.retention.ms=5000\nmessage.max.bytes=2000");
        let dynamic = DynamicBrokerConfigs {
            cluster_default: map(&[("log.retention.ms", "7000"), ("min.insync.replicas", "2")]),
            this_broker: map(&[("log.retention.ms", "9000")]),
        };
        let effective = effective_config(&static_config, &dynamic);
        assert_eq!(effective.log_retention_ms, Some(9000));
        assert_eq!(effective.min_insync_replicas, 2);
        assert_eq!(effective.message_max_bytes, 2000);
        assert_eq!(effective.explicit_settings, static_config.explicit_settings);
        assert_eq!(
            dynamic.source(&static_config, &["log.retention.ms"]),
            BrokerValueSource::DynamicBroker
        );
        assert_eq!(
            dynamic.source(&static_config, &["min.insync.replicas"]),
            BrokerValueSource::DynamicDefault
        );
        assert_eq!(
            dynamic.source(&static_config, &["message.max.bytes"]),
            BrokerValueSource::Static
        );
        assert_eq!(
            dynamic.source(&static_config, &["log.segment.bytes"]),
            BrokerValueSource::Default
        );
    }

    #[test]
    fn only_dynamic_keys_with_valid_values_are_accepted() {
        let static_config = config("");
        validate_dynamic_configs(&static_config, &map(&[("log.retention.ms", "1000")]))
            .expect("valid");
        assert!(matches!(
            validate_dynamic_configs(&static_config, &map(&[("log.retention.ms", "soon")])),
            Err(TopicError::InvalidConfig { .. })
        ));
        assert!(matches!(
            validate_dynamic_configs(&static_config, &map(&[("listeners", "PLAINTEXT://:1")])),
            Err(TopicError::InvalidRequest(_))
        ));
        assert_eq!(broker_entity("").expect("default"), DEFAULT_ENTITY);
        assert_eq!(broker_entity("3").expect("id"), "3");
        assert!(broker_entity("x").is_err());
    }
}
