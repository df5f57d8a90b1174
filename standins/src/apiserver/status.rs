//! Kubernetes `Status` errors.

use serde_json::{json, Value};

use super::store::Kind;
use crate::net::Response;

#[derive(Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String) -> ApiError {
        ApiError {
            code,
            reason,
            message,
            details: None,
        }
    }

    fn with_details(mut self, kind: &Kind, name: &str) -> ApiError {
        let mut d = json!({ "name": name, "kind": kind.plural });
        if !kind.group.is_empty() {
            d["group"] = json!(kind.group);
        }
        self.details = Some(d);
        self
    }

    pub fn not_found(kind: &Kind, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", kind.qualified()),
        )
        .with_details(kind, name)
    }

    pub fn already_exists(kind: &Kind, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", kind.qualified()),
        )
        .with_details(kind, name)
    }

    pub fn conflict(kind: &Kind, name: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: the object has been modified; \
                 please apply your changes to the latest version and try again",
                kind.qualified()
            ),
        )
        .with_details(kind, name)
    }

    pub fn invalid(kind: &Kind, name: &str, message: String) -> ApiError {
        ApiError::new(
            422,
            "Invalid",
            format!("{} {name:?} is invalid: {message}", kind.kind),
        )
        .with_details(kind, name)
    }

    pub fn forbidden(message: String) -> ApiError {
        ApiError::new(403, "Forbidden", message)
    }

    pub fn bad_request(message: String) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn not_found_path(path: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path}; stand-in)"),
        )
    }

    pub fn method_not_allowed(message: String) -> ApiError {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media(message: String) -> ApiError {
        ApiError::new(415, "UnsupportedMediaType", message)
    }

    pub fn unavailable(message: String) -> ApiError {
        ApiError::new(503, "ServiceUnavailable", message)
    }

    pub fn internal(message: String) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }

    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }

    pub fn response(&self) -> Response {
        Response::json(self.code, &self.to_status())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        ApiError::internal(format!("{e:#}"))
    }
}
