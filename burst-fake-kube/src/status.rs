//! `Status` bodies, as the real API server sends them with every error.

use serde_json::{Value, json};

/// An API error: HTTP code, `reason` and message, sent as a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `Conflict`, `Invalid`, ...).
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// `details`: group, kind (the plural, as the real server puts it) and name.
    pub details: Option<Box<Details>>,
}

/// The `details` of a `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    /// API group (empty for the core group).
    pub group: String,
    /// Resource plural.
    pub kind: String,
    /// Object name.
    pub name: String,
}

impl ApiError {
    /// An error with the usual reason for `code`.
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason_for(code).to_owned(),
            message: message.into(),
            details: None,
        }
    }

    /// Sets the reason.
    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = reason.to_owned();
        self
    }

    /// Sets the details.
    pub fn details(mut self, group: &str, plural: &str, name: &str) -> Self {
        self.details = Some(Box::new(Details {
            group: group.to_owned(),
            kind: plural.to_owned(),
            name: name.to_owned(),
        }));
        self
    }

    /// `404 NotFound` for an object.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        ApiError::new(
            404,
            format!("{} \"{name}\" not found", group_resource(group, plural)),
        )
        .details(group, plural, name)
    }

    /// `409 Conflict` for a stale resourceVersion.
    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        ApiError::new(
            409,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                group_resource(group, plural)
            ),
        )
        .details(group, plural, name)
    }

    /// `409 AlreadyExists`.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        ApiError::new(
            409,
            format!(
                "{} \"{name}\" already exists",
                group_resource(group, plural)
            ),
        )
        .reason("AlreadyExists")
        .details(group, plural, name)
    }

    /// `400 BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, message)
    }

    /// `422 Invalid` for an object.
    pub fn invalid(group: &str, plural: &str, name: &str, message: impl Into<String>) -> Self {
        ApiError::new(422, message).details(group, plural, name)
    }

    /// The `Status` body.
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
            s["details"] = json!({"name": d.name, "group": d.group, "kind": d.kind});
        }
        s
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// `virtualservices.networking.istio.io`, or `pods` for the core group.
pub fn group_resource(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    }
}

/// The reason the real API server gives for an HTTP code.
pub fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_body_matches_the_real_shape() {
        let s = ApiError::not_found("networking.istio.io", "virtualservices", "w").to_status();
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(
            s["message"],
            "virtualservices.networking.istio.io \"w\" not found"
        );
        assert_eq!(s["details"]["kind"], "virtualservices");
    }
}
