//! `zookeeper.connect`: `host:port[,host:port…][/chroot]`, as ZooKeeper's own
//! client and Kafka accept it.
//!
//! Validated when the config loads so a typo is refused at start with the
//! key and line, instead of surfacing later as a connection that never comes
//! up. Unlike ZooKeeper's client, a port is required: a silent default of 2181
//! hides a missing port that was meant to be something else.

/// A parsed connect string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooKeeperConnect {
    /// The servers as `(host, port)`; IPv6 hosts without brackets. Never empty.
    pub servers: Vec<(String, u16)>,
    /// The chroot path every znode lives under (`/strom`), `None` for the root.
    /// Starts with `/`, has no trailing `/`, no empty, `.` or `..` segment.
    pub chroot: Option<String>,
}

impl ZooKeeperConnect {
    /// Parses `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (hosts, chroot) = match text.find('/') {
            Some(slash) => (&text[..slash], Some(&text[slash..])),
            None => (text, None),
        };
        if hosts.is_empty() {
            return Err("expected host:port[,host:port...][/chroot]".to_owned());
        }
        let servers = hosts
            .split(',')
            .map(|server| parse_server(server.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        let chroot = match chroot {
            // ZooKeeper treats a lone "/" as no chroot.
            None | Some("/") => None,
            Some(path) => Some(validate_chroot(path)?),
        };
        Ok(Self { servers, chroot })
    }
}

fn parse_server(server: &str) -> Result<(String, u16), String> {
    if server.is_empty() {
        return Err("empty server in list".to_owned());
    }
    let (host, port) = server
        .rsplit_once(':')
        .ok_or_else(|| format!("server {server:?} has no :port"))?;
    let host = match host.strip_prefix('[') {
        Some(bracketed) => bracketed
            .strip_suffix(']')
            .ok_or_else(|| format!("server {server:?} has an unclosed '['"))?,
        None if host.contains(':') => {
            return Err(format!("IPv6 host in {server:?} must be in brackets"))
        }
        None => host,
    };
    if host.is_empty() || host.contains([' ', '[', ']']) {
        return Err(format!("server {server:?} has no valid host"));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| format!("server {server:?} port is not a number in 1..=65535"))?;
    Ok((host.to_owned(), port))
}

/// ZooKeeper's path rules, so the chroot is refused here rather than by the
/// server at first use.
fn validate_chroot(path: &str) -> Result<String, String> {
    if path.ends_with('/') {
        return Err(format!("chroot {path:?} must not end with '/'"));
    }
    let bad_segment = path
        .split('/')
        .skip(1)
        .any(|segment| segment.is_empty() || segment == "." || segment == "..");
    if bad_segment {
        return Err(format!(
            "chroot {path:?} has an empty, '.' or '..' path segment"
        ));
    }
    if path.chars().any(char::is_control) {
        return Err(format!("chroot {path:?} contains a control character"));
    }
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(host: &str, port: u16) -> (String, u16) {
        (host.to_owned(), port)
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(
            ZooKeeperConnect::parse("127.0.0.1:2181"),
            Ok(ZooKeeperConnect {
                servers: vec![server("127.0.0.1", 2181)],
                chroot: None
            })
        );
        assert_eq!(
            ZooKeeperConnect::parse("zk1:2181, zk2:2182,[::1]:2183/strom/prod"),
            Ok(ZooKeeperConnect {
                servers: vec![
                    server("zk1", 2181),
                    server("zk2", 2182),
                    server("::1", 2183)
                ],
                chroot: Some("/strom/prod".to_owned())
            })
        );
        assert_eq!(
            ZooKeeperConnect::parse("zk:1/").map(|connect| connect.chroot),
            Ok(None)
        );
    }

    #[test]
    fn refused_forms() {
        for text in [
            "",
            "/strom",
            "zk",
            "zk:",
            "zk:0",
            "zk:70000",
            "zk:port",
            ":2181",
            "zk1:1,,zk2:2",
            "zk1:1,",
            "::1:2181",
            "[::1:2181",
            "zk:1/strom/",
            "zk:1//strom",
            "zk:1/strom/../x",
            "zk:1/./x",
        ] {
            assert!(
                ZooKeeperConnect::parse(text).is_err(),
                "{text:?} should be refused"
            );
        }
    }
}
