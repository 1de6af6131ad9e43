//! InitProducerId (key 22, v0–v4): a producer id and epoch for an idempotent producer.
//! Transactions are not supported: a transactional id is refused.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::error_codes::{code, NONE};
use super::{RequestContext, ResponseFuture};
use crate::network::Response;

pub async fn handle(ctx: RequestContext, request: InitProducerIdRequest) -> ResponseFuture {
    Box::pin(init_producer_id(ctx, request))
}

async fn init_producer_id(ctx: RequestContext, request: InitProducerIdRequest) -> Response {
    let response = if request.transactional_id.is_some() {
        InitProducerIdResponse::default()
            .with_error_code(code(ResponseError::TransactionalIdAuthorizationFailed))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    } else if request.producer_id.0 >= 0
        && request.producer_epoch >= 0
        && request.producer_epoch < i16::MAX - 1
    {
        // KIP-360: an idempotent producer re-initialising after an error bumps its epoch, which
        // restarts its sequences on every partition.
        InitProducerIdResponse::default()
            .with_error_code(NONE)
            .with_producer_id(request.producer_id)
            .with_producer_epoch(request.producer_epoch + 1)
    } else {
        match ctx.shard.broker.producer_ids.allocate().await {
            Ok(id) => InitProducerIdResponse::default()
                .with_error_code(NONE)
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0),
            Err(error) => {
                tracing::error!(%error, "producer id allocation failed");
                InitProducerIdResponse::default()
                    .with_error_code(code(ResponseError::CoordinatorNotAvailable))
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
            }
        }
    };
    ctx.respond(&response)
}
