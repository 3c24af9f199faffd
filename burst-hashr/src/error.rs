//! The one error enum of `burst-hashr`.

/// Everything that can go wrong in String Hashr's servers, configuration and pub/sub.
///
/// Every message names the offending value and what to do about it. [`Error::kind`] gives a
/// short, stable label for metrics and logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value (usually an environment variable) is invalid.
    #[error("invalid {key}={value:?}: {message}")]
    Config {
        /// The setting, e.g. `REDIS_URL`.
        key: &'static str,
        /// The rejected value.
        value: String,
        /// What is wrong and what a valid value looks like.
        message: String,
    },
    /// The pub/sub backend (Redis) could not be reached or refused a command.
    #[error("{backend} is unavailable: {message}")]
    PubSubUnavailable {
        /// The backend, e.g. `redis at redis://127.0.0.1:6379/`.
        backend: String,
        /// What failed.
        message: String,
    },
    /// A requested load-generator frequency was refused.
    #[error("frequency {input:?} refused: {reason}")]
    InvalidFrequency {
        /// What the user typed.
        input: String,
        /// Why it was refused and what to type instead.
        reason: String,
    },
    /// An HTTP listener could not be bound or failed while serving.
    #[error("cannot serve HTTP on {addr}")]
    Serve {
        /// The address.
        addr: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The outgoing HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

impl Error {
    /// A short, stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::PubSubUnavailable { .. } => "pubsub_unavailable",
            Error::InvalidFrequency { .. } => "invalid_frequency",
            Error::Serve { .. } => "serve",
            Error::HttpClient(_) => "http_client",
        }
    }

    pub(crate) fn config(
        key: &'static str,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Config {
            key,
            value: value.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_value_and_kinds_are_stable() {
        let e = Error::config("PORT", "eighty", "expected a TCP port number such as 8080");
        assert_eq!(
            e.to_string(),
            "invalid PORT=\"eighty\": expected a TCP port number such as 8080"
        );
        assert_eq!(e.kind(), "config");
        let f = Error::InvalidFrequency {
            input: "-3".into(),
            reason: "it is negative".into(),
        };
        assert_eq!(f.kind(), "invalid_frequency");
        assert!(f.to_string().contains("\"-3\""));
    }
}
