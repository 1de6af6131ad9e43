//! Resource limits under load, against a real broker process: thousands of idle connections,
//! byte-at-a-time senders and clients that send fetches but never read the responses, while a
//! normal client still produces and consumes; connections past `max.connections` are closed;
//! idle ones are closed after `connections.max.idle.ms`; and the broker's memory (VmRSS) stays
//! under a bound.
//!
//! The RSS bound: the broker's RSS before the load plus [`RSS_PER_CONNECTION_BOUND_BYTES`] per
//! connection held open. A connection costs the broker its tasks and a read buffer that starts
//! at 4 KiB (network/connection.rs), so about 10 KiB; 64 KiB per connection leaves room for
//! allocator slack while still failing if every connection kept a 64 KiB read buffer touched,
//! or if the non-reading clients made the broker buffer their responses (each has 64 fetches of
//! up to 4 MiB in flight: buffered, they alone would be ~2.5 GiB).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::cluster::create_topic;
use common::kafka_wire::{request_frame, Connection};
use common::{unique_topic, Broker, BrokerOpts};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_engine::batch::build::build_batch;

const IDLE_CONNECTIONS: usize = 2000;
const SLOW_SENDERS: usize = 20;
const NON_READERS: usize = 10;
/// The normal client's one connection.
const NORMAL_CLIENTS: usize = 1;
const MAX_CONNECTIONS: usize = IDLE_CONNECTIONS + SLOW_SENDERS + NON_READERS + NORMAL_CLIENTS;
/// Long enough to open every connection and check the limits before it passes.
const IDLE_MS: u64 = 10_000;
/// Fetch requests each non-reading client sends (more than the 64 a connection has in flight).
const FETCHES_PER_NON_READER: usize = 100;
/// See the module comment.
const RSS_PER_CONNECTION_BOUND_BYTES: u64 = 64 << 10;
/// How long a connection past the limit may stay open before the broker closes it.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(10);

fn raise_fd_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur >= wanted,
        "this test needs {wanted} file descriptors; the hard limit is {}",
        limit.rlim_max
    );
}

fn vm_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|value| value.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

/// Whether the broker has closed `stream` (end of stream or reset); false while it is open.
fn is_closed(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    let closed = match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) if error.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    stream.set_nonblocking(false).expect("blocking");
    closed
}

fn wait_closed(stream: &TcpStream, deadline: Instant) -> bool {
    loop {
        if is_closed(stream) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fetch_request(topic: &str, max_bytes: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(max_bytes)])])
}

/// Sends one byte at a time of back-to-back ApiVersions requests on every stream, a byte per
/// stream every `pause`, draining (and discarding) responses, until `stop` is set.
fn slow_senders(
    streams: Vec<TcpStream>,
    pause: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<TcpStream> {
    let frame = request_frame(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default());
    let mut at = 0usize;
    let mut sink = vec![0u8; 64 << 10];
    for stream in &streams {
        stream.set_nonblocking(true).expect("nonblocking");
    }
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        for mut stream in &streams {
            // A full send buffer would mean the broker stopped reading: keep trying.
            let _ = stream.write(&frame[at..=at]);
            while let Ok(read) = stream.read(&mut sink) {
                if read == 0 {
                    break;
                }
            }
        }
        at = (at + 1) % frame.len();
        std::thread::sleep(pause);
    }
    for stream in &streams {
        stream.set_nonblocking(false).expect("blocking");
    }
    streams
}

