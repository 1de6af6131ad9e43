//! `strom consume TOPIC`: the console consumer.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use super::{CliError, ConnectArgs, Output};
use crate::client::consumer::{Consumer, ConsumerConfig, OffsetReset, StartOffset};
use crate::client::group_consumer::{GroupConfig, GroupConsumer};
use crate::client::records::ConsumerRecord;
use crate::client::ClientError;

/// How long one poll waits before the loop checks its stop conditions again.
const POLL_SLICE: Duration = Duration::from_millis(250);

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Topic to read.
    pub topic: String,
    /// Start at the earliest offset (default: only new records; in a group, where it left off).
    #[arg(long)]
    pub from_beginning: bool,
    /// Consume as a member of this group (offsets are committed to it).
    #[arg(long, short = 'g', conflicts_with_all = ["partition", "offset"])]
    pub group: Option<String>,
    /// Read only these partitions (comma-separated or repeated).
    #[arg(long, short = 'p', value_delimiter = ',')]
    pub partition: Vec<i32>,
    /// Start offset: a number, `earliest` or `latest` (with --partition, or for all partitions).
    #[arg(long, short = 'o', conflicts_with = "from_beginning", value_parser = parse_offset)]
    pub offset: Option<StartOffset>,
    /// Exit after this many records.
    #[arg(long = "max-messages", short = 'n', value_parser = clap::value_parser!(u64).range(1..))]
    pub max_messages: Option<u64>,
    /// Print the key before the value.
    #[arg(long)]
    pub print_key: bool,
    /// Print the headers before the value.
    #[arg(long)]
    pub print_headers: bool,
    /// Print the timestamp first.
    #[arg(long)]
    pub print_timestamp: bool,
    /// Print partition and offset.
    #[arg(long)]
    pub print_offset: bool,
    /// Output template (kcat style): %t topic, %p partition, %o offset, %k key, %v value,
    /// %T timestamp, %h headers, %s value size, \n newline, \t tab.
    #[arg(long, short = 'f', conflicts_with = "json")]
    pub format: Option<String>,
    /// One JSON object per record.
    #[arg(long)]
    pub json: bool,
    /// Exit once every partition has been read to its end.
    #[arg(long, short = 'e')]
    pub exit_at_end: bool,
    /// Exit when no record arrives for this long.
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
}

fn parse_offset(text: &str) -> Result<StartOffset, String> {
    match text {
        "earliest" | "beginning" => Ok(StartOffset::Earliest),
        "latest" | "end" => Ok(StartOffset::Latest),
        number => match number.parse::<i64>() {
            Ok(offset) if offset >= 0 => Ok(StartOffset::Offset(offset)),
            _ => Err(format!(
                "offset must be a number >= 0, earliest or latest (got '{text}')"
            )),
        },
    }
}

/// How records are printed.
#[derive(Debug, Clone)]
enum Format {
    Fields {
        key: bool,
        headers: bool,
        timestamp: bool,
        offset: bool,
    },
    Template(String),
    Json,
}

