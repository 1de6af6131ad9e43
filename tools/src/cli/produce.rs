//! `strom produce TOPIC`: the console producer. One record per line of stdin.

use std::collections::VecDeque;
use std::process::ExitCode;

use bytes::Bytes;
use clap::Args;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{parse_acks, parse_key_value, CliError, ConnectArgs};
use crate::client::producer::{DeliveryFuture, Producer, ProducerConfig, ProducerRecord};
use crate::client::records::parse_compression;
use crate::client::ClientError;

/// Deliveries awaited at most at once before reading more input (bounds memory on huge input).
const DELIVERIES_PENDING_MAX: usize = 10_000;
/// Longest input line accepted.
const LINE_MAX_BYTES: usize = 16 * 1024 * 1024;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Topic to write to.
    pub topic: String,
    /// Split each line at the first occurrence of this string into key and value.
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// A header added to every record, KEY=VALUE (repeatable).
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
    /// all (-1), 1 or 0.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    pub acks: i16,
    /// Write every record to this partition (default: by key, or sticky round robin).
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = |s: &str| parse_compression(s).map_err(|e| e.to_string()))]
    pub compression: kafka_protocol::records::Compression,
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    #[arg(long, default_value_t = 16 * 1024)]
    pub batch_bytes: usize,
    /// Idempotent producer (requires acks=all).
    #[arg(long)]
    pub idempotence: bool,
}

fn split_key<'a>(line: &'a [u8], separator: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    if separator.is_empty() || line.len() < separator.len() {
        return None;
    }
    let at = line.windows(separator.len()).position(|w| w == separator)?;
    Some((&line[..at], &line[at + separator.len()..]))
}

async fn settle(
    pending: &mut VecDeque<DeliveryFuture>,
    first_error: &mut Option<ClientError>,
    failed: &mut u64,
) {
    if let Some(delivery) = pending.pop_front() {
        if let Err(error) = delivery.wait().await {
            *failed += 1;
            first_error.get_or_insert(error);
        }
    }
}

pub async fn run(args: ProduceArgs) -> Result<ExitCode, CliError> {
    let client = args.connect.connect().await?;
    // Fail early, before reading input, for a topic that is not there.
    let info = client.topic(&args.topic).await?;
    if let Some(partition) = args.partition {
        if info.partition(partition).is_none() {
            return Err(ClientError::UnknownPartition {
                topic: args.topic.clone(),
                partition,
            }
            .into());
        }
    }
    let config = ProducerConfig {
        acks: args.acks,
        linger_ms: args.linger_ms,
        batch_max_bytes: args.batch_bytes,
        compression: args.compression,
        idempotence: args.idempotence,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, config).await?;
    let headers: Vec<(String, Option<Bytes>)> = args
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Some(Bytes::from(v.clone()))))
        .collect();
    let separator = args.key_separator.as_ref().map(|s| s.as_bytes().to_vec());
    let topic: std::sync::Arc<str> = std::sync::Arc::from(args.topic.as_str());
    let mut reader = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut first_error = None;
    let mut failed = 0u64;
    let mut sent = 0u64;
    let mut line_number = 0u64;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| CliError::Io(format!("cannot read stdin: {e}")))?;
        if read == 0 {
            break;
        }
        line_number += 1;
        if line.len() > LINE_MAX_BYTES {
            return Err(CliError::Usage(format!(
                "line {line_number} is longer than {LINE_MAX_BYTES} bytes"
            )));
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let (key, value) = match &separator {
            None => (None, Bytes::copy_from_slice(&line)),
            Some(separator) => match split_key(&line, separator) {
                Some((key, value)) => (
                    Some(Bytes::copy_from_slice(key)),
                    Bytes::copy_from_slice(value),
                ),
                None => {
                    return Err(CliError::Usage(format!(
                        "line {line_number} has no key separator '{}'",
                        String::from_utf8_lossy(separator)
                    )))
                }
            },
        };
        let record = ProducerRecord {
            topic: topic.clone(),
            partition: args.partition,
            key,
            value: Some(value),
            headers: headers.clone(),
            timestamp_ms: None,
        };
        pending.push_back(producer.send(record).await?);
        sent += 1;
        while pending.len() > DELIVERIES_PENDING_MAX {
            settle(&mut pending, &mut first_error, &mut failed).await;
        }
    }
    producer.flush().await;
    while !pending.is_empty() {
        settle(&mut pending, &mut first_error, &mut failed).await;
    }
    producer.close().await;
    if let Some(error) = first_error {
        return Err(CliError::Usage(format!(
            "{failed} of {sent} records were not delivered: {error}"
        )));
    }
    eprintln!("produced {sent} records to {}", args.topic);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_separator_splits_at_the_first_occurrence() {
        assert_eq!(split_key(b"k:v:w", b":"), Some((&b"k"[..], &b"v:w"[..])));
        assert_eq!(split_key(b"k::v", b"::"), Some((&b"k"[..], &b"v"[..])));
        assert_eq!(split_key(b":v", b":"), Some((&b""[..], &b"v"[..])));
        assert_eq!(split_key(b"novalue", b":"), None);
        assert_eq!(split_key(b"", b":"), None);
    }
}