#[test]
fn the_broker_stays_responsive_and_bounded_under_connection_abuse() {
    // Our own sockets, the broker's (it inherits the limit), and some room.
    raise_fd_limit((MAX_CONNECTIONS as u64) * 2 + 1024);
    let broker = Broker::start(
        BrokerOpts::new()
            .set("num.shards", 2)
            .set("max.connections", MAX_CONNECTIONS)
            .set("connections.max.idle.ms", IDLE_MS)
            .set("auto.create.topics.enable", "false"),
    );
    let topic = unique_topic("limits");
    assert_eq!(
        create_topic(broker.addr(), &topic, 1, 1, &[]).expect("create topic"),
        0
    );
    let mut normal = Connection::open(&broker);
    // 4 MiB of data for the non-readers to fetch.
    for index in 0..8 {
        let batch = build_batch(0, 100, 5_000, 1_700_000_000_000 + index, -1, -1, -1);
        assert_eq!(normal.produce(&topic, 0, batch).0, 0, "seed produce");
    }
    let rss_before = vm_rss_bytes(broker.pid());

    // Clients that pipeline fetches and never read a response.
    let fetch = request_frame(ApiKey::Fetch, 12, 1, &fetch_request(&topic, 4 << 20));
    let non_readers: Vec<TcpStream> = (0..NON_READERS)
        .map(|_| {
            let mut stream = TcpStream::connect(broker.addr()).expect("connect non-reader");
            stream.set_nonblocking(true).expect("nonblocking");
            for _ in 0..FETCHES_PER_NON_READER {
                // Once the broker stops reading, our send buffer fills: stop there.
                if stream.write_all(&fetch).is_err() {
                    break;
                }
            }
            stream
        })
        .collect();

    // Byte-at-a-time senders, on a thread of their own for the rest of the test.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow: Vec<TcpStream> = (0..SLOW_SENDERS)
        .map(|_| TcpStream::connect(broker.addr()).expect("connect slow sender"))
        .collect();
    let slow_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || slow_senders(slow, Duration::from_millis(100), stop))
    };

    // Thousands of idle connections, up to the limit. Each sends one request first and reads
    // its answer: that proves the broker admitted it (the two shards accept from their own
    // queues, so without it a later connection could take an earlier one's place).
    let opening = Instant::now();
    let api_versions = request_frame(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default());
    let mut idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .map(|_| {
            let mut stream = TcpStream::connect(broker.addr()).expect("connect idle");
            stream.write_all(&api_versions).expect("send ApiVersions");
            stream
        })
        .collect();
    for stream in &mut idle {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).expect("admitted: answered");
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        stream.read_exact(&mut body).expect("response body");
    }
    let opened_in = opening.elapsed();
    eprintln!("opened {IDLE_CONNECTIONS} idle connections in {opened_in:?}");

    // Past the limit: accepted by the kernel, then closed by the broker.
    let refusal_deadline = Instant::now() + REFUSAL_DEADLINE;
    let over: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(broker.addr()).expect("kernel accepts"))
        .collect();
    for stream in &over {
        assert!(
            wait_closed(stream, refusal_deadline),
            "a connection past max.connections={MAX_CONNECTIONS} is closed"
        );
    }
    assert!(
        opening.elapsed() < Duration::from_millis(IDLE_MS / 2),
        "the checks below need the idle connections younger than the idle limit \
         (opening took {opened_in:?})"
    );
    let closed_early = idle.iter().filter(|stream| is_closed(stream)).count();
    assert_eq!(
        closed_early, 0,
        "idle connections are kept until the idle limit"
    );

    // Meanwhile, a normal client produces and consumes as usual on its connection.
    let mut produced = 0;
    for index in 0..50 {
        let batch = build_batch(0, 10, 100, 1_700_000_001_000 + index, -1, -1, -1);
        let (error, base_offset) = normal.produce(&topic, 0, batch);
        assert_eq!(error, 0, "produce under load");
        assert_eq!(base_offset, 800 + index * 10);
        produced += 10;
    }
    let mut fetched_records = 0i64;
    let mut offset = 800i64;
    while fetched_records < produced {
        let mut request = fetch_request(&topic, 1 << 20);
        request.topics[0].partitions[0].fetch_offset = offset;
        let response: FetchResponse = normal.call(ApiKey::Fetch, 12, &request);
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0, "fetch under load");
        let records = partition.records.clone().unwrap_or_default();
        let ranges = strom_engine::batch::split_record_set(&records).expect("whole batches");
        for range in ranges {
            let header =
                strom_engine::batch::validate_stored_batch(&records[range]).expect("a valid batch");
            if header.base_offset >= offset {
                fetched_records += i64::from(header.record_count);
                offset = header.next_offset();
            }
        }
    }
    assert_eq!(fetched_records, produced);

    let rss_loaded = vm_rss_bytes(broker.pid());
    let bound = rss_before + MAX_CONNECTIONS as u64 * RSS_PER_CONNECTION_BOUND_BYTES;
    eprintln!(
        "VmRSS: {} KiB before the load, {} KiB with {MAX_CONNECTIONS} connections \
         ({} B per connection); bound {} KiB",
        rss_before >> 10,
        rss_loaded >> 10,
        rss_loaded.saturating_sub(rss_before) / MAX_CONNECTIONS as u64,
        bound >> 10
    );
    assert!(
        rss_loaded < bound,
        "broker RSS {rss_loaded} B is over the bound {bound} B"
    );

    // The idle connections are closed once the idle limit passes; the busy ones are not.
    let idle_deadline = opening + Duration::from_millis(IDLE_MS) + Duration::from_secs(20);
    let still_open = idle
        .iter()
        .filter(|stream| !wait_closed(stream, idle_deadline))
        .count();
    assert_eq!(
        still_open, 0,
        "every idle connection is closed after connections.max.idle.ms"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let slow = slow_thread.join().expect("slow sender thread");
    assert_eq!(
        slow.iter().filter(|stream| is_closed(stream)).count(),
        0,
        "a slow sender is not idle"
    );
    assert_eq!(
        non_readers
            .iter()
            .filter(|stream| is_closed(stream))
            .count(),
        0,
        "a client with requests in flight is not idle"
    );

    // The places the idle connections held are free again: a new client is served.
    let mut late = TcpStream::connect(broker.addr()).expect("connect after idle close");
    late.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    late.write_all(&request_frame(
        ApiKey::ApiVersions,
        3,
        7,
        &ApiVersionsRequest::default(),
    ))
    .expect("send");
    let mut size = [0u8; 4];
    late.read_exact(&mut size)
        .expect("a response once places are free");
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    late.read_exact(&mut body).expect("response body");
    let mut body = bytes::Bytes::from(body);
    use kafka_protocol::protocol::Decodable;
    let header = kafka_protocol::messages::ResponseHeader::decode(&mut body, 0).expect("header");
    assert_eq!(header.correlation_id, 7);
    let response = ApiVersionsResponse::decode(&mut body, 3).expect("ApiVersions response");
    assert_eq!(response.error_code, 0);
    let rss_after = vm_rss_bytes(broker.pid());
    eprintln!(
        "VmRSS after the idle connections closed: {} KiB",
        rss_after >> 10
    );
    // The non-readers' fetches are still pending: a normal client is not held up by them. (A
    // new connection: the first normal client has been idle through the wait above, so the
    // broker rightly closed it too.)
    drop(normal);
    let mut normal = Connection::open(&broker);
    let response = normal.call::<_, ApiVersionsResponse>(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    assert_eq!(response.error_code, 0);
}