fn headers_text(record: &ConsumerRecord) -> String {
    record
        .headers
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={}", String::from_utf8_lossy(v)),
            None => k.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn render(record: &ConsumerRecord, format: &Format) -> Vec<u8> {
    let mut out = Vec::new();
    match format {
        Format::Fields {
            key,
            headers,
            timestamp,
            offset,
        } => {
            if *timestamp {
                let kind = match record.timestamp_type {
                    kafka_protocol::records::TimestampType::Creation => "CreateTime",
                    kafka_protocol::records::TimestampType::LogAppend => "LogAppendTime",
                };
                out.extend_from_slice(format!("{kind}:{}\t", record.timestamp_ms).as_bytes());
            }
            if *offset {
                out.extend_from_slice(
                    format!("Partition:{}\tOffset:{}\t", record.partition, record.offset)
                        .as_bytes(),
                );
            }
            if *headers {
                let text = headers_text(record);
                out.extend_from_slice(if text.is_empty() {
                    b"NO_HEADERS"
                } else {
                    text.as_bytes()
                });
                out.push(b'\t');
            }
            if *key {
                out.extend_from_slice(record.key.as_deref().unwrap_or(b"null"));
                out.push(b'\t');
            }
            out.extend_from_slice(record.value.as_deref().unwrap_or(b"null"));
            out.push(b'\n');
        }
        Format::Template(template) => {
            let mut chars = template.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, chars.peek().copied()) {
                    ('%', Some(next)) => {
                        chars.next();
                        match next {
                            't' => out.extend_from_slice(record.topic.as_bytes()),
                            'p' => out.extend_from_slice(record.partition.to_string().as_bytes()),
                            'o' => out.extend_from_slice(record.offset.to_string().as_bytes()),
                            'k' => out.extend_from_slice(record.key.as_deref().unwrap_or(b"")),
                            'v' => out.extend_from_slice(record.value.as_deref().unwrap_or(b"")),
                            'T' => {
                                out.extend_from_slice(record.timestamp_ms.to_string().as_bytes())
                            }
                            'h' => out.extend_from_slice(headers_text(record).as_bytes()),
                            's' => out.extend_from_slice(
                                record
                                    .value
                                    .as_ref()
                                    .map_or(0, bytes::Bytes::len)
                                    .to_string()
                                    .as_bytes(),
                            ),
                            '%' => out.push(b'%'),
                            other => {
                                out.push(b'%');
                                out.extend_from_slice(other.to_string().as_bytes());
                            }
                        }
                    }
                    ('\\', Some('n')) => {
                        chars.next();
                        out.push(b'\n');
                    }
                    ('\\', Some('t')) => {
                        chars.next();
                        out.push(b'\t');
                    }
                    ('\\', Some('\\')) => {
                        chars.next();
                        out.push(b'\\');
                    }
                    (c, _) => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
        }
        Format::Json => {
            let text = |b: &Option<bytes::Bytes>| {
                b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
            };
            let headers: serde_json::Map<String, serde_json::Value> = record
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::json!(text(v))))
                .collect();
            let object = serde_json::json!({
                "topic": &*record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "timestamp": record.timestamp_ms,
                "key": text(&record.key),
                "value": text(&record.value),
                "headers": headers,
            });
            out.extend_from_slice(object.to_string().as_bytes());
            out.push(b'\n');
        }
    }
    out
}

enum Source {
    Assigned(Consumer),
    Group(Box<GroupConsumer>),
}

impl Source {
    fn rewind(&mut self, unprocessed: &[ConsumerRecord]) {
        let Source::Group(consumer) = self else {
            return;
        };
        let mut first: std::collections::BTreeMap<(&str, i32), i64> =
            std::collections::BTreeMap::new();
        for record in unprocessed {
            first
                .entry((&*record.topic, record.partition))
                .or_insert(record.offset);
        }
        for ((topic, partition), offset) in first {
            consumer.seek(topic, partition, offset);
        }
    }

    async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        match self {
            Source::Assigned(consumer) => consumer.poll(timeout).await,
            Source::Group(consumer) => consumer.poll(timeout).await,
        }
    }

    fn at_end(&self) -> bool {
        match self {
            Source::Assigned(consumer) => consumer.at_end(),
            Source::Group(consumer) => consumer.at_end(),
        }
    }

    async fn close(self) -> Result<(), ClientError> {
        match self {
            Source::Assigned(_) => Ok(()),
            Source::Group(consumer) => consumer.close().await,
        }
    }
}

