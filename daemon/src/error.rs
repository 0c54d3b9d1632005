//! The daemon's error type and its mapping to gRPC statuses.
//!
//! Every failure a handler can meet is one variant here, so the mapping to a `tonic::Status` is
//! written once ([`From<Error> for tonic::Status`]) and a client always gets the right code:
//! `INVALID_ARGUMENT` for a broken rule, `NOT_FOUND`, `ALREADY_EXISTS`, `ABORTED` for a version
//! conflict, `FAILED_PRECONDITION` for a request the current state forbids, `INTERNAL` for storage.

use std::path::PathBuf;

use passerelle_proto::validate::FieldError;

/// Everything that can go wrong in the daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A wire value breaks a domain rule; the message names the field and the rule.
    #[error(transparent)]
    Invalid(#[from] FieldError),

    /// Rows of an import break rules; nothing was written. Every bad row is listed.
    #[error("{}", rows_message(.0))]
    InvalidRows(Vec<passerelle_proto::validate::RowError>),

    /// A record the request names does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// The kind of record ("need", "person").
        what: &'static str,
        /// The id that was asked for.
        id: String,
    },

    /// The request would create something that already exists.
    #[error("{0}")]
    AlreadyExists(String),

    /// An optimistic-concurrency check failed (`expected_version`).
    #[error("{what} {id} is at version {actual}, not {expected}")]
    VersionConflict {
        /// The kind of record.
        what: &'static str,
        /// Its id.
        id: String,
        /// The version the caller expected.
        expected: u64,
        /// The version stored.
        actual: u64,
    },

    /// The caller may not do this (role, identity or membership).
    #[error("{0}")]
    PermissionDenied(String),

    /// The request is well formed but the current state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),

    /// A peer could not be reached or did not answer in time.
    #[error("{0}")]
    Unavailable(String),

    /// The configuration is invalid; the message names the file, line and field.
    #[error("{0}")]
    Config(String),

    /// The storage engine failed.
    #[error("storage: {0}")]
    Store(#[from] crate::store::StoreError),

    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path or address.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The data directory does not belong to this configuration or this version.
    #[error("data_dir {}: {reason}", path.display())]
    DataDir {
        /// The data directory.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },

    /// The gRPC server failed.
    #[error("server: {0}")]
    Transport(#[from] tonic::transport::Error),

    /// The embedded descriptors could not be served by gRPC reflection (a build defect).
    #[error("reflection descriptors: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),

    /// A blocking task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),

    /// A limit was reached (a rate, a count); the message names it.
    #[error("{0}")]
    ResourceExhausted(String),

    /// A hub refused a call made on the caller's behalf; its code is passed on.
    #[error("hub {hub}: {message}")]
    HubRefused {
        /// The hub.
        hub: String,
        /// Its status code.
        code: tonic::Code,
        /// Its message.
        message: String,
    },

    /// A bug or a broken invariant (logged, never detailed to callers).
    #[error("internal: {0}")]
    Internal(String),
}

impl From<crate::store::OpenError> for Error {
    fn from(err: crate::store::OpenError) -> Self {
        match err {
            crate::store::OpenError::DataDir { path, reason } => Self::DataDir { path, reason },
            crate::store::OpenError::Store(e) => Self::Store(e),
        }
    }
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }
}

/// How many bad rows a refused import's message lists before it only counts the rest (a status
/// message travels in an HTTP/2 header, which must stay small).
const ROWS_LISTED: usize = 50;

fn rows_message(rows: &[passerelle_proto::validate::RowError]) -> String {
    let mut text = format!("{} invalid row(s), nothing imported", rows.len());
    for row in rows.iter().take(ROWS_LISTED) {
        text.push_str("; ");
        text.push_str(&row.to_string());
    }
    if rows.len() > ROWS_LISTED {
        text.push_str(&format!("; and {} more", rows.len() - ROWS_LISTED));
    }
    text
}

/// The message of an error and of every error it wraps: the client's rendering, so both ends
/// report a chain alike.
pub(crate) use passerelle_client::chain;

/// The daemon's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        use tonic::Code;
        let code = match &err {
            Error::Invalid(_) | Error::InvalidRows(_) => Code::InvalidArgument,
            Error::NotFound { .. } => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::VersionConflict { .. } => Code::Aborted,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Unavailable(_) => Code::Unavailable,
            Error::ResourceExhausted(_) => Code::ResourceExhausted,
            Error::HubRefused { code, .. } => *code,
            Error::Internal(_)
            | Error::Config(_)
            | Error::Store(_)
            | Error::Io { .. }
            | Error::DataDir { .. }
            | Error::Reflection(_)
            | Error::Transport(_)
            | Error::Task(_) => {
                // Internal details go to the operator's log, not to the caller.
                tracing::error!(error = %err, "internal error");
                return tonic::Status::internal("internal error, see the daemon's log");
            }
        };
        tonic::Status::new(code, err.to_string())
    }
}
