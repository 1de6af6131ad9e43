//! A response as the connection writer sends it: a frame made of byte chunks and file ranges.
//! File ranges go from the page cache to the socket with splice; nothing copies them.

use bytes::Bytes;
use strom_engine::log::FileRange;

/// A piece of a response frame.
#[derive(Debug)]
pub enum Chunk {
    Bytes(Bytes),
    File(FileRange),
}

impl Chunk {
    pub fn len_bytes(&self) -> usize {
        match self {
            Chunk::Bytes(bytes) => bytes.len(),
            Chunk::File(range) => range.len_bytes,
        }
    }
}

/// What a request produces.
#[derive(Debug)]
pub enum Response {
    /// A whole frame (size prefix and header included), in chunks.
    Frame(Vec<Chunk>),
    /// Nothing is sent (Produce with acks=0).
    NoResponse,
    /// Close the connection after the responses before this one (Kafka's answer to requests it
    /// cannot parse).
    Close(String),
}

impl Response {
    pub fn bytes(frame: Bytes) -> Self {
        Response::Frame(vec![Chunk::Bytes(frame)])
    }

    /// Bytes of memory this response holds until it is written: its byte chunks (file ranges
    /// are sent from the page cache).
    pub fn held_bytes(&self) -> usize {
        match self {
            Response::Frame(chunks) => chunks
                .iter()
                .map(|chunk| match chunk {
                    Chunk::Bytes(bytes) => bytes.len(),
                    Chunk::File(_) => 0,
                })
                .sum(),
            Response::NoResponse | Response::Close(_) => 0,
        }
    }
}
