//! The shard side of the group coordinator: the pure [`GroupCoordinator`] state machines of the
//! `__consumer_offsets` partitions this shard owns, plus the I/O they ask for. Requests come in
//! with a token; the coordinator's actions are carried out here — responses routed back to the
//! waiting handler by token, records appended to the partition (responses that depend on them
//! sent only once they are durable) — and the shard's clock drives its deadlines.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record as KafkaRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};
use tokio::sync::oneshot;

use super::partition::{AckLevel, AckWait, Partition};
use crate::config::BrokerConfig;
use crate::group::{Action, GroupConfig, GroupCoordinator, Input, Record, RequestToken, Response};

/// Pending requests per coordinator (JoinGroup/SyncGroup held open); bounds memory.
const WAITING_REQUESTS_MAX: usize = 100_000;
/// Bytes read per step while replaying a partition at load.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// Why a request could not be given to a coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// This shard has no coordinator for the partition (it is not the leader).
    NotCoordinator,
    /// Too many requests are waiting.
    Overloaded,
}

struct CoordinatorSlot {
    coordinator: RefCell<GroupCoordinator>,
    waiting: RefCell<HashMap<RequestToken, oneshot::Sender<Response>>>,
    partition: Rc<Partition>,
}

/// The coordinators of one shard.
#[derive(Default)]
pub struct GroupRuntime {
    slots: RefCell<HashMap<i32, Rc<CoordinatorSlot>>>,
    next_token: Cell<u64>,
}

pub fn group_config(config: &BrokerConfig) -> GroupConfig {
    GroupConfig {
        min_session_timeout_ms: i32::try_from(config.group_min_session_timeout_ms)
            .unwrap_or(i32::MAX),
        max_session_timeout_ms: i32::try_from(config.group_max_session_timeout_ms)
            .unwrap_or(i32::MAX),
        initial_rebalance_delay_ms: i32::try_from(config.group_initial_rebalance_delay_ms)
            .unwrap_or(i32::MAX),
        offsets_retention_ms: i64::try_from(config.offsets_retention_ms()).unwrap_or(i64::MAX),
        ..GroupConfig::default()
    }
}

fn encode_batch(records: &[Record], now_ms: i64) -> Result<Bytes, String> {
    let kafka_records: Vec<KafkaRecord> = records
        .iter()
        .enumerate()
        .map(|(index, record)| KafkaRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i64::try_from(index).unwrap_or(0),
            // The encoder keeps records in one batch while offset - sequence is constant; the
            // batch's base sequence is the first record's, -1 (not idempotent).
            sequence: i32::try_from(index).unwrap_or(0) - 1,
            timestamp: now_ms,
            key: Some(record.key.clone()),
            value: record.value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        kafka_records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|error| error.to_string())?;
    Ok(out.freeze())
}

impl GroupRuntime {
    fn next_token(&self) -> RequestToken {
        let token = self.next_token.get();
        self.next_token.set(token.wrapping_add(1));
        RequestToken(token)
    }

