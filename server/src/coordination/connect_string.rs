//! Parsing `zookeeper.connect`: `host:port[,host:port...][/chroot]`, as Kafka
//! and ZooKeeper's own clients accept it. Pure logic, no I/O.

use super::error::CoordinationError;
use super::path;

/// ZooKeeper's client port when a host names none.
pub const ZOOKEEPER_DEFAULT_PORT: u16 = 2181;

/// Most servers one connect string may name; a real ensemble has 3-7, so more
/// is a typo, and the bound keeps the parsed form small.
pub const CONNECT_MAX_SERVERS: usize = 64;

/// A parsed connect string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    /// `host:port` of each server, in the given order.
    pub servers: Vec<String>,
    /// The node every path is relative to; `None` for the root.
    pub chroot: Option<String>,
}

impl ConnectString {
    /// The servers as one `host:port,host:port` string (no chroot).
    pub fn servers_joined(&self) -> String {
        self.servers.join(",")
    }
}

/// Parses `connect`. The chroot starts at the first `/`; `/` alone means none.
pub fn parse(connect: &str) -> Result<ConnectString, CoordinationError> {
    let invalid = |reason: String| CoordinationError::InvalidConnectString {
        connect: connect.to_owned(),
        reason,
    };
    let (hosts, chroot) = match connect.find('/') {
        Some(index) => (&connect[..index], Some(&connect[index..])),
        None => (connect, None),
    };
    let chroot = match chroot {
        None | Some("/") => None,
        Some(chroot) => {
            path::validate(chroot).map_err(|error| invalid(format!("chroot: {error}")))?;
            Some(chroot.to_owned())
        }
    };
    let mut servers = Vec::new();
    for server in hosts.split(',') {
        let server = server.trim();
        if server.is_empty() {
            return Err(invalid("empty server address".to_owned()));
        }
        let (host, port) = match server.rsplit_once(':') {
            // An IPv6 literal has colons; only a bracketed one can carry a port.
            Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|port| *port != 0)
                    .ok_or_else(|| invalid(format!("bad port in {server:?}")))?;
                (host, port)
            }
            _ => (server, ZOOKEEPER_DEFAULT_PORT),
        };
        if host.is_empty() {
            return Err(invalid(format!("no host in {server:?}")));
        }
        servers.push(format!("{host}:{port}"));
        if servers.len() > CONNECT_MAX_SERVERS {
            return Err(invalid(format!("more than {CONNECT_MAX_SERVERS} servers")));
        }
    }
    Ok(ConnectString { servers, chroot })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_and_chroot() {
        let parsed = parse("zk1:2181,zk2:2182/kafka/prod").expect("valid");
        assert_eq!(parsed.servers, ["zk1:2181", "zk2:2182"]);
        assert_eq!(parsed.chroot.as_deref(), Some("/kafka/prod"));
        assert_eq!(parsed.servers_joined(), "zk1:2181,zk2:2182");
        let parsed = parse("127.0.0.1:2181").expect("valid");
        assert_eq!(parsed.chroot, None);
        assert_eq!(parse("h/").expect("valid").chroot, None);
        assert_eq!(parse("h").expect("valid").servers, ["h:2181"]);
        assert_eq!(parse("[::1]:9").expect("valid").servers, ["[::1]:9"]);
    }

    #[test]
    fn rejects_what_cannot_work() {
        for bad in [
            "", "h:1,", ":2181", "h:0", "h:99999", "h:x", "h:1/a/", "h:1/a//b",
        ] {
            assert!(
                matches!(
                    parse(bad),
                    Err(CoordinationError::InvalidConnectString { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }
}
