//! `ConfigError`: why a broker configuration was refused, naming the key,
//! the value and where it was set.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of a properties file (1-based).
    File {
        /// File name as given, or a label for in-memory text.
        source: String,
        /// Line the property started on.
        line: usize,
    },
    /// A `--override key=value` argument.
    Override,
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { source, line } => write!(formatter, "{source}:{line}"),
            Origin::Override => write!(formatter, "--override"),
        }
    }
}

/// A configuration that cannot be used. Strom never falls back to a default
/// for a key it does not understand or a value it cannot parse.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },

    /// A line is not a valid property.
    #[error("{origin}: {reason}")]
    Syntax {
        /// The offending line.
        origin: Origin,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// An override is not of the form `key=value`.
    #[error("--override {text:?} is not of the form key=value")]
    MalformedOverride {
        /// The argument as given.
        text: String,
    },

    /// A key Strom does not know.
    #[error("{origin}: unknown config key {key:?}")]
    UnknownKey {
        /// The key.
        key: String,
        /// Where it was set.
        origin: Origin,
    },

    /// A value that does not parse or is out of range.
    #[error("{origin}: invalid value {value:?} for {key}: {reason}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// Where it was set.
        origin: Origin,
        /// What is wrong with it.
        reason: String,
    },

    /// Settings that are valid alone but not together.
    #[error("inconsistent config: {reason}")]
    Inconsistent {
        /// Which keys disagree and how.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_key_value_and_line() {
        let error = ConfigError::InvalidValue {
            key: "num.partitions".into(),
            value: "three".into(),
            origin: Origin::File {
                source: "server.properties".into(),
                line: 12,
            },
            reason: "not an integer".into(),
        };
        assert_eq!(
            error.to_string(),
            "server.properties:12: invalid value \"three\" for num.partitions: not an integer"
        );
        let error = ConfigError::UnknownKey {
            key: "num.partition".into(),
            origin: Origin::Override,
        };
        assert_eq!(
            error.to_string(),
            "--override: unknown config key \"num.partition\""
        );
    }
}
