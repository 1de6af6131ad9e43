//! Malformed and hostile input on the Kafka port, written byte by byte over raw TCP: the broker
//! must drop the offending connection (as Kafka does), answer an unknown ApiVersions version with a
//! v0 UNSUPPORTED_VERSION response, and keep serving everyone else with their data intact.
//!
//! Each test: start a broker with socket.request.max.bytes = 1 MiB, produce a few messages with
//! kcat, send the bad input, check the connection's fate, then check the broker still answers
//! ApiVersions on a new connection, `kcat -L` still works and the messages read back unchanged.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::*;

const MAX_REQUEST_BYTES: i32 = 1 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const API_VERSIONS: i16 = 18;
const METADATA: i16 = 3;
const UNSUPPORTED_VERSION: i16 = 35;
const MESSAGES: usize = 20;

// ---- raw protocol helpers -----------------------------------------------------------------------

fn connect(broker: &Broker) -> TcpStream {
    let stream = TcpStream::connect(broker.addr()).expect("connect to broker");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Request header v1: api_key, api_version, correlation_id, client_id (INT16-length string).
fn header_v1(api_key: i16, api_version: i16, correlation_id: i32) -> Vec<u8> {
    let client_id = b"strom-bad-input";
    let mut h = Vec::new();
    h.extend_from_slice(&api_key.to_be_bytes());
    h.extend_from_slice(&api_version.to_be_bytes());
    h.extend_from_slice(&correlation_id.to_be_bytes());
    h.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    h.extend_from_slice(client_id);
    h
}

/// Request header v2 (flexible versions): header v1 plus an empty tagged-field section.
fn header_v2(api_key: i16, api_version: i16, correlation_id: i32) -> Vec<u8> {
    let mut h = header_v1(api_key, api_version, correlation_id);
    h.push(0);
    h
}

/// A frame: INT32 size, then the payload.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

fn read_frame(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut size = [0u8; 4];
    stream
        .read_exact(&mut size)
        .unwrap_or_else(|e| panic!("{what}: no response size from the broker: {e}"));
    let size = i32::from_be_bytes(size);
    assert!(
        (0..=MAX_REQUEST_BYTES).contains(&size),
        "{what}: implausible response size {size}"
    );
    let mut body = vec![0u8; size as usize];
    stream
        .read_exact(&mut body)
        .unwrap_or_else(|e| panic!("{what}: truncated response ({size} bytes announced): {e}"));
    body
}

/// The broker must close the connection without answering: EOF or a reset within IO_TIMEOUT.
fn expect_closed(stream: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "{what}: the broker answered ({n} bytes: {:02x?}) instead of closing the connection",
            &buf[..n]
        ),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!(
                "{what}: the broker kept the connection open for {IO_TIMEOUT:?} (it must close it)"
            )
        }
        Err(e) => panic!("{what}: unexpected read error {e}"),
    }
}

/// Writes bytes the broker may reject early: a reset while writing also counts as "closed".
fn write_lenient(stream: &mut TcpStream, bytes: &[u8]) {
    if let Err(e) = stream.write_all(bytes) {
        assert!(
            matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "write failed unexpectedly: {e}"
        );
    }
}

/// Parsed ApiVersions response with a v0 body (error_code, [api_key min max]).
struct ApiVersionsV0 {
    error_code: i16,
    ranges: Vec<(i16, i16, i16)>,
}

/// Parses a v0 ApiVersions response (header v0: correlation id only) and asserts that the bytes
/// are exactly a v0 body: no throttle time, no compact arrays, no tagged fields.
fn parse_api_versions_v0(body: &[u8], correlation_id: i32, what: &str) -> ApiVersionsV0 {
    assert!(
        body.len() >= 10,
        "{what}: response too short for ApiVersions v0: {body:02x?}"
    );
    let i16_at = |at: usize| i16::from_be_bytes([body[at], body[at + 1]]);
    let got_correlation = i32::from_be_bytes(body[0..4].try_into().unwrap());
    assert_eq!(got_correlation, correlation_id, "{what}: correlation id");
    let error_code = i16_at(4);
    let count = i32::from_be_bytes(body[6..10].try_into().unwrap());
    assert!(
        (0..=1000).contains(&count),
        "{what}: api_keys array length {count} is not a v0 INT32 array length"
    );
    let expected_len = 10 + 6 * count as usize;
    assert_eq!(
        body.len(),
        expected_len,
        "{what}: {count} ranges need exactly {expected_len} bytes in a v0 body, got {} \
         (v1+ adds throttle_time_ms, v3+ uses compact arrays and tagged fields)",
        body.len()
    );
    let ranges = (0..count as usize)
        .map(|n| {
            let at = 10 + 6 * n;
            (i16_at(at), i16_at(at + 2), i16_at(at + 4))
        })
        .collect();
    ApiVersionsV0 { error_code, ranges }
}

