//! The client's error type.

use passerelle_proto::validate::FieldError;

/// What can go wrong talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint URL is not usable.
    #[error("endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The URL given.
        endpoint: String,
        /// Why it is not usable.
        reason: String,
    },

    /// No connection could be made.
    #[error("cannot reach node at {endpoint}: {detail}")]
    Unreachable {
        /// The URL tried.
        endpoint: String,
        /// The cause, with its chain.
        detail: String,
    },

    /// A value was refused before sending, by the same rules the node applies.
    #[error(transparent)]
    Invalid(#[from] FieldError),

    /// The node answered with an error status.
    #[error("{}", .0.message())]
    Status(tonic::Status),
}

impl Error {
    /// Whether the error is the caller's to fix (bad input, unknown id, conflicting state), as
    /// opposed to the node or the network failing.
    pub fn is_usage(&self) -> bool {
        use tonic::Code;
        match self {
            Error::InvalidEndpoint { .. } | Error::Invalid(_) => true,
            Error::Unreachable { .. } => false,
            Error::Status(s) => matches!(
                s.code(),
                Code::InvalidArgument
                    | Code::NotFound
                    | Code::AlreadyExists
                    | Code::FailedPrecondition
                    | Code::Aborted
                    | Code::OutOfRange
            ),
        }
    }

    /// The gRPC code of a server error, if it is one.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Status(s) => Some(s.code()),
            _ => None,
        }
    }
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message of an error and of every error it wraps, joined by `: `.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
