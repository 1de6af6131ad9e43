//! The coordination contract: the same test bodies run against the embedded
//! store and a real ZooKeeper (Debian's, started per test by
//! `strom_tools::zookeeper_process`), so the broker can rely on one behaviour
//! whichever backend it has. ZooKeeper-only behaviour (chroot, connect
//! timeout, session expiry, reconnect) is tested at the end.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_server::coordination::{
    Coordination, CoordinationError, CoordinationStore, MultiOp, NodeKind, SessionEvent,
    StoreLimits, TreeEvent, TreeEventKind, TreeWatch, ZooKeeperSettings,
};
use strom_tools::zookeeper_process::{four_letter, ZooKeeperProcess};
use tempfile::TempDir;

/// Bound on waiting for one watch or session event; far above the normal
/// milliseconds, it only turns a lost event into a failure instead of a hang.
const EVENT_WAIT_MS: u64 = 20_000;

/// A short ZooKeeper session (the test server's minimum is 2 ticks = 1 s), so
/// expiry tests take seconds.
const SHORT_SESSION_TIMEOUT_MS: u64 = 2_000;

/// Session timeout for everything else: long enough that a busy machine
/// never expires a session by accident.
const SESSION_TIMEOUT_MS: u64 = 30_000;

/// Bound on connecting to the local test server.
const CONNECTION_TIMEOUT_MS: u64 = 15_000;

/// One backend under test. Each client gets its own session.
enum Fixture {
    Embedded(Arc<CoordinationStore>),
    ZooKeeper {
        server: ZooKeeperProcess,
        _dir: TempDir,
        /// Every test client is rooted here, which the contract tests also
        /// prove is created when missing.
        chroot: &'static str,
    },
}

impl Fixture {
    fn embedded() -> Self {
        Fixture::Embedded(Arc::new(CoordinationStore::in_memory(
            StoreLimits::default(),
        )))
    }

    fn zookeeper() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = ZooKeeperProcess::start(dir.path(), 0).expect("ZooKeeper starts");
        Fixture::ZooKeeper {
            server,
            _dir: dir,
            chroot: "/strom/contract",
        }
    }

    fn settings(&self, session_timeout_ms: u64) -> ZooKeeperSettings {
        match self {
            Fixture::ZooKeeper { server, chroot, .. } => ZooKeeperSettings {
                connect: format!("{}{chroot}", server.connect_string()),
                session_timeout_ms,
                connection_timeout_ms: CONNECTION_TIMEOUT_MS,
            },
            Fixture::Embedded(_) => unreachable!("embedded fixture has no ZooKeeper settings"),
        }
    }

    async fn client(&self) -> Coordination {
        match self {
            Fixture::Embedded(store) => Coordination::embedded(Arc::clone(store)).expect("session"),
            Fixture::ZooKeeper { .. } => {
                Coordination::connect_zookeeper(&self.settings(SESSION_TIMEOUT_MS))
                    .await
                    .expect("connect to ZooKeeper")
            }
        }
    }
}

fn run<F: Future<Output = ()>>(test: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(test);
}

/// Generates `embedded::NAME` and `zookeeper::NAME` tests from `async fn NAME(&Fixture)`.
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[test]
            fn $name() {
                let fixture = super::Fixture::embedded();
                super::run(super::$name(&fixture));
            })*
        }
        mod zookeeper {
            $(#[test]
            fn $name() {
                let fixture = super::Fixture::zookeeper();
                super::run(super::$name(&fixture));
            })*
        }
    };
}

contract_tests!(
    nodes_have_versions_and_errors_have_kinds,
    ensure_path_and_delete_recursive,
    ephemeral_nodes_go_when_the_session_closes,
    multi_is_all_or_nothing,
    tree_watch_sees_changes_below_and_nothing_outside,
    a_deposed_controller_cannot_write,
);

fn data(text: &'static str) -> Bytes {
    Bytes::from_static(text.as_bytes())
}