/// A well-formed ApiVersions v0 exchange on `stream`; returns the advertised ranges.
fn api_versions_v0(stream: &mut TcpStream, correlation_id: i32, what: &str) -> ApiVersionsV0 {
    stream
        .write_all(&frame(&header_v1(API_VERSIONS, 0, correlation_id)))
        .unwrap_or_else(|e| panic!("{what}: write ApiVersions v0: {e}"));
    let body = read_frame(stream, what);
    let response = parse_api_versions_v0(&body, correlation_id, what);
    assert_eq!(response.error_code, 0, "{what}: ApiVersions v0 error code");
    assert!(
        response
            .ranges
            .iter()
            .any(|&(key, _, _)| key == API_VERSIONS),
        "{what}: ApiVersions v0 response must list ApiVersions itself"
    );
    response
}

// ---- per-test setup and aftercheck --------------------------------------------------------------

fn broker_with_data() -> (Broker, String) {
    let broker = Broker::start(
        BrokerOpts::new()
            .set("socket.request.max.bytes", MAX_REQUEST_BYTES)
            .set("num.partitions", 1)
            .set("auto.create.topics.enable", "true"),
    );
    let topic = unique_topic("bad-input");
    let input: String = (0..MESSAGES)
        .map(|i| format!("key-{i}:value-{i}\n"))
        .collect();
    kcat(
        &["-P", "-b", &broker.bootstrap(), "-t", &topic, "-K:"],
        Some(input.into_bytes()),
        CLIENT_TIMEOUT,
    )
    .assert_success();
    (broker, topic)
}

