//! The HTTP API: the router, and one handler module per resource.

pub mod cluster;
pub mod error;
pub mod extract;
pub mod forward;
pub mod health;
pub mod messages;
pub mod queues;
pub mod redrive;
pub mod stream;
pub mod topics;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post, put};
use sluice_client::ErrorCode;

use crate::metrics::{RequestLabels, RouteLabels};
use crate::node::Node;
use error::HttpError;

/// Largest request body: a full batch of the largest messages, base64-encoded, fits.
pub const BODY_LIMIT: usize = 64 << 20;

/// Every route of the client API.
pub fn router(node: Arc<Node>) -> Router {
    let v1 = Router::new()
        .route("/queues", get(queues::list))
        .route(
            "/queues/{queue}",
            put(queues::put).get(queues::get).delete(queues::delete),
        )
        .route(
            "/queues/{queue}/messages",
            post(messages::send).get(messages::query),
        )
        .route("/queues/{queue}/messages/{id}", get(messages::get_message))
        .route("/queues/{queue}/receive", post(messages::receive))
        .route("/queues/{queue}/ack", post(messages::ack))
        .route(
            "/queues/{queue}/visibility",
            post(messages::change_visibility),
        )
        .route(
            "/queues/{queue}/receipts/{receipt}",
            axum::routing::delete(messages::ack_one),
        )
        .route(
            "/queues/{queue}/receipts/{receipt}/visibility",
            put(messages::change_visibility_one),
        )
        .route("/queues/{queue}/peek", get(messages::peek))
        .route("/queues/{queue}/purge", post(queues::purge))
        .route(
            "/queues/{queue}/redrive",
            post(redrive::start)
                .get(redrive::list)
                .delete(redrive::cancel),
        )
        .route("/topics", get(topics::list))
        .route(
            "/topics/{topic}",
            put(topics::put).get(topics::get).delete(topics::delete),
        )
        .route("/topics/{topic}/messages", post(topics::publish))
        .route(
            "/topics/{topic}/subscriptions",
            get(topics::list_subscriptions),
        )
        .route(
            "/topics/{topic}/subscriptions/{sub}",
            put(topics::put_subscription)
                .get(topics::get_subscription)
                .delete(topics::delete_subscription),
        )
        .route(
            "/topics/{topic}/subscriptions/{sub}/messages",
            get(topics::pull),
        )
        .route(
            "/topics/{topic}/subscriptions/{sub}/cursors/{device}",
            put(topics::commit_cursor).get(topics::get_cursor),
        )
        .route(
            "/topics/{topic}/subscriptions/{sub}/stream",
            get(stream::stream),
        )
        .route("/cluster", get(cluster::get))
        .route("/cluster/members", post(cluster::add))
        .route(
            "/cluster/members/{id}",
            axum::routing::delete(cluster::remove),
        )
        .route(
            "/cluster/members/{id}/drain",
            post(cluster::drain).delete(cluster::undrain),
        );
    Router::new()
        .nest("/v1", v1)
        .route("/console", get(crate::console::index))
        .route("/console/{file}", get(crate::console::file))
        .route("/", any(crate::compat::sqs::serve))
        .route(
            "/{account}/{queue}",
            any(crate::compat::sqs::serve_queue_url),
        )
        .route("/queues", any(crate::compat::mns::serve))
        .route("/queues/{*rest}", any(crate::compat::mns::serve))
        .route("/topics", any(crate::compat::mns::serve))
        .route("/topics/{*rest}", any(crate::compat::mns::serve))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(node.clone(), record))
        .layer(middleware::from_fn_with_state(
            node.clone(),
            forward::forward,
        ))
        .layer(middleware::from_fn_with_state(
            node.clone(),
            crate::compat::authenticate,
        ))
        .with_state(node)
}

async fn not_found() -> HttpError {
    HttpError::new(
        ErrorCode::NotFound,
        "no such route; see the API reference in the README",
    )
}

async fn method_not_allowed() -> HttpError {
    HttpError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take that method; see the API reference in the README",
    )
}

/// Counts and times every request by its route.
async fn record(State(node): State<Arc<Node>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    node.metrics
        .request_seconds
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    node.metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