async fn next_event(watch: &mut TreeWatch) -> Option<TreeEvent> {
    tokio::time::timeout(Duration::from_millis(EVENT_WAIT_MS), watch.next())
        .await
        .expect("a tree event within the wait bound")
}

fn event(kind: TreeEventKind, path: &str) -> Option<TreeEvent> {
    Some(TreeEvent {
        kind,
        path: path.to_owned(),
    })
}

async fn nodes_have_versions_and_errors_have_kinds(fixture: &Fixture) {
    let client = fixture.client().await;
    let stat = client
        .create("/a", data("one"), NodeKind::Persistent)
        .await
        .expect("created");
    assert_eq!((stat.version, stat.ephemeral_owner), (0, None));
    let (bytes, stat) = client.get("/a").await.expect("exists");
    assert_eq!((bytes, stat.version, stat.data_length), (data("one"), 0, 3));

    let stat = client.set("/a", data("two"), Some(0)).await.expect("cas");
    assert_eq!(stat.version, 1);
    assert!(stat.modified_txid > stat.created_txid);
    assert!(matches!(
        client.set("/a", data("three"), Some(0)).await,
        Err(CoordinationError::BadVersion { ref path, expected: 0, .. }) if path == "/a"
    ));
    assert_eq!(
        client
            .set("/a", data("four"), None)
            .await
            .expect("any")
            .version,
        2
    );
    assert!(matches!(
        client.create("/a", Bytes::new(), NodeKind::Persistent).await,
        Err(CoordinationError::NodeExists { ref path }) if path == "/a"
    ));
    assert!(matches!(
        client.create("/none/b", Bytes::new(), NodeKind::Persistent).await,
        Err(CoordinationError::NoParent { ref parent, .. }) if parent == "/none"
    ));
    assert!(matches!(
        client.get("/none").await,
        Err(CoordinationError::NoNode { ref path }) if path == "/none"
    ));
    assert!(matches!(
        client.set("/none", Bytes::new(), None).await,
        Err(CoordinationError::NoNode { .. })
    ));
    assert!(matches!(
        client.delete("/none", None).await,
        Err(CoordinationError::NoNode { .. })
    ));
    assert!(matches!(
        client.children("/none").await,
        Err(CoordinationError::NoNode { .. })
    ));
    assert_eq!(client.exists("/none").await.expect("valid"), None);
    assert!(matches!(
        client.get("relative").await,
        Err(CoordinationError::InvalidPath { .. })
    ));

    client
        .create("/a/y", Bytes::new(), NodeKind::Persistent)
        .await
        .expect("created");
    client
        .create("/a/x", Bytes::new(), NodeKind::Persistent)
        .await
        .expect("created");
    assert_eq!(client.children("/a").await.expect("exists"), ["x", "y"]);
    assert_eq!(
        client
            .exists("/a")
            .await
            .expect("valid")
            .map(|stat| stat.num_children),
        Some(2)
    );
    assert!(matches!(
        client.delete("/a", None).await,
        Err(CoordinationError::NotEmpty { ref path, .. }) if path == "/a"
    ));
    client.delete("/a/x", None).await.expect("deleted");
    client.delete("/a/y", Some(0)).await.expect("deleted");
    assert!(matches!(
        client.delete("/a", Some(1)).await,
        Err(CoordinationError::BadVersion { .. })
    ));
    client.delete("/a", Some(2)).await.expect("deleted");
    assert_eq!(client.exists("/a").await.expect("valid"), None);
}

async fn ensure_path_and_delete_recursive(fixture: &Fixture) {
    let client = fixture.client().await;
    client.ensure_path("/p/q/r").await.expect("created");
    client.ensure_path("/p/q").await.expect("existing is fine");
    client
        .set("/p/q", data("kept"), None)
        .await
        .expect("exists");
    client.ensure_path("/p/q/s").await.expect("created");
    assert_eq!(client.get("/p/q").await.expect("exists").0, data("kept"));
    assert_eq!(client.children("/p/q").await.expect("exists"), ["r", "s"]);
    client
        .create("/p/q/r/leaf", Bytes::new(), NodeKind::Ephemeral)
        .await
        .expect("created");

    client.delete_recursive("/p").await.expect("deleted");
    assert_eq!(client.exists("/p").await.expect("valid"), None);
    client
        .delete_recursive("/p")
        .await
        .expect("a missing path is not an error");
}