/// After the bad input: new connections are served, metadata works, the data is intact.
fn assert_broker_unharmed(broker: &Broker, topic: &str, after: &str) {
    let what = format!("after {after}");
    api_versions_v0(&mut connect(broker), 7, &what);

    let out = kcat(
        &["-L", "-J", "-b", &broker.bootstrap(), "-t", topic],
        None,
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let metadata = out.result_json();
    assert_eq!(
        metadata["topics"][0]["partitions"].as_array().map(Vec::len),
        Some(1),
        "{what}: kcat -L must still describe {topic}: {metadata}"
    );

    let out = kcat(
        &[
            "-C",
            "-b",
            &broker.bootstrap(),
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-J",
            "-q",
        ],
        None,
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let records = out.json_lines();
    let got: Vec<(String, String, i64)> = records
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap_or("<none>").to_string(),
                r["payload"].as_str().unwrap_or("<none>").to_string(),
                r["offset"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let want: Vec<(String, String, i64)> = (0..MESSAGES)
        .map(|i| (format!("key-{i}"), format!("value-{i}"), i as i64))
        .collect();
    assert_eq!(
        got, want,
        "{what}: previously produced data must read back unchanged"
    );
}

// ---- the bad inputs ----------------------------------------------------------------------------

#[test]
fn frame_larger_than_socket_request_max_bytes_closes_the_connection() {
    let (broker, topic) = broker_with_data();
    for size in [MAX_REQUEST_BYTES + 1, i32::MAX] {
        let mut stream = connect(&broker);
        // Only the size and a header: the broker must reject on the size, not wait for the body.
        let mut bytes = size.to_be_bytes().to_vec();
        bytes.extend_from_slice(&header_v1(API_VERSIONS, 0, 1));
        write_lenient(&mut stream, &bytes);
        expect_closed(
            &mut stream,
            &format!("frame size {size} > socket.request.max.bytes"),
        );
    }
    assert_broker_unharmed(&broker, &topic, "oversized frames");
}

#[test]
fn negative_frame_size_closes_the_connection() {
    let (broker, topic) = broker_with_data();
    for size in [-1i32, i32::MIN] {
        let mut stream = connect(&broker);
        let mut bytes = size.to_be_bytes().to_vec();
        bytes.extend_from_slice(&header_v1(API_VERSIONS, 0, 1));
        write_lenient(&mut stream, &bytes);
        expect_closed(&mut stream, &format!("negative frame size {size}"));
    }
    assert_broker_unharmed(&broker, &topic, "negative frame sizes");
}

#[test]
fn truncated_requests_close_the_connection() {
    let (broker, topic) = broker_with_data();

    // A complete frame whose Metadata v1 body is cut short: the topics array announces 5 names
    // and carries none. Kafka fails to parse it and closes the connection.
    let mut stream = connect(&broker);
    let mut payload = header_v1(METADATA, 1, 1);
    payload.extend_from_slice(&5i32.to_be_bytes());
    write_lenient(&mut stream, &frame(&payload));
    expect_closed(&mut stream, "Metadata v1 request with a truncated body");

    // A frame too short to hold even a request header.
    let mut stream = connect(&broker);
    write_lenient(&mut stream, &frame(&[0, API_VERSIONS as u8, 0]));
    expect_closed(&mut stream, "frame shorter than a request header");

    // A zero-length frame.
    let mut stream = connect(&broker);
    write_lenient(&mut stream, &frame(&[]));
    expect_closed(&mut stream, "zero-length frame");

    // A frame cut off by EOF: 100 bytes announced, 20 sent, then the client half-closes. The broker
    // must give up on the frame and close, not wait forever or process a partial request.
    let mut stream = connect(&broker);
    let mut bytes = 100i32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&header_v1(API_VERSIONS, 0, 1)[..20]);
    write_lenient(&mut stream, &bytes);
    stream.shutdown(Shutdown::Write).expect("half-close");
    expect_closed(&mut stream, "frame cut short by EOF");

    assert_broker_unharmed(&broker, &topic, "truncated requests");
}

#[test]
fn unknown_api_key_closes_the_connection() {
    let (broker, topic) = broker_with_data();
    for api_key in [12_345i16, -1] {
        let mut stream = connect(&broker);
        write_lenient(&mut stream, &frame(&header_v1(api_key, 0, 1)));
        // Kafka cannot parse a header with an unknown key and closes the connection.
        expect_closed(
            &mut stream,
            &format!("request with unknown API key {api_key}"),
        );
    }
    assert_broker_unharmed(&broker, &topic, "unknown API keys");
}

/// Clients send their newest ApiVersions version first; a broker that does not know it must answer
/// with a v0 body, UNSUPPORTED_VERSION (35) and its supported ApiVersions range, and keep the
/// connection so the client retries lower on it.
#[test]
fn unsupported_api_versions_version_gets_error_35_with_a_v0_body() {
    let (broker, topic) = broker_with_data();
    let mut stream = connect(&broker);

    // ApiVersions v127 the way a future client would send it: header v2, flexible body with
    // client_software_name and client_software_version (compact strings) and no tagged fields.
    let mut payload = header_v2(API_VERSIONS, 127, 41);
    for s in ["strom-tests", "1.0"] {
        payload.push(s.len() as u8 + 1);
        payload.extend_from_slice(s.as_bytes());
    }
    payload.push(0);
    stream
        .write_all(&frame(&payload))
        .expect("write ApiVersions v127");
    let body = read_frame(&mut stream, "ApiVersions v127");
    let response = parse_api_versions_v0(&body, 41, "ApiVersions v127");
    assert_eq!(
        response.error_code, UNSUPPORTED_VERSION,
        "ApiVersions v127 must fail with UNSUPPORTED_VERSION (35)"
    );
    let own_range = response
        .ranges
        .iter()
        .find(|&&(key, _, _)| key == API_VERSIONS)
        .unwrap_or_else(|| {
            panic!("the error response must list the ApiVersions range so clients can retry lower")
        });
    assert_eq!(
        own_range.1, 0,
        "ApiVersions must be supported from v0: {own_range:?}"
    );
    assert!(
        own_range.2 >= 3,
        "librdkafka starts at ApiVersions v3; advertise at least 0..3, got {own_range:?}"
    );

    // The client then retries on the same connection with a version the broker supports.
    let ranges = api_versions_v0(
        &mut stream,
        42,
        "ApiVersions v0 retry on the same connection",
    );
    assert!(
        ranges.ranges.len() > 1,
        "a full ApiVersions v0 response must list more than ApiVersions itself"
    );

    assert_broker_unharmed(&broker, &topic, "an unsupported ApiVersions version");
}

#[test]
fn array_counts_far_beyond_the_frame_close_the_connection_and_the_broker_survives() {
    let (broker, topic) = broker_with_data();

    // A 14-byte Metadata v1 request whose topics array claims 2^31-1 entries. A decoder that
    // reserves memory for the claimed count asks for ~150 GB; the broker must refuse the request,
    // not abort on a failed allocation.
    let mut stream = connect(&broker);
    let mut payload = header_v1(METADATA, 1, 1);
    payload.extend_from_slice(&i32::MAX.to_be_bytes());
    write_lenient(&mut stream, &frame(&payload));
    expect_closed(&mut stream, "Metadata v1 request claiming 2^31-1 topics");

    // The same in a flexible version: a compact array length of 2^32-1 (varint 0xffffffff).
    let mut stream = connect(&broker);
    let mut payload = header_v2(METADATA, 12, 2);
    payload.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    write_lenient(&mut stream, &frame(&payload));
    expect_closed(&mut stream, "Metadata v12 request claiming 2^32-2 topics");

    // And in a Produce request, where the claimed partitions are larger structs.
    let mut stream = connect(&broker);
    let mut payload = header_v1(0, 7, 3);
    payload.extend_from_slice(&(-1i16).to_be_bytes()); // transactional id: null
    payload.extend_from_slice(&(-1i16).to_be_bytes()); // acks
    payload.extend_from_slice(&1000i32.to_be_bytes()); // timeout
    payload.extend_from_slice(&i32::MAX.to_be_bytes()); // topics: 2^31-1
    write_lenient(&mut stream, &frame(&payload));
    expect_closed(&mut stream, "Produce v7 request claiming 2^31-1 topics");

    assert_broker_unharmed(&broker, &topic, "huge array counts");
}
