//! Getting a group request to its coordinator: the shard that owns the group's
//! `__consumer_offsets` partition (see `group_placement`). The request is submitted during
//! dispatch, so a connection's group requests reach the coordinator in request order; the
//! response (possibly held open for a rebalance) is awaited in the completion.

use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::error_codes::{code, ErrorCode};
use super::RequestContext;
use crate::broker::group_placement::{offsets_partition_for, OFFSETS_TOPIC};
use crate::broker::group_runtime::RouteError;
use crate::broker::shard::ShardState;
use crate::group::{self, Input};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// The `__consumer_offsets` partition coordinating `group_id`.
pub fn coordinator_partition(ctx: &RequestContext, group_id: &str) -> i32 {
    offsets_partition_for(
        group_id,
        ctx.shard.broker.config.offsets_topic_num_partitions,
    )
}

/// What a coordinator records about who sent a request: version, client id, and the client's
/// host as Kafka prints it (`/127.0.0.1`).
fn request_identity(ctx: &RequestContext) -> (i16, String, String) {
    let client_id = ctx
        .header
        .client_id
        .as_ref()
        .map(|id| id.to_string())
        .unwrap_or_default();
    (ctx.version(), client_id, format!("/{}", ctx.peer.ip()))
}

/// A response on its way from a coordinator.
pub type PendingGroupResponse = Result<oneshot::Receiver<group::Response>, ErrorCode>;

fn route_error_code(error: RouteError) -> ErrorCode {
    match error {
        RouteError::NotCoordinator => code(ResponseError::NotCoordinator),
        RouteError::Overloaded => code(ResponseError::CoordinatorNotAvailable),
    }
}

/// Submits a request to the coordinator of `partition`. `make_input` builds the coordinator's
/// input from the request context it is given.
pub async fn submit(
    ctx: &RequestContext,
    partition: i32,
    make_input: impl FnOnce(group::RequestContext) -> Input + Send + 'static,
) -> PendingGroupResponse {
    let owner = ctx.shard.owner_of(OFFSETS_TOPIC, partition);
    let (api_version, client_id, client_host) = request_identity(ctx);
    ctx.shard
        .router
        .submit_to(owner, move |state: Rc<ShardState>| async move {
            state
                .groups
                .submit(partition, now_ms(), move |token| {
                    make_input(group::RequestContext {
                        token,
                        api_version,
                        client_id,
                        client_host,
                    })
                })
                .map_err(route_error_code)
        })
        .await
        .unwrap_or_else(|_| Err(code(ResponseError::CoordinatorNotAvailable)))
}

/// Waits for a submitted request's response. A dropped request (its records could not be
/// appended) reads as COORDINATOR_NOT_AVAILABLE, which clients retry.
pub async fn receive(pending: PendingGroupResponse) -> Result<group::Response, ErrorCode> {
    pending?
        .await
        .map_err(|_| code(ResponseError::CoordinatorNotAvailable))
}

/// Submits one input to every coordinator of every shard (ListGroups) and collects the answers.
pub async fn submit_everywhere(
    ctx: &RequestContext,
    make_input: impl Fn(group::RequestContext) -> Input + Send + Sync + Clone + 'static,
) -> Vec<Result<group::Response, ErrorCode>> {
    let mut pending = Vec::new();
    for shard in 0..ctx.shard.router.shard_count() {
        let (api_version, client_id, client_host) = request_identity(ctx);
        let make_input = make_input.clone();
        let receivers = ctx
            .shard
            .router
            .submit_to(shard, move |state: Rc<ShardState>| async move {
                state
                    .groups
                    .partitions()
                    .into_iter()
                    .map(|partition| {
                        let (api_version, client_id, client_host) =
                            (api_version, client_id.clone(), client_host.clone());
                        let make_input = make_input.clone();
                        state
                            .groups
                            .submit(partition, now_ms(), move |token| {
                                make_input(group::RequestContext {
                                    token,
                                    api_version,
                                    client_id,
                                    client_host,
                                })
                            })
                            .map_err(route_error_code)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
        pending.extend(receivers);
    }
    let mut responses = Vec::with_capacity(pending.len());
    for receiver in pending {
        responses.push(receive(receiver).await);
    }
    responses
}

/// Groups `items` by the coordinator partition of their group id, keeping first-seen order.
pub fn split_by_partition<T>(
    ctx: &RequestContext,
    items: Vec<T>,
    group_of: impl Fn(&T) -> String,
) -> Vec<(i32, Vec<T>)> {
    let mut parts: Vec<(i32, Vec<T>)> = Vec::new();
    for item in items {
        let partition = coordinator_partition(ctx, &group_of(&item));
        match parts
            .iter_mut()
            .find(|(existing, _)| *existing == partition)
        {
            Some((_, bucket)) => bucket.push(item),
            None => parts.push((partition, vec![item])),
        }
    }
    parts
}