async fn ephemeral_nodes_go_when_the_session_closes(fixture: &Fixture) {
    let owner = fixture.client().await;
    let observer = fixture.client().await;
    assert_ne!(owner.session_id(), observer.session_id());
    owner.ensure_path("/brokers/ids").await.expect("created");
    let stat = owner
        .create("/brokers/ids/0", data("host:9092"), NodeKind::Ephemeral)
        .await
        .expect("created");
    assert_eq!(
        stat.ephemeral_owner.map(|session| session.0 as i64),
        Some(owner.session_id())
    );
    assert!(matches!(
        owner
            .create("/brokers/ids/0/x", Bytes::new(), NodeKind::Persistent)
            .await,
        Err(CoordinationError::NoChildrenForEphemerals { .. })
    ));
    let seen = observer
        .exists("/brokers/ids/0")
        .await
        .expect("valid")
        .expect("visible to other sessions");
    assert_eq!(
        seen.ephemeral_owner.map(|session| session.0 as i64),
        Some(owner.session_id())
    );

    let mut owner_events = owner.session_events();
    let mut watch = observer.watch_tree("/brokers/ids").await.expect("watch");
    let mut owner_watch = owner.watch_tree("/brokers").await.expect("watch");
    owner.close().await;
    assert_eq!(
        tokio::time::timeout(Duration::from_millis(EVENT_WAIT_MS), owner_events.next())
            .await
            .expect("session event"),
        Some(SessionEvent::Closed)
    );
    assert_eq!(owner_events.next().await, None, "Closed is terminal");
    assert_eq!(
        observer.exists("/brokers/ids/0").await.expect("valid"),
        None
    );
    assert_eq!(
        next_event(&mut watch).await,
        event(TreeEventKind::Deleted, "/brokers/ids/0")
    );
    assert!(matches!(
        owner.get("/brokers").await,
        Err(CoordinationError::Closed)
    ));
    // A watch of the closed session ends: Resync (whatever it had queued may
    // be dropped), then None.
    let mut last = None;
    while let Some(event) = next_event(&mut owner_watch).await {
        last = Some(event);
    }
    assert_eq!(last, event(TreeEventKind::Resync, "/brokers"));
    owner.close().await;
}

