//! The JSON error every HTTP failure answers with: `{"error": "...", "field": "..."}`.
//!
//! Building the response also logs the rejection (inside the request's span, which
//! names the route), so that every refused request leaves a reason in the log.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub field: Option<String>,
    /// Seconds for a `Retry-After` header (503).
    pub retry_after: Option<u32>,
    /// For 401: ask for credentials.
    pub challenge: bool,
    /// For 409: the record's current status.
    pub current: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            field: None,
            retry_after: None,
            challenge: false,
            current: None,
        }
    }

    /// Names the record's current status (409).
    pub fn current(mut self, status: impl Into<String>) -> Self {
        self.current = Some(status.into());
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(field: impl Into<String>, error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, error).field(field)
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, what)
    }

    pub fn unavailable(error: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(5),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), error = %self.error, "request failed");
        } else {
            tracing::warn!(status = self.status.as_u16(), field = self.field.as_deref().unwrap_or(""),
                error = %self.error, "request rejected");
        }
        let body = Body {
            error: &self.error,
            field: self.field.as_deref(),
            current: self.current.as_deref(),
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.challenge {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"triaged\""),
            );
        }
        resp
    }
}
