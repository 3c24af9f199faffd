//! The one error enum of `burst-scale`.

use burst_core::ScalerError;
use burst_istio::ApiCallError;

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
    /// A call to the Kubernetes API server failed (refused, timed out, unreachable, or
    /// still conflicting after the retries); the message names the object. The same
    /// failures, messages and labels as `burst-istio`'s routers.
    #[error(transparent)]
    Kube(#[from] ApiCallError),
}

impl Error {
    /// A short, stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidOption { .. } => "invalid_option",
            Error::NotFound { .. } => "not_found",
            Error::WrongTarget { .. } => "wrong_target",
            Error::BadAnnotation { .. } => "bad_annotation",
            Error::Kube(e) => e.kind(),
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
    ApiCallError::from_kube(object, action, e).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_label_api_answers_and_survive_the_core_wrapper() {
        let e = Error::from(ApiCallError::Api {
            object: "HorizontalPodAutoscaler ns/w".into(),
            code: 403,
            reason: "Forbidden".into(),
            message: "no".into(),
        });
        assert_eq!(e.kind(), "forbidden");
        assert_eq!(
            e.to_string(),
            "HorizontalPodAutoscaler ns/w: the API server answered 403 Forbidden: no"
        );
        let wrapped = ScalerError::from(e.clone());
        assert_eq!(wrapped.kind(), "forbidden");
        assert_eq!(Error::of(&wrapped), Some(&e));
        assert_eq!(
            Error::from(ApiCallError::Conflict {
                object: "x".into(),
                attempts: 3,
                last: "409".into()
            })
            .kind(),
            "conflict"
        );
        // A 404 stays an API answer here (the scaler looks for the HPA, then the
        // Deployment), labelled by its code.
        let missing = map_kube_error(
            "Deployment ns/w",
            "get",
            kube::Error::Api(
                kube::core::Status::failure("gone", "NotFound")
                    .with_code(404)
                    .boxed(),
            ),
        );
        assert_eq!(missing.kind(), "not_found");
        assert!(matches!(
            missing,
            Error::Kube(ApiCallError::Api { code: 404, .. })
        ));
    }
}
