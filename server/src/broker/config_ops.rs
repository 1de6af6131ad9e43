//! Changes to a topic's config overrides, as IncrementalAlterConfigs (SET, DELETE, APPEND,
//! SUBTRACT on single keys) and AlterConfigs (replace the whole set) ask for them. Pure logic:
//! the control plane reads the current overrides from `/config/topics/<t>`, applies one of these,
//! and writes the result over the version it read.

use std::collections::BTreeMap;

use super::topic_config::validate_topic_configs;
use super::topics::TopicError;

/// Topic configs whose value is a comma-separated list (APPEND and SUBTRACT apply to them only).
const LIST_CONFIGS: &[&str] = &["cleanup.policy", "log.cleanup.policy"];

/// One IncrementalAlterConfigs operation (Kafka's `AlterConfigOp.OpType` numbering).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterOp {
    /// 0: set the override.
    Set { key: String, value: String },
    /// 1: remove the override (the broker default applies again).
    Delete { key: String },
    /// 2: add values to a list config.
    Append { key: String, value: String },
    /// 3: remove values from a list config.
    Subtract { key: String, value: String },
}

impl AlterOp {
    /// Builds an operation from the wire. An unknown operation code is INVALID_REQUEST, as in
    /// Kafka; SET/APPEND/SUBTRACT without a value are INVALID_REQUEST too.
    pub fn from_wire(key: &str, op: i8, value: Option<&str>) -> Result<AlterOp, TopicError> {
        let key = key.to_string();
        let needs_value = |value: Option<&str>| {
            value.map(str::to_string).ok_or_else(|| {
                TopicError::InvalidRequest(format!("operation {op} on {key} needs a value"))
            })
        };
        match op {
            0 => Ok(AlterOp::Set {
                value: needs_value(value)?,
                key,
            }),
            1 => Ok(AlterOp::Delete { key }),
            2 => Ok(AlterOp::Append {
                value: needs_value(value)?,
                key,
            }),
            3 => Ok(AlterOp::Subtract {
                value: needs_value(value)?,
                key,
            }),
            _ => Err(TopicError::InvalidRequest(format!(
                "unknown config operation {op} for {key}"
            ))),
        }
    }

    pub fn key(&self) -> &str {
        match self {
            AlterOp::Set { key, .. }
            | AlterOp::Delete { key }
            | AlterOp::Append { key, .. }
            | AlterOp::Subtract { key, .. } => key,
        }
    }
}

/// What a config change does to a topic's overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// IncrementalAlterConfigs: these operations, in order, on the current overrides.
    Incremental(Vec<AlterOp>),
    /// AlterConfigs: these overrides replace every current one.
    Replace(BTreeMap<String, String>),
}

