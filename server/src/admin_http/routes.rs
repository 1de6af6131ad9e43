//! The admin API's endpoints. Each answers from what the shards report by message, with a
//! deadline, so a stuck shard makes a probe fail instead of hang.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};

use super::AdminState;
use crate::broker::shard::ShardState;
use crate::metrics::{self, BrokerSnapshot};

/// How long a scrape or a readiness probe waits for every shard to answer.
const SHARDS_TIMEOUT: Duration = Duration::from_secs(5);

pub const METRICS_PATH: &str = "/metrics";
pub const READY_PATH: &str = "/v1/status/ready";
pub const LIVE_PATH: &str = "/v1/status/live";

pub async fn route<B>(state: &AdminState, request: &Request<B>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is served\n".into(),
        );
    }
    match request.uri().path() {
        LIVE_PATH => text(StatusCode::OK, "live\n".into()),
        READY_PATH => match readiness(state).await {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            ),
        },
        METRICS_PATH => match scrape(state).await {
            Ok(body) => Response::builder()
                .status(StatusCode::OK)
                .header(hyper::header::CONTENT_TYPE, metrics::CONTENT_TYPE)
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, String::new())),
            Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            format!("not found; try {METRICS_PATH}, {READY_PATH} or {LIVE_PATH}\n"),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Ready once the broker serves (logs recovered, registered, listeners up) and every shard's
/// group coordinators have loaded.
async fn readiness(state: &AdminState) -> Result<(), String> {
    let router = state.router().ok_or("the shards are starting")?;
    if !state.is_serving() {
        return Err("the broker is starting or stopping".into());
    }
    for shard in 0..router.shard_count() {
        let asked = router.submit_to(shard, |state: Rc<ShardState>| async move {
            metrics::shard_ready(&state)
        });
        match tokio::time::timeout(SHARDS_TIMEOUT, asked).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return Err(format!("shard {shard} is loading groups or stopping")),
            Ok(Err(_)) => return Err(format!("shard {shard} has stopped")),
            Err(_) => return Err(format!("shard {shard} did not answer")),
        }
    }
    Ok(())
}

/// Every shard's metrics (asked all at once) with the process's.
async fn scrape(state: &AdminState) -> Result<String, String> {
    let mut snapshot = BrokerSnapshot {
        shards: Vec::new(),
        process: metrics::process::read_process_stats(),
        leader_elections: metrics::leader_elections(),
    };
    if let Some(router) = state.router() {
        let asks = (0..router.shard_count()).map(|shard| {
            router.submit_to(shard, move |state: Rc<ShardState>| async move {
                metrics::gather(&state, shard == 0)
            })
        });
        let answers = tokio::time::timeout(
            SHARDS_TIMEOUT,
            strom_engine::runtime::join_all(asks.collect()),
        )
        .await
        .map_err(|_| "a shard did not answer the scrape in time".to_string())?;
        // A stopped shard (the broker is going down) is left out.
        snapshot.shards.extend(answers.into_iter().flatten());
    }
    metrics::encode(snapshot).map_err(|error| format!("encoding the metrics failed: {error}"))
}