async fn multi_is_all_or_nothing(fixture: &Fixture) {
    let client = fixture.client().await;
    client
        .create("/m", data("v0"), NodeKind::Persistent)
        .await
        .expect("created");

    // The Check sees the Set before it (version 1), so it fails, and the
    // create and set before it are undone.
    let failing = vec![
        MultiOp::Create {
            path: "/m/child".to_owned(),
            data: data("c"),
            kind: NodeKind::Persistent,
        },
        MultiOp::Set {
            path: "/m".to_owned(),
            data: data("v1"),
            version: Some(0),
        },
        MultiOp::Check {
            path: "/m".to_owned(),
            version: 0,
        },
    ];
    assert!(matches!(
        client.multi(failing).await,
        Err(CoordinationError::BadVersion { ref path, expected: 0, .. }) if path == "/m"
    ));
    assert_eq!(client.exists("/m/child").await.expect("valid"), None);
    let (bytes, stat) = client.get("/m").await.expect("exists");
    assert_eq!((bytes, stat.version), (data("v0"), 0));

    assert!(matches!(
        client
            .multi(vec![
                MultiOp::Create {
                    path: "/m/a".to_owned(),
                    data: Bytes::new(),
                    kind: NodeKind::Persistent,
                },
                MultiOp::Create {
                    path: "/m".to_owned(),
                    data: Bytes::new(),
                    kind: NodeKind::Persistent,
                },
            ])
            .await,
        Err(CoordinationError::NodeExists { ref path }) if path == "/m"
    ));
    assert!(matches!(
        client
            .multi(vec![MultiOp::Create {
                path: "/nothing/a".to_owned(),
                data: Bytes::new(),
                kind: NodeKind::Persistent,
            }])
            .await,
        Err(CoordinationError::NoParent { .. })
    ));
    assert!(matches!(
        client
            .multi(vec![MultiOp::Delete {
                path: "/nothing".to_owned(),
                version: None,
            }])
            .await,
        Err(CoordinationError::NoNode { ref path }) if path == "/nothing"
    ));
    assert_eq!(
        client.children("/m").await.expect("exists"),
        Vec::<String>::new()
    );

    client
        .multi(vec![
            MultiOp::Check {
                path: "/m".to_owned(),
                version: 0,
            },
            MultiOp::Create {
                path: "/m/a".to_owned(),
                data: data("a"),
                kind: NodeKind::Persistent,
            },
            MultiOp::Create {
                path: "/m/a/b".to_owned(),
                data: data("b"),
                kind: NodeKind::Ephemeral,
            },
            MultiOp::Set {
                path: "/m".to_owned(),
                data: data("v1"),
                version: Some(0),
            },
            MultiOp::Delete {
                path: "/m/a/b".to_owned(),
                version: Some(0),
            },
        ])
        .await
        .expect("all applied");
    assert_eq!(client.children("/m").await.expect("exists"), ["a"]);
    assert_eq!(
        client.children("/m/a").await.expect("exists"),
        Vec::<String>::new()
    );
    let (bytes, stat) = client.get("/m").await.expect("exists");
    assert_eq!((bytes, stat.version), (data("v1"), 1));
    client
        .multi(Vec::new())
        .await
        .expect("an empty multi is a no-op");
}

async fn tree_watch_sees_changes_below_and_nothing_outside(fixture: &Fixture) {
    let client = fixture.client().await;
    let writer = fixture.client().await;
    client.ensure_path("/other").await.expect("created");
    let mut watch = client.watch_tree("/w").await.expect("watch a missing path");
    assert_eq!(watch.path(), "/w");

    writer
        .create("/w", Bytes::new(), NodeKind::Persistent)
        .await
        .expect("created");
    writer
        .create("/w/a", data("1"), NodeKind::Persistent)
        .await
        .expect("created");
    writer.set("/w/a", data("2"), None).await.expect("set");
    writer
        .create("/other/x", Bytes::new(), NodeKind::Persistent)
        .await
        .expect("outside");
    writer
        .create("/wx", Bytes::new(), NodeKind::Persistent)
        .await
        .expect("a sibling sharing the prefix is outside");
    writer
        .create("/w/a/b", Bytes::new(), NodeKind::Ephemeral)
        .await
        .expect("created");
    writer.delete("/w/a/b", None).await.expect("deleted");
    writer.set("/w", data("x"), None).await.expect("set");
    writer.delete("/w/a", None).await.expect("deleted");

    for expected in [
        event(TreeEventKind::Created, "/w"),
        event(TreeEventKind::Created, "/w/a"),
        event(TreeEventKind::DataChanged, "/w/a"),
        event(TreeEventKind::Created, "/w/a/b"),
        event(TreeEventKind::Deleted, "/w/a/b"),
        event(TreeEventKind::DataChanged, "/w"),
        event(TreeEventKind::Deleted, "/w/a"),
    ] {
        assert_eq!(next_event(&mut watch).await, expected);
    }
    assert_eq!(watch.try_next(), None, "nothing from outside /w");

    // After the watch is dropped, changes are not queued anywhere.
    drop(watch);
    writer
        .create("/w/after", Bytes::new(), NodeKind::Persistent)
        .await
        .expect("created");
}