pub async fn run(args: ConsumeArgs) -> Result<ExitCode, CliError> {
    let client = args.connect.connect().await?;
    let info = client.topic(&args.topic).await?;
    let format = if args.json {
        Format::Json
    } else if let Some(template) = &args.format {
        Format::Template(template.clone())
    } else {
        Format::Fields {
            key: args.print_key,
            headers: args.print_headers,
            timestamp: args.print_timestamp,
            offset: args.print_offset,
        }
    };
    let offset_reset = if args.from_beginning {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    };
    let consumer_config = ConsumerConfig {
        offset_reset,
        ..ConsumerConfig::default()
    };
    let mut source = match &args.group {
        Some(group) => {
            let mut config = GroupConfig::new(group);
            config.consumer = consumer_config;
            let mut consumer = GroupConsumer::new(client, config)?;
            consumer.subscribe(std::slice::from_ref(&args.topic));
            Source::Group(Box::new(consumer))
        }
        None => {
            let partitions: Vec<i32> = if args.partition.is_empty() {
                info.partitions.iter().map(|p| p.id).collect()
            } else {
                args.partition.clone()
            };
            let start = match args.offset {
                Some(offset) => offset,
                None if args.from_beginning => StartOffset::Earliest,
                None => StartOffset::Latest,
            };
            let mut consumer = Consumer::new(client, consumer_config);
            let assignment: Vec<(String, i32, StartOffset)> = partitions
                .iter()
                .map(|&p| (args.topic.clone(), p, start))
                .collect();
            consumer.assign(&assignment).await?;
            Source::Assigned(consumer)
        }
    };
    let mut out = Output::new();
    let mut consumed = 0u64;
    let mut last_record = Instant::now();
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let outcome: Result<(), CliError> = async {
        loop {
            if args.max_messages.is_some_and(|max| consumed >= max) {
                break;
            }
            if idle_limit.is_some_and(|limit| last_record.elapsed() >= limit) {
                break;
            }
            let records = tokio::select! {
                _ = &mut interrupted => break,
                polled = source.poll(POLL_SLICE) => polled?,
            };
            if !records.is_empty() {
                last_record = Instant::now();
            }
            for (index, record) in records.iter().enumerate() {
                if args.max_messages.is_some_and(|max| consumed >= max) {
                    // Records handed out but not printed must not count as consumed for a
                    // group: move each partition back to its first unprinted record.
                    source.rewind(&records[index..]);
                    break;
                }
                if !out.write(&render(record, &format))? {
                    return Ok(()); // stdout closed
                }
                consumed += 1;
            }
            out.flush()?;
            if args.exit_at_end && records.is_empty() && source.at_end() {
                break;
            }
        }
        Ok(())
    }
    .await;
    out.flush()?;
    let closed = source.close().await;
    outcome?;
    closed?;
    eprintln!("consumed {consumed} messages");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: Arc::from("t"),
            partition: 2,
            offset: 7,
            timestamp_ms: 1234,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"hello")),
            headers: vec![
                ("a".into(), Some(Bytes::from_static(b"1"))),
                ("b".into(), None),
            ],
        }
    }

    #[test]
    fn default_output_is_the_value() {
        let plain = Format::Fields {
            key: false,
            headers: false,
            timestamp: false,
            offset: false,
        };
        assert_eq!(render(&record(), &plain), b"hello\n");
        let all = Format::Fields {
            key: true,
            headers: true,
            timestamp: true,
            offset: true,
        };
        assert_eq!(
            String::from_utf8(render(&record(), &all)).expect("utf8"),
            "CreateTime:1234\tPartition:2\tOffset:7\ta=1,b\tk\thello\n"
        );
    }

    #[test]
    fn templates_expand() {
        let format = Format::Template("%t/%p@%o %k=%v (%s) [%h] %T %% %x\\n".into());
        assert_eq!(
            String::from_utf8(render(&record(), &format)).expect("utf8"),
            "t/2@7 k=hello (5) [a=1,b] 1234 % %x\n"
        );
    }

    #[test]
    fn json_lines() {
        let line = String::from_utf8(render(&record(), &Format::Json)).expect("utf8");
        let value: serde_json::Value = serde_json::from_str(line.trim()).expect("json");
        assert_eq!(value["offset"], 7);
        assert_eq!(value["key"], "k");
        assert_eq!(value["headers"]["a"], "1");
        assert!(value["headers"]["b"].is_null());
    }

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_offset("5"), Ok(StartOffset::Offset(5)));
        assert_eq!(parse_offset("earliest"), Ok(StartOffset::Earliest));
        assert!(parse_offset("-3").is_err());
    }
}