fn list_items(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

fn not_a_list(key: &str, value: &str, verb: &str) -> TopicError {
    TopicError::InvalidConfig {
        key: key.to_string(),
        value: value.to_string(),
        reason: format!("{verb} applies to list configs only"),
    }
}

/// A topic's overrides after `change`, validated as a whole (every key known, every value
/// valid), or why the change is refused. `current` is not modified: a refused change changes
/// nothing.
pub fn apply_change(
    current: &BTreeMap<String, String>,
    change: &ConfigChange,
) -> Result<BTreeMap<String, String>, TopicError> {
    apply_change_with(current, change, validate_topic_configs)
}

/// Like [`apply_change`], with the result checked by `validate` (e.g. dynamic broker configs).
pub fn apply_change_with(
    current: &BTreeMap<String, String>,
    change: &ConfigChange,
    validate: impl Fn(&BTreeMap<String, String>) -> Result<(), TopicError>,
) -> Result<BTreeMap<String, String>, TopicError> {
    let next = match change {
        ConfigChange::Replace(configs) => configs.clone(),
        ConfigChange::Incremental(ops) => {
            // Kafka refuses a resource naming one key twice.
            let mut keys: Vec<&str> = ops.iter().map(AlterOp::key).collect();
            keys.sort_unstable();
            if let Some(pair) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
                return Err(TopicError::InvalidRequest(format!(
                    "config {} is named twice",
                    pair[0]
                )));
            }
            let mut next = current.clone();
            for op in ops {
                match op {
                    AlterOp::Set { key, value } => {
                        next.insert(key.clone(), value.clone());
                    }
                    AlterOp::Delete { key } => {
                        next.remove(key);
                    }
                    AlterOp::Append { key, value } => {
                        if !LIST_CONFIGS.contains(&key.as_str()) {
                            return Err(not_a_list(key, value, "APPEND"));
                        }
                        let mut items = next.get(key).map(|v| list_items(v)).unwrap_or_default();
                        for item in list_items(value) {
                            if !items.contains(&item) {
                                items.push(item);
                            }
                        }
                        next.insert(key.clone(), items.join(","));
                    }
                    AlterOp::Subtract { key, value } => {
                        if !LIST_CONFIGS.contains(&key.as_str()) {
                            return Err(not_a_list(key, value, "SUBTRACT"));
                        }
                        let removed = list_items(value);
                        let items: Vec<String> = next
                            .get(key)
                            .map(|v| list_items(v))
                            .unwrap_or_default()
                            .into_iter()
                            .filter(|item| !removed.contains(item))
                            .collect();
                        if items.is_empty() {
                            next.remove(key);
                        } else {
                            next.insert(key.clone(), items.join(","));
                        }
                    }
                }
            }
            next
        }
    };
    validate(&next)?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn set(key: &str, value: &str) -> AlterOp {
        AlterOp::Set {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn set_and_delete_change_only_their_keys() {
        let current = configs(&[("retention.ms", "1000"), ("segment.ms", "5000")]);
        let next = apply_change(
            &current,
            &ConfigChange::Incremental(vec![
                set("retention.ms", "3600000"),
                AlterOp::Delete {
                    key: "segment.ms".into(),
                },
            ]),
        )
        .expect("valid");
        assert_eq!(next, configs(&[("retention.ms", "3600000")]));
    }

    #[test]
    fn an_invalid_value_or_unknown_key_refuses_the_whole_change() {
        let current = configs(&[("retention.ms", "1000")]);
        for bad in [set("retention.ms", "soon"), set("no.such.key", "1")] {
            let change = ConfigChange::Incremental(vec![set("segment.ms", "10"), bad]);
            assert!(matches!(
                apply_change(&current, &change),
                Err(TopicError::InvalidConfig { .. })
            ));
        }
        assert!(matches!(
            apply_change(
                &current,
                &ConfigChange::Replace(configs(&[("segment.bytes", "1")]))
            ),
            Err(TopicError::InvalidConfig { .. })
        ));
    }

    #[test]
    fn replace_drops_overrides_it_does_not_name() {
        let current = configs(&[("retention.ms", "1000"), ("segment.ms", "5000")]);
        let next = apply_change(
            &current,
            &ConfigChange::Replace(configs(&[("retention.bytes", "4096")])),
        )
        .expect("valid");
        assert_eq!(next, configs(&[("retention.bytes", "4096")]));
    }

    #[test]
    fn append_and_subtract_apply_to_list_configs_only() {
        let current = configs(&[("cleanup.policy", "delete")]);
        let appended = |key: &str, value: &str| {
            ConfigChange::Incremental(vec![AlterOp::Append {
                key: key.into(),
                value: value.into(),
            }])
        };
        // Appending what is there already changes nothing.
        assert_eq!(
            apply_change(&current, &appended("cleanup.policy", "delete")).expect("valid"),
            current
        );
        assert!(matches!(
            apply_change(&current, &appended("retention.ms", "5")),
            Err(TopicError::InvalidConfig { .. })
        ));
        let subtracted = apply_change(
            &current,
            &ConfigChange::Incremental(vec![AlterOp::Subtract {
                key: "cleanup.policy".into(),
                value: "delete".into(),
            }]),
        )
        .expect("valid");
        assert!(subtracted.is_empty());
    }

    #[test]
    fn wire_operations_are_checked() {
        assert_eq!(
            AlterOp::from_wire("retention.ms", 0, Some("5")).expect("set"),
            set("retention.ms", "5")
        );
        assert!(matches!(
            AlterOp::from_wire("retention.ms", 7, Some("5")),
            Err(TopicError::InvalidRequest(_))
        ));
        assert!(matches!(
            AlterOp::from_wire("retention.ms", 0, None),
            Err(TopicError::InvalidRequest(_))
        ));
        let twice = ConfigChange::Incremental(vec![
            set("retention.ms", "5"),
            AlterOp::Delete {
                key: "retention.ms".into(),
            },
        ]);
        assert!(matches!(
            apply_change(&BTreeMap::new(), &twice),
            Err(TopicError::InvalidRequest(_))
        ));
    }
}
