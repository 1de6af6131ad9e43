//! A plain Kafka connection for tests that send requests clients would not: requests encoded
//! with the `kafka-protocol` crate, sent over a socket, responses decoded in order.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, RequestHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

use super::Broker;

/// One request as it goes on the wire: size prefix, header (the version the api wants), body.
pub fn request_frame<Req: Encodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &Req,
) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("strom-test")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, Req::header_version(version))
        .expect("encode header");
    request.encode(&mut body, version).expect("encode request");
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

pub struct Connection {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl Connection {
    pub fn open(broker: &Broker) -> Self {
        Self::open_addr(broker.addr())
    }

    /// A connection to the broker at `addr`.
    pub fn open_addr(addr: std::net::SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect to the broker");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        Connection {
            stream,
            next_correlation_id: 1,
        }
    }

    /// Sends one request and decodes its response.
    pub fn call<Req, Resp>(&mut self, api: ApiKey, version: i16, request: &Req) -> Resp
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let frame = request_frame(api, version, correlation_id, request);
        self.stream.write_all(&frame).expect("send request");

        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).expect("response size");
        let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream
            .read_exact(&mut response)
            .expect("response body");
        let mut response = Bytes::from(response);
        let header = kafka_protocol::messages::ResponseHeader::decode(
            &mut response,
            Resp::header_version(version),
        )
        .expect("response header");
        assert_eq!(
            header.correlation_id, correlation_id,
            "responses come back in order"
        );
        Resp::decode(&mut response, version).expect("decode response")
    }

    /// Produces `records` to `topic`-`partition` (acks=-1) and returns (error code, base offset).
    pub fn produce(&mut self, topic: &str, partition: i32, records: Vec<u8>) -> (i16, i64) {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(Bytes::from(records)))])]);
        let response: ProduceResponse = self.call(ApiKey::Produce, 9, &request);
        let partition = &response.responses[0].partition_responses[0];
        (partition.error_code, partition.base_offset)
    }
}