async fn a_deposed_controller_cannot_write(fixture: &Fixture) {
    let controller_a = fixture.client().await;
    let controller_b = fixture.client().await;
    controller_a
        .create("/controller_epoch", data("1"), NodeKind::Persistent)
        .await
        .expect("created");
    controller_a
        .create("/state", data("written by epoch 1"), NodeKind::Persistent)
        .await
        .expect("created");
    let (_, stat) = controller_a.get("/controller_epoch").await.expect("exists");
    let held_version = stat.version;

    // B becomes controller: it bumps the epoch with a conditional set.
    controller_b
        .set("/controller_epoch", data("2"), Some(held_version))
        .await
        .expect("B wins the epoch");

    // A, not knowing, writes under its old epoch: refused as a whole.
    let fenced = controller_a
        .multi(vec![
            MultiOp::Check {
                path: "/controller_epoch".to_owned(),
                version: held_version,
            },
            MultiOp::Set {
                path: "/state".to_owned(),
                data: data("stale write by epoch 1"),
                version: None,
            },
        ])
        .await;
    assert!(matches!(
        fenced,
        Err(CoordinationError::BadVersion { ref path, .. }) if path == "/controller_epoch"
    ));
    assert_eq!(
        controller_b.get("/state").await.expect("exists").0,
        data("written by epoch 1")
    );

    // B's write under the current epoch goes through.
    let current = controller_b
        .get("/controller_epoch")
        .await
        .expect("exists")
        .1
        .version;
    controller_b
        .multi(vec![
            MultiOp::Check {
                path: "/controller_epoch".to_owned(),
                version: current,
            },
            MultiOp::Set {
                path: "/state".to_owned(),
                data: data("written by epoch 2"),
                version: None,
            },
        ])
        .await
        .expect("current controller writes");
}

// ---- Embedded only ----

#[test]
fn embedded_tree_watch_overflow_delivers_one_resync() {
    run(async {
        let store = Arc::new(CoordinationStore::in_memory(StoreLimits::default()));
        let client = Coordination::embedded(Arc::clone(&store)).expect("session");
        let mut watch = store.watch_tree_with_capacity("/", 4).expect("watch");
        for index in 0..10 {
            client
                .create(&format!("/n{index}"), Bytes::new(), NodeKind::Persistent)
                .await
                .expect("created");
        }
        assert_eq!(
            next_event(&mut watch).await,
            event(TreeEventKind::Resync, "/")
        );
        assert_eq!(watch.try_next(), None, "the rest was dropped");
        client.delete("/n0", None).await.expect("deleted");
        assert_eq!(
            next_event(&mut watch).await,
            event(TreeEventKind::Deleted, "/n0"),
            "delivery resumes after the Resync was taken"
        );
    });
}

// ---- ZooKeeper only ----

fn zookeeper_settings(connect: String, session_timeout_ms: u64) -> ZooKeeperSettings {
    ZooKeeperSettings {
        connect,
        session_timeout_ms,
        connection_timeout_ms: CONNECTION_TIMEOUT_MS,
    }
}

#[test]
fn zookeeper_chroot_is_created_and_isolates_paths() {
    let fixture = Fixture::zookeeper();
    let Fixture::ZooKeeper { server, .. } = &fixture else {
        unreachable!("a ZooKeeper fixture")
    };
    let root_connect = server.connect_string();
    run(async {
        let first = Coordination::connect_zookeeper(&zookeeper_settings(
            format!("{root_connect}/clusters/one"),
            SESSION_TIMEOUT_MS,
        ))
        .await
        .expect("connect creates /clusters/one");
        let second = Coordination::connect_zookeeper(&zookeeper_settings(
            format!("{root_connect}/clusters/two"),
            SESSION_TIMEOUT_MS,
        ))
        .await
        .expect("connect creates /clusters/two");
        let root = Coordination::connect_zookeeper(&zookeeper_settings(
            root_connect.clone(),
            SESSION_TIMEOUT_MS,
        ))
        .await
        .expect("connect without chroot");

        assert_eq!(
            root.children("/clusters").await.expect("created"),
            ["one", "two"]
        );
        first
            .create("/x", data("one's"), NodeKind::Persistent)
            .await
            .expect("created");
        assert_eq!(second.exists("/x").await.expect("valid"), None);
        assert_eq!(
            root.get("/clusters/one/x")
                .await
                .expect("under the chroot")
                .0,
            data("one's")
        );
        let mut watch = first.watch_tree("/").await.expect("watch");
        root.set("/clusters/one/x", data("changed"), None)
            .await
            .expect("set");
        assert_eq!(
            next_event(&mut watch).await,
            event(TreeEventKind::DataChanged, "/x"),
            "watch paths are relative to the chroot"
        );
        // Connecting again to an existing chroot is fine.
        Coordination::connect_zookeeper(&zookeeper_settings(
            format!("{root_connect}/clusters/one"),
            SESSION_TIMEOUT_MS,
        ))
        .await
        .expect("existing chroot");
    });
}

