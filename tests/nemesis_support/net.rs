//! A private network for one test run: a Linux bridge in the test's own (root) namespace and
//! one network namespace per broker, each joined to the bridge by a veth pair.
//!
//! ```text
//!   clients (10.A.B.254) ─┐
//!   ZooKeeper (10.A.B.253)┴─ bridge ──┬── veth ── ns n1: broker 1, 10.A.B.1
//!                                     ├── veth ── ns n2: broker 2, 10.A.B.2
//!                                     └── veth ── ns n3: broker 3, 10.A.B.3
//! ```
//!
//! Faults: `isolate` takes a broker's bridge-side link down (it loses ZooKeeper, the other
//! brokers and the clients at once, as a pulled cable does); `cut_from_cluster` drops its packets
//! to and from ZooKeeper and the other brokers with nftables in its namespace while clients still
//! reach it (the split-brain case); `degrade` limits its bandwidth (`tc tbf`, queueing delay up to
//! a bound) and drops a share of its packets at random (nftables). This kernel has no `netem`.
//! Everything is removed when the value is dropped.

use std::net::Ipv4Addr;
use std::process::Command;

/// Runs `ip`/`tc` and panics with its stderr if it fails (setup errors are test errors).
pub fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} {}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command and ignores its outcome (teardown of what may already be gone).
fn run_quietly(program: &str, args: &[&str]) {
    let _ = Command::new(program).args(args).output();
}

/// Why this machine cannot run the network tests, if it cannot: they need root (network
/// namespaces, bridges) and the `ip` and `tc` tools.
pub fn unavailable_reason() -> Option<String> {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for network namespaces".into());
    }
    for (tool, version_flag) in [("ip", "-V"), ("tc", "-V"), ("nft", "--version")] {
        let found = Command::new(tool)
            .arg(version_flag)
            .output()
            .is_ok_and(|out| out.status.success());
        if !found {
            return Some(format!("needs the `{tool}` tool (iproute2, nftables)"));
        }
    }
    None
}

pub struct Network {
    /// Unique per test process: names of the bridge, namespaces and links, and the subnet.
    tag: u32,
    subnet: [u8; 2],
    nodes: u8,
}

impl Network {
    /// Creates the bridge and `nodes` namespaces (node ids 1..=nodes).
    pub fn create(nodes: u8) -> Network {
        assert!((1..=200).contains(&nodes), "1..=200 nodes");
        // Unique per network on this machine: the process id, and a count for tests that share
        // a process (`cargo test` runs them as threads).
        static CREATED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let count = CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = (std::process::id() % 10_000) * 10 + count % 10;
        // 10.213-222.x.0/24, away from common private ranges.
        let subnet = [213 + (tag % 10) as u8, ((tag / 10) % 250) as u8];
        let net = Network { tag, subnet, nodes };
        net.teardown(); // a previous process with the same pid may have left its network
        let bridge = net.bridge();
        run("ip", &["link", "add", &bridge, "type", "bridge"]);
        for address in [net.bridge_ip(), net.zookeeper_ip()] {
            run(
                "ip",
                &["addr", "add", &format!("{address}/24"), "dev", &bridge],
            );
        }
        run("ip", &["link", "set", &bridge, "up"]);
        for node in 1..=nodes {
            let ns = net.namespace(node);
            let host_side = net.host_link(node);
            let peer = format!("sp{tag}n{node}");
            run("ip", &["netns", "add", &ns]);
            run(
                "ip",
                &[
                    "link", "add", &host_side, "type", "veth", "peer", "name", &peer,
                ],
            );
            run("ip", &["link", "set", &peer, "netns", &ns]);
            run("ip", &["link", "set", &host_side, "master", &bridge]);
            run("ip", &["link", "set", &host_side, "up"]);
            let in_ns = |args: &[&str]| {
                let mut full = vec!["netns", "exec", ns.as_str(), "ip"];
                full.extend_from_slice(args);
                run("ip", &full);
            };
            in_ns(&["link", "set", &peer, "name", "eth0"]);
            in_ns(&[
                "addr",
                "add",
                &format!("{}/24", net.node_ip(node)),
                "dev",
                "eth0",
            ]);
            in_ns(&["link", "set", "eth0", "up"]);
            in_ns(&["link", "set", "lo", "up"]);
            net.nft(
                node,
                &[
                    "add table inet nemesis",
                    "add chain inet nemesis out { type filter hook output priority 0; }",
                    "add chain inet nemesis in { type filter hook input priority 0; }",
                ],
            );
        }
        net
    }

