//! A client that pipelines: many requests written back-to-back on one connection, before any
//! response is read. The broker reads ahead while earlier requests are in work, but it must
//! still dispatch them in request order (so one connection's appends land in its order) and
//! answer them in request order; a malformed frame in the stream closes the connection after
//! the responses to the requests before it, and other connections go on being served.
//!
//! Requests are encoded with the `kafka-protocol` crate and written over a plain socket by a
//! writer thread while the test reads responses (a client that never reads would eventually
//! fill both socket buffers, as with any TCP server).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::Bytes;
use common::kafka_wire::{request_frame, Connection};
use common::{unique_topic, Broker, BrokerOpts};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use strom_engine::batch::build::build_batch;

const IO_TIMEOUT: Duration = Duration::from_secs(30);
const PRODUCE_VERSION: i16 = 9;
const METADATA_VERSION: i16 = 12;
const API_VERSIONS_VERSION: i16 = 3;
const RECORDS_PER_BATCH: i32 = 3;

/// What each request of a pipelined stream was, to decode its response.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Produce,
    Metadata,
    ApiVersions,
}

/// Requests of one connection with increasing correlation ids, as bytes to write at once.
struct Pipeline {
    bytes: Vec<u8>,
    kinds: Vec<(i32, Kind)>,
    next_correlation_id: i32,
}

impl Pipeline {
    fn new() -> Self {
        Pipeline {
            bytes: Vec::new(),
            kinds: Vec::new(),
            next_correlation_id: 100,
        }
    }

    fn push<Req: Encodable + HeaderVersion>(
        &mut self,
        kind: Kind,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        self.bytes
            .extend_from_slice(&request_frame(api, version, correlation_id, request));
        self.kinds.push((correlation_id, kind));
    }

    fn produce(&mut self, topic: &str, value_bytes: usize) {
        self.produce_with_acks(topic, value_bytes, 1);
    }

    /// A produce with `acks` 0 gets no response, so it is not listed among the responses due.
    fn produce_with_acks(&mut self, topic: &str, value_bytes: usize, acks: i16) {
        let batch = build_batch(
            0,
            RECORDS_PER_BATCH,
            value_bytes,
            1_700_000_000_000,
            -1,
            -1,
            -1,
        );
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch)))])]);
        self.push(Kind::Produce, ApiKey::Produce, PRODUCE_VERSION, &request);
        if acks == 0 {
            self.kinds.pop();
        }
    }

    fn metadata(&mut self, topic: &str) {
        let request =
            MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]));
        self.push(Kind::Metadata, ApiKey::Metadata, METADATA_VERSION, &request);
    }

    fn api_versions(&mut self) {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strom-test"))
            .with_client_software_version(StrBytes::from_static_str("1.0"));
        self.push(
            Kind::ApiVersions,
            ApiKey::ApiVersions,
            API_VERSIONS_VERSION,
            &request,
        );
    }

    /// Appends raw bytes (a malformed frame) after the requests so far.
    fn raw(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }
}

fn connect(broker: &Broker) -> TcpStream {
    let stream = TcpStream::connect(broker.addr()).expect("connect to the broker");
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    stream
}

/// Writes every request of `pipeline` back-to-back from another thread. A reset or broken pipe
/// is allowed (the broker closes a connection that sent a bad frame).
fn write_in_background(stream: &TcpStream, bytes: Vec<u8>) -> JoinHandle<()> {
    let mut writer = stream.try_clone().expect("clone the socket");
    thread::spawn(move || {
        if let Err(error) = writer.write_all(&bytes) {
            assert!(
                matches!(
                    error.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
                ),
                "writing the pipelined requests failed: {error}"
            );
        }
    })
}

fn read_frame(stream: &mut TcpStream, what: &str) -> Bytes {
    let mut size = [0u8; 4];
    stream
        .read_exact(&mut size)
        .unwrap_or_else(|error| panic!("{what}: no response: {error}"));
    let size = i32::from_be_bytes(size);
    assert!(
        (0..=(64 << 20)).contains(&size),
        "{what}: implausible response size {size}"
    );
    let mut body = vec![0u8; size as usize];
    stream
        .read_exact(&mut body)
        .unwrap_or_else(|error| panic!("{what}: truncated response: {error}"));
    Bytes::from(body)
}

