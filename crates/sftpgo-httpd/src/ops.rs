//! Endpoints for operators rather than API clients: the Prometheus scrape target and the
//! load balancers' health check. They live outside `/api/v1` (the paths tools expect).

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiResponse;

/// How long the health check waits for the data provider.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /metrics`: the OpenMetrics text format Prometheus scrapes.
pub async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.core.render_metrics(),
    )
        .into_response()
}

/// `GET /healthz`: 200 when the data provider answers, 503 otherwise.
pub async fn healthz(State(s): State<AppState>) -> ApiResponse {
    match tokio::time::timeout(HEALTH_TIMEOUT, s.core.provider().ping()).await {
        Ok(Ok(())) => ApiResponse::ok("the data provider answers"),
        Ok(Err(e)) => {
            tracing::warn!(sender = "httpd", error = %e, "health check: data provider error");
            ApiResponse::new(
                StatusCode::SERVICE_UNAVAILABLE,
                e.to_string(),
                "the data provider does not answer",
            )
        }
        Err(_) => {
            tracing::warn!(
                sender = "httpd",
                timeout_secs = HEALTH_TIMEOUT.as_secs(),
                "health check: data provider timed out"
            );
            ApiResponse::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the data provider does not answer",
            )
        }
    }
}
