//! Raw settings (file lines, then overrides) and typed lookups over them.
//!
//! Every lookup that fails produces a [`ConfigError`] naming the key, the value
//! and the line or override it came from.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

use super::error::{ConfigError, Origin};
use super::properties::Property;

/// The merged `key -> value` settings; a later setting of a key replaces an
/// earlier one (file lines in order, then overrides in order).
#[derive(Debug, Default)]
pub(super) struct Settings {
    values: HashMap<String, Property>,
}

impl Settings {
    /// Merges file properties and `key=value` overrides, refusing any key not
    /// in `known_keys`.
    pub(super) fn new(
        properties: Vec<Property>,
        overrides: &[impl AsRef<str>],
        known_keys: &[&str],
    ) -> Result<Self, ConfigError> {
        let mut settings = Self::default();
        for property in properties {
            settings.insert(property, known_keys)?;
        }
        for text in overrides {
            let text = text.as_ref();
            let (key, value) = text
                .split_once('=')
                .map(|(key, value)| (key.trim(), value.trim()))
                .filter(|(key, _)| !key.is_empty())
                .ok_or_else(|| ConfigError::MalformedOverride {
                    text: text.to_owned(),
                })?;
            let property = Property {
                key: key.to_owned(),
                value: value.to_owned(),
                origin: Origin::Override,
            };
            settings.insert(property, known_keys)?;
        }
        Ok(settings)
    }

    fn insert(&mut self, property: Property, known_keys: &[&str]) -> Result<(), ConfigError> {
        if !known_keys.contains(&property.key.as_str()) {
            return Err(ConfigError::UnknownKey {
                key: property.key,
                origin: property.origin,
            });
        }
        self.values.insert(property.key.clone(), property);
        Ok(())
    }

    /// Every key set, with its value as written.
    pub(super) fn explicit(&self) -> std::collections::BTreeMap<String, String> {
        self.values
            .iter()
            .map(|(key, property)| (key.clone(), property.value.clone()))
            .collect()
    }

    pub(super) fn is_set(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// The error for `key`'s current value.
    pub(super) fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        let (value, origin) = match self.values.get(key) {
            Some(property) => (property.value.clone(), property.origin.clone()),
            // Only reachable for defaults, which tests keep valid.
            None => (String::new(), Origin::Override),
        };
        ConfigError::InvalidValue {
            key: key.to_owned(),
            value,
            origin,
            reason: reason.into(),
        }
    }

    /// Parses `key` with `parse`, or `None` when unset.
    pub(super) fn parse_with<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.values.get(key) {
            None => Ok(None),
            Some(property) => parse(&property.value)
                .map(Some)
                .map_err(|reason| self.invalid(key, reason)),
        }
    }

    /// An integer in `min..=max`, or `default` when unset.
    pub(super) fn integer<T>(&self, key: &str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let parsed = self.parse_with(key, |text| {
            let value = text
                .parse::<T>()
                .map_err(|_| "not an integer in range".to_owned())?;
            if value < min || value > max {
                return Err(format!("must be between {min} and {max}"));
            }
            Ok(value)
        })?;
        Ok(parsed.unwrap_or(default))
    }

    /// `true` or `false` (any case, as Kafka accepts), or `default` when unset.
    pub(super) fn boolean(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        let parsed = self.parse_with(key, |text| {
            if text.eq_ignore_ascii_case("true") {
                Ok(true)
            } else if text.eq_ignore_ascii_case("false") {
                Ok(false)
            } else {
                Err("expected true or false".to_owned())
            }
        })?;
        Ok(parsed.unwrap_or(default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &["a", "b"];

    fn file_property(key: &str, value: &str, line: usize) -> Property {
        Property {
            key: key.into(),
            value: value.into(),
            origin: Origin::File {
                source: "f".into(),
                line,
            },
        }
    }

    #[test]
    fn later_settings_and_overrides_win() {
        let settings = Settings::new(
            vec![
                file_property("a", "1", 1),
                file_property("a", "2", 2),
                file_property("b", "3", 3),
            ],
            &["b = 4"],
            KEYS,
        )
        .expect("valid");
        assert_eq!(settings.integer("a", 0, 0, 10).expect("int"), 2);
        assert_eq!(settings.integer("b", 0, 0, 10).expect("int"), 4);
    }

    #[test]
    fn unknown_keys_are_refused_from_file_and_override() {
        let error = Settings::new(vec![file_property("c", "1", 7)], &[] as &[&str], KEYS)
            .expect_err("unknown");
        assert_eq!(error.to_string(), "f:7: unknown config key \"c\"");
        let error = Settings::new(vec![], &["zz=1"], KEYS).expect_err("unknown");
        assert!(matches!(
            error,
            ConfigError::UnknownKey {
                origin: Origin::Override,
                ..
            }
        ));
    }

    #[test]
    fn malformed_overrides_are_refused() {
        for text in ["a", "=1", " =1"] {
            let error = Settings::new(vec![], &[text], KEYS).expect_err("malformed");
            assert!(
                matches!(error, ConfigError::MalformedOverride { .. }),
                "{text}"
            );
        }
    }

    #[test]
    fn integer_range_and_syntax_errors_name_the_value() {
        let settings = Settings::new(
            vec![file_property("a", "11", 3), file_property("b", "x", 4)],
            &[] as &[&str],
            KEYS,
        )
        .expect("valid");
        assert_eq!(
            settings
                .integer("a", 0, 0, 10)
                .expect_err("range")
                .to_string(),
            "f:3: invalid value \"11\" for a: must be between 0 and 10"
        );
        assert_eq!(
            settings
                .integer::<i32>("b", 0, 0, 10)
                .expect_err("syntax")
                .to_string(),
            "f:4: invalid value \"x\" for b: not an integer in range"
        );
    }

    #[test]
    fn booleans_accept_any_case() {
        let settings = Settings::new(vec![], &["a=TRUE", "b=no"], KEYS).expect("valid");
        assert!(settings.boolean("a", false).expect("bool"));
        assert!(settings.boolean("b", false).is_err());
    }
}