fn decode<Resp: Decodable + HeaderVersion>(mut frame: Bytes, version: i16) -> (i32, Resp) {
    let header =
        ResponseHeader::decode(&mut frame, Resp::header_version(version)).expect("response header");
    let body = Resp::decode(&mut frame, version).expect("response body");
    (header.correlation_id, body)
}

/// Sends the whole pipeline on a new connection (from a thread, so writing never waits for our
/// reads) and reads every response in order; returns the produces' base offsets.
fn send_and_read_in_order(broker: &Broker, mut pipeline: Pipeline, topic: &str) -> Vec<i64> {
    let mut stream = connect(broker);
    let writer = write_in_background(&stream, std::mem::take(&mut pipeline.bytes));
    let offsets = read_in_order(&mut stream, &pipeline.kinds, topic);
    writer.join().expect("writer thread");
    offsets
}

/// Reads one response per request of `kinds`, in order: correlation ids must come back in
/// request order, and every produce must succeed at a base offset after the previous one's.
/// Returns the produce base offsets in request order.
fn read_in_order(stream: &mut TcpStream, kinds: &[(i32, Kind)], topic: &str) -> Vec<i64> {
    let mut base_offsets = Vec::new();
    for (index, &(expected_id, kind)) in kinds.iter().enumerate() {
        let what = format!("response {index} ({kind:?}, correlation id {expected_id})");
        let frame = read_frame(stream, &what);
        let correlation_id = match kind {
            Kind::Produce => {
                let (id, response): (i32, ProduceResponse) = decode(frame, PRODUCE_VERSION);
                let partition = &response.responses[0].partition_responses[0];
                assert_eq!(partition.error_code, 0, "{what}: produce error");
                if let Some(&previous) = base_offsets.last() {
                    assert!(
                        partition.base_offset > previous,
                        "{what}: base offset {} after {previous}: appends out of request order",
                        partition.base_offset
                    );
                }
                base_offsets.push(partition.base_offset);
                id
            }
            Kind::Metadata => {
                let (id, response): (i32, MetadataResponse) = decode(frame, METADATA_VERSION);
                assert_eq!(response.topics.len(), 1, "{what}");
                assert_eq!(
                    response.topics[0].error_code, 0,
                    "{what}: metadata of {topic}"
                );
                id
            }
            Kind::ApiVersions => {
                let (id, response): (i32, ApiVersionsResponse) =
                    decode(frame, API_VERSIONS_VERSION);
                assert_eq!(response.error_code, 0, "{what}");
                assert!(!response.api_keys.is_empty(), "{what}");
                id
            }
        };
        assert_eq!(
            correlation_id, expected_id,
            "{what}: responses must come back in request order"
        );
    }
    base_offsets
}

/// After the responses expected, the broker must close the connection: EOF or a reset.
fn expect_closed(stream: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{what}: {n} more bytes instead of a closed connection"),
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) => {}
        Err(error) => panic!("{what}: the connection stayed open or failed oddly: {error}"),
    }
}

fn create_topic(broker: &Broker, topic: &str) {
    let mut connection = Connection::open(broker);
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let created: CreateTopicsResponse = connection.call(ApiKey::CreateTopics, 5, &create);
    assert_eq!(created.topics[0].error_code, 0, "create {topic}");
}

/// The offsets a run of produces must get: one batch after the other, from `first`.
fn consecutive_from(first: i64, count: usize) -> Vec<i64> {
    (0..count as i64)
        .map(|index| first + index * i64::from(RECORDS_PER_BATCH))
        .collect()
}

#[test]
fn pipelined_requests_are_answered_in_request_order_with_appends_in_that_order() {
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic("pipelined");
    create_topic(&broker, &topic);

    const PRODUCES: usize = 500;
    let mut pipeline = Pipeline::new();
    for index in 0..PRODUCES {
        pipeline.produce(&topic, 100);
        if index % 50 == 0 {
            pipeline.metadata(&topic);
        }
        if index % 70 == 0 {
            pipeline.api_versions();
        }
    }
    let offsets = send_and_read_in_order(&broker, pipeline, &topic);
    // Only this connection wrote: the batches sit back to back, in request order.
    assert_eq!(offsets, consecutive_from(0, PRODUCES));
}