    /// Starts coordinating the groups of `partition` (a `__consumer_offsets` partition this shard
    /// owns): replays its records, then serves requests. Until the replay ends, requests are
    /// answered COORDINATOR_LOAD_IN_PROGRESS by the coordinator itself.
    pub async fn load(
        self: &Rc<Self>,
        partition: Rc<Partition>,
        config: GroupConfig,
        now_ms: i64,
    ) -> Result<(), String> {
        let seed = u64::from(crc32c::crc32c(
            format!("{}-{now_ms}", partition.index).as_bytes(),
        ));
        let coordinator = GroupCoordinator::new(config, seed).map_err(|error| error.to_string())?;
        let slot = Rc::new(CoordinatorSlot {
            coordinator: RefCell::new(coordinator),
            waiting: RefCell::new(HashMap::new()),
            partition: partition.clone(),
        });
        self.slots
            .borrow_mut()
            .insert(partition.index, slot.clone());
        let log = &partition.log;
        let mut offset = log.log_start_offset();
        let mut records = Vec::new();
        while let Some(range) = log
            .read(offset, REPLAY_READ_BYTES, log.log_end_offset())
            .await
            .map_err(|error| error.to_string())?
        {
            let bytes = range
                .read_to_vec()
                .await
                .map_err(|error| error.to_string())?;
            let mut buffer = Bytes::from(bytes);
            let sets = RecordBatchDecoder::decode_all(&mut buffer)
                .map_err(|error| format!("decode __consumer_offsets batch: {error}"))?;
            for set in sets {
                records.extend(set.records.into_iter().filter_map(|record| {
                    record.key.map(|key| Record {
                        key,
                        value: record.value,
                    })
                }));
            }
            offset = range.next_offset;
        }
        let replayed = records.len();
        let actions = {
            let mut coordinator = slot.coordinator.borrow_mut();
            for record in &records {
                if let Err(error) = coordinator.replay(&record.key, record.value.as_deref()) {
                    // A record this coordinator cannot read (corrupt, or written by a newer
                    // version): skipping it may lose one commit; refusing to load would lose the
                    // whole partition's groups.
                    tracing::warn!(partition = partition.index, %error, "skipping an unreadable __consumer_offsets record");
                }
            }
            coordinator.finish_loading(now_ms)
        };
        self.execute(&slot, actions, now_ms);
        tracing::debug!(
            partition = partition.index,
            replayed,
            "group coordinator loaded"
        );
        Ok(())
    }

    /// Stops coordinating the groups of `partition` (this broker no longer leads it). Requests
    /// waiting on it are dropped, so their clients see NOT_COORDINATOR and look again.
    pub fn unload(&self, partition: i32) -> bool {
        self.slots.borrow_mut().remove(&partition).is_some()
    }

    pub fn is_loaded(&self, partition: i32) -> bool {
        self.slots.borrow().contains_key(&partition)
    }

    /// Gives a request to the coordinator of `partition`; the receiver yields its response.
    pub fn submit(
        &self,
        partition: i32,
        now_ms: i64,
        make_input: impl FnOnce(RequestToken) -> Input,
    ) -> Result<oneshot::Receiver<Response>, RouteError> {
        let slot = self
            .slots
            .borrow()
            .get(&partition)
            .cloned()
            .ok_or(RouteError::NotCoordinator)?;
        if slot.waiting.borrow().len() >= WAITING_REQUESTS_MAX {
            return Err(RouteError::Overloaded);
        }
        let token = self.next_token();
        let (sender, receiver) = oneshot::channel();
        slot.waiting.borrow_mut().insert(token, sender);
        let actions = slot
            .coordinator
            .borrow_mut()
            .handle(now_ms, make_input(token));
        self.execute(&slot, actions, now_ms);
        Ok(receiver)
    }

    /// Tells every coordinator of this shard about an event (e.g. partitions changed).
    pub fn broadcast(&self, now_ms: i64, input: impl Fn() -> Input) {
        let slots: Vec<Rc<CoordinatorSlot>> = self.slots.borrow().values().cloned().collect();
        for slot in slots {
            let actions = slot.coordinator.borrow_mut().handle(now_ms, input());
            self.execute(&slot, actions, now_ms);
        }
    }

    /// Whether every coordinator of this shard has replayed its partition (readiness).
    pub fn all_loaded(&self) -> bool {
        self.slots
            .borrow()
            .values()
            .all(|slot| !slot.coordinator.borrow().is_loading())
    }

    /// Every committed offset this shard's coordinators hold (the lag metrics).
    pub fn committed_offsets(&self) -> Vec<crate::metrics::CommittedOffset> {
        self.slots
            .borrow()
            .values()
            .flat_map(|slot| slot.coordinator.borrow().committed_offsets())
            .map(
                |(group, topic, partition, offset)| crate::metrics::CommittedOffset {
                    group,
                    topic,
                    partition,
                    offset,
                },
            )
            .collect()
    }

