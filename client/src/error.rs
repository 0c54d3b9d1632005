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
    #[error("cannot reach {what} at {endpoint}: {detail}")]
    Unreachable {
        /// What was being reached ("node", "hub").
        what: &'static str,
        /// The URL tried.
        endpoint: String,
        /// The cause, with its chain.
        detail: String,
    },

    /// A value was refused before sending, by the same rules the node applies.
    #[error(transparent)]
    Invalid(#[from] FieldError),

    /// The peer answered with an error status.
    #[error("{}", .0.message())]
    Status(tonic::Status),

    /// The audit log's hash chain is broken.
    #[error("{0}")]
    AuditBroken(String),

    /// An import file cannot be imported as it is; nothing was imported.
    #[error("{}", invalid_file(path, problems))]
    InvalidFile {
        /// The file, as given.
        path: String,
        /// Every problem found, by line.
        problems: Vec<crate::import::Problem>,
    },

    /// A local file could not be read.
    #[error("{path}: {source}")]
    File {
        /// The file, as given.
        path: String,
        /// The cause.
        source: std::io::Error,
    },

    /// A PKI operation failed.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
}

impl Error {
    /// Whether the error is the caller's to fix (bad input, unknown id, conflicting state), as
    /// opposed to the node or the network failing.
    pub fn is_usage(&self) -> bool {
        use tonic::Code;
        match self {
            Error::InvalidEndpoint { .. }
            | Error::Invalid(_)
            | Error::InvalidFile { .. }
            | Error::File { .. } => true,
            Error::Unreachable { .. } | Error::AuditBroken(_) => false,
            Error::Pki(e) => matches!(e, crate::pki::PkiError::Invalid(_) | crate::pki::PkiError::Exists(_)),
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

    /// A status from `what` at `endpoint`: `UNAVAILABLE` means it could not be reached.
    pub fn from_status(status: tonic::Status, what: &'static str, endpoint: &str) -> Self {
        use std::error::Error as _;
        // A status the server sent has no source; one made on this side from a transport failure
        // (a refused TLS handshake, a reset connection) has. With TLS 1.3 the server checks the
        // client certificate after the client is done, so a refusal surfaces on the first call.
        if status.code() != tonic::Code::Unavailable && status.source().is_none() {
            return Error::Status(status);
        }
        let mut detail = match status.source() {
            Some(source) => format!("{}: {}", status.message(), chain(source)),
            None => status.message().to_string(),
        };
        let connected = !detail.contains("tcp connect error") && !detail.contains("Connection refused");
        if endpoint.starts_with("http://") && status.source().is_some() && connected {
            // TCP worked but the exchange broke: typically a plaintext client on a TLS port, which
            // shows as an HTTP/2 error, a broken pipe or a reset depending on timing.
            detail.push_str(" (is this a TLS port? use https:// with --ca, --cert and --key)");
        }
        Error::Unreachable { what, endpoint: endpoint.to_string(), detail }
    }

    /// The gRPC code of a server error, if it is one.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Status(s) => Some(s.code()),
            _ => None,
        }
    }
}

/// How a refused file reads: a summary line, then one indented line per problem.
fn invalid_file(path: &str, problems: &[crate::import::Problem]) -> String {
    let rows: std::collections::BTreeSet<u32> = problems.iter().map(|p| p.line).collect();
    let mut text =
        format!("{path}: {} problem(s) on {} line(s), nothing imported", problems.len(), rows.len());
    for problem in problems {
        text.push_str(&format!("\n  {problem}"));
    }
    text
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message of an error and of every error it wraps, joined by `: ` (repeats skipped). The
/// daemon reports its own transport failures with it too: one rendering of an error chain.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
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