/// With a queue budget far smaller than one request, every request is still read (one at a
/// time) and answered in order: the budget pushes back, it never drops or stalls.
#[test]
fn requests_larger_than_the_queue_budget_flow_one_by_one_in_order() {
    let broker = Broker::start(BrokerOpts::new().set("queued.max.request.bytes", 1024));
    let topic = unique_topic("pipelined-budget");
    create_topic(&broker, &topic);

    const PRODUCES: usize = 60;
    let mut pipeline = Pipeline::new();
    for index in 0..PRODUCES {
        // About 12 KiB per request, twelve times the budget.
        pipeline.produce(&topic, 4000);
        if index % 20 == 0 {
            pipeline.api_versions();
        }
    }
    let offsets = send_and_read_in_order(&broker, pipeline, &topic);
    assert_eq!(offsets, consecutive_from(0, PRODUCES));
}

/// Produces with acks=0 get no response, yet each was in flight: far more of them than a
/// connection may have in flight must still flow (each counts as answered once dispatched and
/// completed), and their appends come before those of the requests after them.
#[test]
fn unanswered_acks_0_produces_free_their_place_in_flight() {
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic("pipelined-acks0");
    create_topic(&broker, &topic);

    const SILENT: usize = 300;
    let mut pipeline = Pipeline::new();
    for _ in 0..SILENT {
        pipeline.produce_with_acks(&topic, 50, 0);
    }
    pipeline.api_versions();
    pipeline.produce(&topic, 50);
    let offsets = send_and_read_in_order(&broker, pipeline, &topic);
    assert_eq!(
        offsets,
        consecutive_from(i64::from(RECORDS_PER_BATCH) * SILENT as i64, 1)
    );
}

/// A frame that cannot be read (a negative size; and, on a second connection, a header naming
/// an api that does not exist) ends the connection after the responses to the requests before
/// it; their appends are stored, nothing after the bad frame is, and a new connection is served.
#[test]
fn a_malformed_frame_mid_stream_closes_after_the_responses_before_it() {
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic("pipelined-bad");
    create_topic(&broker, &topic);

    // A bad size prefix: the stream cannot be followed past it.
    const BEFORE: usize = 40;
    let mut pipeline = Pipeline::new();
    for index in 0..BEFORE {
        pipeline.produce(&topic, 50);
        if index % 10 == 0 {
            pipeline.api_versions();
        }
    }
    let good = pipeline.kinds.clone();
    pipeline.raw(&(-1i32).to_be_bytes());
    let mut stream = connect(&broker);
    let writer = write_in_background(&stream, std::mem::take(&mut pipeline.bytes));
    let offsets = read_in_order(&mut stream, &good, &topic);
    expect_closed(&mut stream, "after a negative frame size");
    writer.join().expect("writer thread");
    assert_eq!(offsets, consecutive_from(0, BEFORE));

    // A well-framed request whose api key does not exist: Kafka closes the connection.
    let mut pipeline = Pipeline::new();
    for _ in 0..BEFORE {
        pipeline.produce(&topic, 50);
    }
    let good = pipeline.kinds.clone();
    let mut unknown_api = Vec::new();
    unknown_api.extend_from_slice(&9999i16.to_be_bytes());
    unknown_api.extend_from_slice(&0i16.to_be_bytes());
    unknown_api.extend_from_slice(&7i32.to_be_bytes());
    unknown_api.extend_from_slice(&(-1i16).to_be_bytes());
    pipeline.raw(&(unknown_api.len() as i32).to_be_bytes());
    pipeline.raw(&unknown_api);
    let mut stream = connect(&broker);
    let writer = write_in_background(&stream, std::mem::take(&mut pipeline.bytes));
    let offsets = read_in_order(&mut stream, &good, &topic);
    expect_closed(&mut stream, "after an unknown api key");
    writer.join().expect("writer thread");
    let first = i64::from(RECORDS_PER_BATCH) * BEFORE as i64;
    assert_eq!(offsets, consecutive_from(first, BEFORE));

    // Another connection is served, and its append follows the ones above directly.
    let mut pipeline = Pipeline::new();
    pipeline.api_versions();
    pipeline.produce(&topic, 50);
    let mut stream = connect(&broker);
    stream.write_all(&pipeline.bytes).expect("send");
    let offsets = read_in_order(&mut stream, &pipeline.kinds, &topic);
    assert_eq!(offsets, vec![first * 2]);
}