    /// Partitions of this shard's coordinators.
    pub fn partitions(&self) -> Vec<i32> {
        self.slots.borrow().keys().copied().collect()
    }

    /// Runs every deadline that is due (session and rebalance timeouts, offset expiry).
    pub fn tick(&self, now_ms: i64) {
        let slots: Vec<Rc<CoordinatorSlot>> = self.slots.borrow().values().cloned().collect();
        for slot in slots {
            let due = slot
                .coordinator
                .borrow()
                .next_deadline_ms()
                .is_some_and(|deadline| deadline <= now_ms);
            if due {
                let actions = slot.coordinator.borrow_mut().tick(now_ms);
                self.execute(&slot, actions, now_ms);
            }
        }
    }

    fn execute(&self, slot: &Rc<CoordinatorSlot>, actions: Vec<Action>, now_ms: i64) {
        for action in actions {
            match action {
                Action::Respond { token, response } => respond(slot, token, response),
                Action::Append { records, then } => {
                    // Appends are queued in action order: each task takes the partition's append
                    // lock on its first poll, and tasks are first polled in spawn order.
                    let slot = slot.clone();
                    strom_engine::io::spawn_local(async move {
                        let outcome = append_records(&slot.partition, &records, now_ms).await;
                        match outcome {
                            Ok(()) => {
                                for (token, response) in then {
                                    respond(&slot, token, response);
                                }
                            }
                            Err(error) => {
                                // The coordinator's state is ahead of its log; the waiting
                                // requests are dropped, which their handlers answer with an error.
                                tracing::error!(partition = slot.partition.index, %error, "could not append group records");
                                let mut waiting = slot.waiting.borrow_mut();
                                for (token, _) in then {
                                    waiting.remove(&token);
                                }
                            }
                        }
                    });
                }
            }
        }
    }
}

fn respond(slot: &CoordinatorSlot, token: RequestToken, response: Response) {
    if let Some(sender) = slot.waiting.borrow_mut().remove(&token) {
        // The client may have gone away; then nobody waits for the answer.
        let _ = sender.send(response);
    }
}

async fn append_records(
    partition: &Partition,
    records: &[Record],
    now_ms: i64,
) -> Result<(), String> {
    if records.is_empty() {
        return Ok(());
    }
    let batch = encode_batch(records, now_ms)?;
    let outcome = partition
        .append(batch, AckLevel::All)
        .await
        .map_err(|error| error.to_string())?;
    match outcome.wait {
        None => {}
        Some(AckWait::Local(wait)) => wait.wait().await.map_err(|error| error.to_string())?,
        Some(AckWait::Replicated(replicated)) => match replicated.await {
            Ok(0) => {}
            Ok(error_code) => {
                return Err(format!("replication failed with error code {error_code}"))
            }
            Err(_) => return Err("the partition's leadership ended".into()),
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_records_are_one_valid_batch() {
        let records: Vec<Record> = (0..5)
            .map(|index| Record {
                key: Bytes::from(format!("key-{index}")),
                value: (index != 3).then(|| Bytes::from(format!("value-{index}"))),
            })
            .collect();
        let batch = encode_batch(&records, 1_000).expect("encode");
        let ranges = strom_engine::batch::split_record_set(&batch).expect("batches");
        assert_eq!(ranges.len(), 1, "one batch per append");
        let header = strom_engine::batch::validate_batch(&batch).expect("valid batch");
        assert_eq!(header.record_count, 5);
        assert!(!header.has_producer_id());
        let mut bytes = batch.clone();
        let decoded = RecordBatchDecoder::decode(&mut bytes).expect("decode");
        let keys: Vec<_> = decoded
            .records
            .iter()
            .map(|record| record.key.clone())
            .collect();
        assert_eq!(
            keys,
            records
                .iter()
                .map(|record| Some(record.key.clone()))
                .collect::<Vec<_>>()
        );
        assert!(decoded.records[3].value.is_none(), "tombstone kept");
    }
}