#[test]
fn zookeeper_connect_to_nothing_fails_within_the_connection_timeout() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    run(async {
        let settings = ZooKeeperSettings {
            connect: format!("127.0.0.1:{port}"),
            session_timeout_ms: 6_000,
            connection_timeout_ms: 1_000,
        };
        let started = Instant::now();
        let result = tokio::time::timeout(
            Duration::from_millis(EVENT_WAIT_MS),
            Coordination::connect_zookeeper(&settings),
        )
        .await
        .expect("connect gives up by itself");
        let error = result.expect_err("nothing listens");
        assert!(
            matches!(
                error,
                CoordinationError::Timeout {
                    timeout_ms: 1_000,
                    ..
                }
            ),
            "{error}"
        );
        assert!(
            error.to_string().contains(&format!("127.0.0.1:{port}")),
            "{error}"
        );
        // Not a timing assertion on speed: a bound far above the timeout, so
        // a connect that ignores it is caught.
        assert!(started.elapsed() < Duration::from_millis(EVENT_WAIT_MS));

        let bad = ZooKeeperSettings {
            connect: "127.0.0.1:0/chroot".to_owned(),
            ..settings
        };
        assert!(matches!(
            Coordination::connect_zookeeper(&bad).await,
            Err(CoordinationError::InvalidConnectString { .. })
        ));
    });
}

