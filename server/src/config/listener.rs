//! Kafka listener addresses: `PLAINTEXT://host:port`, or bare `host:port`.
//!
//! Only the PLAINTEXT security protocol exists in Strom; any other scheme
//! (SSL, SASL_*, or a named listener such as CONTROLLER) is refused rather
//! than silently served as plaintext. An empty host means all interfaces, as
//! in Kafka; IPv6 hosts are written in brackets (`[::1]:9092`).

use std::fmt;

/// The only security protocol Strom serves.
pub const PLAINTEXT_SCHEME: &str = "PLAINTEXT";

/// One listener address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Host name or IP (IPv6 without brackets); empty for all interfaces.
    pub host: String,
    /// TCP port; 0 asks the OS for a free one (tests).
    pub port: u16,
}

impl Listener {
    /// Parses one listener; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let address = match text.split_once("://") {
            Some((scheme, address)) if scheme.eq_ignore_ascii_case(PLAINTEXT_SCHEME) => address,
            Some((scheme, _)) => {
                return Err(format!(
                    "listener scheme {scheme:?} is not supported; only {PLAINTEXT_SCHEME} is"
                ))
            }
            None => text,
        };
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("listener {text:?} has no :port"))?;
        let host = match host.strip_prefix('[') {
            Some(bracketed) => bracketed
                .strip_suffix(']')
                .ok_or_else(|| format!("listener {text:?} has an unclosed '['"))?,
            None if host.contains(':') => {
                return Err(format!("IPv6 host in {text:?} must be in brackets"))
            }
            None => host,
        };
        if host.contains(['/', ' ', '[', ']']) {
            return Err(format!("listener host {host:?} is not a host name or IP"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("listener port {port:?} is not a number in 0..=65535"))?;
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }

    /// Whether clients could connect to this address if it were advertised:
    /// not empty and not a wildcard.
    pub fn is_routable(&self) -> bool {
        !matches!(self.host.as_str(), "" | "0.0.0.0" | "::")
    }

    /// `host:port` for binding a socket; an empty host binds all interfaces.
    pub fn bind_address(&self) -> String {
        match self.host.as_str() {
            "" => format!("0.0.0.0:{}", self.port),
            host if host.contains(':') => format!("[{host}]:{}", self.port),
            host => format!("{host}:{}", self.port),
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(
                formatter,
                "{PLAINTEXT_SCHEME}://[{}]:{}",
                self.host, self.port
            )
        } else {
            write!(
                formatter,
                "{PLAINTEXT_SCHEME}://{}:{}",
                self.host, self.port
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(host: &str, port: u16) -> Listener {
        Listener {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(
            Listener::parse("PLAINTEXT://127.0.0.1:9092"),
            Ok(listener("127.0.0.1", 9092))
        );
        assert_eq!(Listener::parse("plaintext://h:1"), Ok(listener("h", 1)));
        assert_eq!(
            Listener::parse("broker-1:9093"),
            Ok(listener("broker-1", 9093))
        );
        assert_eq!(Listener::parse("PLAINTEXT://:9092"), Ok(listener("", 9092)));
        assert_eq!(
            Listener::parse("PLAINTEXT://[::1]:0"),
            Ok(listener("::1", 0))
        );
    }

    #[test]
    fn refused_forms() {
        for text in [
            "SSL://h:9092",
            "CONTROLLER://:9093",
            "PLAINTEXT://h",
            "h:99999",
            "h:port",
            "::1:9092",
            "[::1:9092",
            "PLAINTEXT://a/b:1",
        ] {
            assert!(Listener::parse(text).is_err(), "{text} should be refused");
        }
    }

    #[test]
    fn display_and_bind_address() {
        assert_eq!(listener("h", 1).to_string(), "PLAINTEXT://h:1");
        assert_eq!(listener("::1", 2).to_string(), "PLAINTEXT://[::1]:2");
        assert_eq!(listener("", 3).bind_address(), "0.0.0.0:3");
        assert_eq!(listener("::1", 4).bind_address(), "[::1]:4");
        assert!(!listener("0.0.0.0", 5).is_routable());
        assert!(listener("localhost", 5).is_routable());
    }
}
