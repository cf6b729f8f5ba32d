//! The one error/acknowledgement shape of the API.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sftpgo_provider::ProviderError;

/// `{"error": "<cause or empty>", "message": "<text>", "status": <code>}`.
#[derive(Debug, Serialize)]
pub struct ApiResponse {
    pub error: String,
    pub message: String,
    pub status: u16,
}

impl ApiResponse {
    pub fn new(status: StatusCode, error: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            message: message.into(),
            status: status.as_u16(),
        }
    }

    pub fn ok(message: &str) -> Self {
        Self::new(StatusCode::OK, "", message)
    }

    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, "")
    }
}

impl IntoResponse for ApiResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self)).into_response()
    }
}

impl From<ProviderError> for ApiResponse {
    fn from(e: ProviderError) -> Self {
        let status = match &e {
            ProviderError::NotFound(_) => StatusCode::NOT_FOUND,
            ProviderError::AlreadyExists(_) | ProviderError::FolderExists(_) => {
                StatusCode::CONFLICT
            }
            ProviderError::Validation(_) | ProviderError::InvalidField { .. } => {
                StatusCode::BAD_REQUEST
            }
            ProviderError::ReadOnly => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::warn!(sender = "httpd", error = %e, "data provider error");
        }
        Self::new(status, e.to_string(), "")
    }
}
