//! The one error enum of `burst-scale`.

use std::time::Duration;

use burst_core::ScalerError;

/// Everything that can go wrong preparing or releasing the burst side.
///
/// Each message names the object, the offending value and what to do about it.
/// [`Error::kind`] gives a short, stable label for logs and metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option given to the scaler is invalid.
    #[error("invalid {what} `{value}`: {problem}")]
    InvalidOption {
        /// Which option.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and what is expected.
        problem: String,
    },
    /// Neither the HorizontalPodAutoscaler nor the Deployment exists.
    #[error(
        "{object} not found (and no HorizontalPodAutoscaler `{hpa}` either); create the burst Deployment first, or check the namespace and names"
    )]
    NotFound {
        /// The Deployment.
        object: String,
        /// The HPA name looked for.
        hpa: String,
    },
    /// The HorizontalPodAutoscaler found scales something else than the burst Deployment.
    #[error(
        "{object} scales {target_kind} `{target_name}`, not Deployment `{deployment}`; name the HPA of the burst Deployment (option `hpa`), or fix its scaleTargetRef"
    )]
    WrongTarget {
        /// The HPA.
        object: String,
        /// `scaleTargetRef.kind`.
        target_kind: String,
        /// `scaleTargetRef.name`.
        target_name: String,
        /// The burst Deployment.
        deployment: String,
    },
    /// The pre-warm annotation holds something this scaler did not write.
    #[error(
        "{object}: annotation `{key}` = `{value}` is not a pre-warm record ({problem}); set the replicas back by hand and remove the annotation"
    )]
    BadAnnotation {
        /// The object.
        object: String,
        /// The annotation key.
        key: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The API server refused a request.
    #[error("{object}: the API server answered {code} {reason}: {message}")]
    Api {
        /// The object.
        object: String,
        /// HTTP status code.
        code: u16,
        /// The Status reason (`Invalid`, `Forbidden`, `InternalError`, ...).
        reason: String,
        /// The Status message.
        message: String,
    },
    /// The object kept changing between read and write; retries are exhausted.
    #[error(
        "{object}: still conflicting after {attempts} attempts (the object changed between read and write each time; last answer: {last}); try again, or find the other writer"
    )]
    Conflict {
        /// The object.
        object: String,
        /// Attempts made.
        attempts: u32,
        /// The last conflict message.
        last: String,
    },
    /// The API server did not answer in time.
    #[error("{object}: the API server did not answer {action} within {after:?}")]
    Timeout {
        /// The object.
        object: String,
        /// `get` or `patch`.
        action: &'static str,
        /// The request timeout.
        after: Duration,
    },
    /// The API server could not be reached, or the connection broke.
    #[error("{object}: cannot {action} it: connection to the API server failed: {detail}")]
    Connection {
        /// The object.
        object: String,
        /// `get` or `patch`.
        action: &'static str,
        /// The client's description of the failure.
        detail: String,
    },
    /// Any other client-side failure (building the request, decoding the answer).
    #[error("{object}: cannot {action} it: {detail}")]
    Client {
        /// The object.
        object: String,
        /// `get` or `patch`.
        action: &'static str,
        /// The client's description of the failure.
        detail: String,
    },
}

impl Error {
    /// A short, stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidOption { .. } => "invalid_option",
            Error::NotFound { .. } => "not_found",
            Error::WrongTarget { .. } => "wrong_target",
            Error::BadAnnotation { .. } => "bad_annotation",
            Error::Api { code, .. } => match code {
                401 => "unauthorized",
                403 => "forbidden",
                404 => "not_found",
                409 => "conflict",
                422 => "invalid",
                500..=599 => "server",
                _ => "api",
            },
            Error::Conflict { .. } => "conflict",
            Error::Timeout { .. } => "timeout",
            Error::Connection { .. } => "connection",
            Error::Client { .. } => "client",
        }
    }

    /// The `burst-scale` error inside a [`ScalerError`], if it holds one.
    pub fn of(e: &ScalerError) -> Option<&Error> {
        e.inner().downcast_ref::<Error>()
    }
}

impl From<Error> for ScalerError {
    fn from(e: Error) -> Self {
        ScalerError::new(e.kind(), e)
    }
}

/// Turns a client error into ours, naming the object.
pub(crate) fn map_kube_error(object: &str, action: &'static str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(status) => Error::Api {
            object: object.to_owned(),
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
        },
        kube::Error::HyperError(e) => Error::Connection {
            object: object.to_owned(),
            action,
            detail: burst_core::error_chain(&e),
        },
        kube::Error::Service(e) => Error::Connection {
            object: object.to_owned(),
            action,
            detail: burst_core::error_chain(e.as_ref()),
        },
        other => Error::Client {
            object: object.to_owned(),
            action,
            detail: burst_core::error_chain(&other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_label_api_answers_and_survive_the_core_wrapper() {
        let e = Error::Api {
            object: "HorizontalPodAutoscaler ns/w".into(),
            code: 403,
            reason: "Forbidden".into(),
            message: "no".into(),
        };
        assert_eq!(e.kind(), "forbidden");
        let wrapped = ScalerError::from(e.clone());
        assert_eq!(wrapped.kind(), "forbidden");
        assert_eq!(Error::of(&wrapped), Some(&e));
        assert_eq!(
            Error::Conflict {
                object: "x".into(),
                attempts: 3,
                last: "409".into()
            }
            .kind(),
            "conflict"
        );
    }
}