/// The server dies for longer than the session timeout: the client reports
/// Disconnected then Expired, its tree watch says Resync and ends, its calls
/// fail with SessionExpired, and once the server is back its ephemeral node
/// is gone (the server expires the session too).
#[test]
fn zookeeper_session_expiry_removes_ephemeral_nodes() {
    let mut fixture = Fixture::zookeeper();
    let short = fixture.settings(SHORT_SESSION_TIMEOUT_MS);
    run(async {
        let owner = Coordination::connect_zookeeper(&short)
            .await
            .expect("connect");
        owner
            .create("/leader", data("me"), NodeKind::Ephemeral)
            .await
            .expect("created");
        let mut events = owner.session_events();
        let mut watch = owner.watch_tree("/").await.expect("watch");

        let Fixture::ZooKeeper { server, .. } = &mut fixture else {
            unreachable!("a ZooKeeper fixture")
        };
        server.kill();
        let mut seen = Vec::new();
        while let Some(event) =
            tokio::time::timeout(Duration::from_millis(EVENT_WAIT_MS), events.next())
                .await
                .expect("session events while ZooKeeper is down")
        {
            seen.push(event);
        }
        assert_eq!(seen, [SessionEvent::Disconnected, SessionEvent::Expired]);
        assert_eq!(
            next_event(&mut watch).await,
            event(TreeEventKind::Resync, "/")
        );
        assert_eq!(next_event(&mut watch).await, None, "the watch ended");
        assert!(matches!(
            owner.get("/leader").await,
            Err(CoordinationError::SessionExpired)
        ));

        server.restart().expect("ZooKeeper restarts");
        let observer = Coordination::connect_zookeeper(&fixture.settings(SESSION_TIMEOUT_MS))
            .await
            .expect("connect");
        // The restarted server expires the dead session one timeout later.
        let deadline = Instant::now() + Duration::from_millis(EVENT_WAIT_MS);
        while observer.exists("/leader").await.expect("valid").is_some() {
            assert!(
                Instant::now() < deadline,
                "the expired session's node stays"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// The server restarts within the session timeout: the session survives
/// (ephemeral node kept), the client reports Disconnected then Connected, and
/// the tree watch delivers a Resync and then new changes again.
#[test]
fn zookeeper_reconnect_keeps_the_session_and_resyncs_watches() {
    let mut fixture = Fixture::zookeeper();
    run(async {
        let client = fixture.client().await;
        client
            .create("/alive", Bytes::new(), NodeKind::Ephemeral)
            .await
            .expect("created");
        let mut events = client.session_events();
        let mut watch = client.watch_tree("/").await.expect("watch");

        let Fixture::ZooKeeper { server, .. } = &mut fixture else {
            unreachable!("a ZooKeeper fixture")
        };
        server.kill();
        let wait = Duration::from_millis(EVENT_WAIT_MS);
        assert_eq!(
            tokio::time::timeout(wait, events.next())
                .await
                .expect("event"),
            Some(SessionEvent::Disconnected)
        );
        server.restart().expect("ZooKeeper restarts");
        assert_eq!(
            tokio::time::timeout(wait, events.next())
                .await
                .expect("event"),
            Some(SessionEvent::Connected)
        );
        assert_eq!(
            next_event(&mut watch).await,
            event(TreeEventKind::Resync, "/")
        );
        assert!(client.exists("/alive").await.expect("valid").is_some());
        client
            .create("/after", Bytes::new(), NodeKind::Persistent)
            .await
            .expect("created");
        assert_eq!(
            next_event(&mut watch).await,
            event(TreeEventKind::Created, "/after")
        );
    });
}

#[test]
fn zookeeper_process_stops_and_drop_kills() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ZooKeeperProcess::start(dir.path(), 0).expect("starts");
    assert_eq!(
        server.connect_string(),
        format!("127.0.0.1:{}", server.port())
    );
    assert_eq!(four_letter(server.port(), "ruok").expect("answers"), "imok");
    let port = server.port();
    server.stop().expect("stops");
    assert!(
        four_letter(port, "ruok").is_err(),
        "nothing listens after stop"
    );

    // Started again on the same directory; dropping the handle kills it.
    let server = ZooKeeperProcess::start(dir.path(), 0).expect("starts again");
    let pid = server.pid().expect("running");
    drop(server);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the process was killed and reaped"
    );
}

/// The broker's shape: the session lives on a control-plane thread's runtime
/// and other threads, with runtimes of their own, use the client.
#[test]
fn zookeeper_client_is_usable_from_another_runtime() {
    let fixture = Fixture::zookeeper();
    let settings = fixture.settings(SESSION_TIMEOUT_MS);
    let (client_sender, client_receiver) = std::sync::mpsc::channel();
    let (stop_sender, stop_receiver) = tokio::sync::oneshot::channel::<()>();
    let control_plane = std::thread::spawn(move || {
        run(async move {
            let client = Coordination::connect_zookeeper(&settings)
                .await
                .expect("connect");
            client_sender.send(client).expect("hand over the client");
            // Keep the session's runtime running until the test is done.
            let _ = stop_receiver.await;
        })
    });
    let client = client_receiver.recv().expect("a client");
    run(async {
        let mut watch = client.watch_tree("/x").await.expect("watch");
        client
            .create("/x", data("1"), NodeKind::Ephemeral)
            .await
            .expect("created");
        assert_eq!(
            next_event(&mut watch).await,
            event(TreeEventKind::Created, "/x")
        );
        client.close().await;
        let mut events = client.session_events();
        assert_eq!(events.next().await, Some(SessionEvent::Closed));
    });
    stop_sender.send(()).expect("control plane still running");
    control_plane.join().expect("control plane thread");
}