    /// Runs nftables commands in `node`'s namespace.
    fn nft(&self, node: u8, commands: &[&str]) {
        let ns = self.namespace(node);
        for command in commands {
            let mut args = vec!["netns", "exec", ns.as_str(), "nft"];
            args.extend(command.split(' '));
            run("ip", &args);
        }
    }

    fn bridge(&self) -> String {
        format!("sbr{}", self.tag)
    }

    /// The network namespace of `node`.
    pub fn namespace(&self, node: u8) -> String {
        format!("strom-{}-n{node}", self.tag)
    }

    /// The bridge-side end of `node`'s veth pair (what `isolate` takes down).
    fn host_link(&self, node: u8) -> String {
        format!("sh{}n{node}", self.tag)
    }

    /// The address of the test process and the clients on the bridge.
    pub fn bridge_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet[0], self.subnet[1], 254)
    }

    /// ZooKeeper's address (also on the bridge, apart from the clients' so a broker can be cut
    /// from one and not the other).
    pub fn zookeeper_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet[0], self.subnet[1], 253)
    }

    pub fn node_ip(&self, node: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet[0], self.subnet[1], node)
    }

    /// Cuts `node` off from everyone (its link to the bridge goes down).
    pub fn isolate(&self, node: u8) {
        run("ip", &["link", "set", &self.host_link(node), "down"]);
    }

    /// Undoes [`Self::isolate`].
    pub fn reconnect(&self, node: u8) {
        run("ip", &["link", "set", &self.host_link(node), "up"]);
    }

    /// Drops `node`'s packets to and from ZooKeeper and the other brokers; clients still reach
    /// it. A leader cut off like this must not go on acknowledging `acks=all` writes.
    pub fn cut_from_cluster(&self, node: u8) {
        let mut peers = vec![self.zookeeper_ip()];
        peers.extend(
            (1..=self.nodes)
                .filter(|&n| n != node)
                .map(|n| self.node_ip(n)),
        );
        let set = peers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let out_rule = format!("add rule inet nemesis out ip daddr {{ {set} }} drop");
        let in_rule = format!("add rule inet nemesis in ip saddr {{ {set} }} drop");
        self.nft(node, &[&out_rule, &in_rule]);
    }

    /// Limits `node`'s outgoing bandwidth to `rate_kbit` (packets queue for up to
    /// `queue_delay_ms`, then drop) and drops `loss_percent` of its packets at random, both ways.
    pub fn degrade(&self, node: u8, rate_kbit: u32, queue_delay_ms: u32, loss_percent: u32) {
        let ns = self.namespace(node);
        let rate = format!("{rate_kbit}kbit");
        let latency = format!("{queue_delay_ms}ms");
        run(
            "ip",
            &[
                "netns", "exec", &ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf",
                "rate", &rate, "burst", "32kbit", "latency", &latency,
            ],
        );
        let out_rule =
            format!("add rule inet nemesis out numgen random mod 100 < {loss_percent} drop");
        let in_rule =
            format!("add rule inet nemesis in numgen random mod 100 < {loss_percent} drop");
        self.nft(node, &[&out_rule, &in_rule]);
    }

    /// Undoes [`Self::degrade`] and [`Self::cut_from_cluster`].
    pub fn restore(&self, node: u8) {
        let ns = self.namespace(node);
        run_quietly(
            "ip",
            &[
                "netns", "exec", &ns, "tc", "qdisc", "del", "dev", "eth0", "root",
            ],
        );
        self.nft(
            node,
            &[
                "flush chain inet nemesis out",
                "flush chain inet nemesis in",
            ],
        );
    }

    fn teardown(&self) {
        for node in 1..=self.nodes {
            // Deleting the namespace destroys the veth end inside it, and with it the pair.
            run_quietly("ip", &["netns", "del", &self.namespace(node)]);
            run_quietly("ip", &["link", "del", &self.host_link(node)]);
        }
        run_quietly("ip", &["link", "del", &self.bridge()]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.teardown();
    }
}
