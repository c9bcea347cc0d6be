//! The lab's one error type, [`LabError`], returned across the crate's public API.
//!
//! Ids (paths, addresses, operations, resource names) live in fields; underlying causes are
//! attached as `#[source]` and never repeated in the message, so error chains print each fact
//! once.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A boxed cause from another library (AWS SDK, hyper, TOML, …).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A file-system or process operation failed.
    #[error("{action}")]
    Io {
        /// What the lab was doing, with the path or command involved.
        action: String,
        #[source]
        source: std::io::Error,
    },
    /// The Python environment for moto could not be created.
    #[error(
        "python3 with venv/pip is required: apt-get install python3-venv \
         (installing {requirement} into {} failed; output tail:\n{output_tail})",
        venv.display()
    )]
    PythonEnv {
        venv: PathBuf,
        requirement: String,
        output_tail: String,
    },
    /// No cache directory could be determined.
    #[error("no cache directory: set PILOTLIGHT_CACHE_DIR, XDG_CACHE_HOME or HOME")]
    NoCacheDir,
    /// moto exited before it became ready.
    #[error("moto on {addr} exited during start-up ({status}); stderr tail:\n{stderr_tail}")]
    MotoExited {
        addr: SocketAddr,
        status: String,
        stderr_tail: String,
    },
    /// moto did not answer `GET /moto-api/config` before the deadline.
    #[error("moto on {addr} was not ready within {deadline_secs} s; stderr tail:\n{stderr_tail}")]
    MotoNotReady {
        addr: SocketAddr,
        deadline_secs: u64,
        stderr_tail: String,
    },
    /// A moto management call answered with an unexpected status.
    #[error("moto {method} {path} on {addr} answered HTTP {status}")]
    MotoApi {
        addr: SocketAddr,
        method: &'static str,
        path: &'static str,
        status: u16,
    },
    /// The proxy's options are unusable.
    #[error("invalid proxy options: {reason}")]
    InvalidOptions { reason: String },
    /// An endpoint URL could not be parsed.
    #[error("invalid endpoint {endpoint:?}: expected http://HOST:PORT")]
    InvalidEndpoint { endpoint: String },
    /// An HTTP call to the lab's proxy failed in transport.
    #[error("HTTP {method} {url} failed")]
    Http {
        method: &'static str,
        url: String,
        #[source]
        source: BoxError,
    },
    /// The proxy's admin API answered with an error status.
    #[error("HTTP {method} {url} answered {status}: {body}")]
    AdminApi {
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },
    /// A JSON document could not be read or written.
    #[error("JSON for {what}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// An estate spec could not be parsed.
    #[error("estate spec {origin} could not be parsed")]
    SpecParse {
        /// The file name or format the spec came from.
        origin: String,
        #[source]
        source: BoxError,
    },
    /// An estate spec is inconsistent; every problem found is listed.
    #[error("invalid estate spec: {}", problems.join("; "))]
    InvalidSpec { problems: Vec<String> },
    /// An AWS call made by the lab (seeding) failed.
    #[error("{operation} for {resource} in {region} failed")]
    Aws {
        operation: &'static str,
        resource: String,
        region: String,
        #[source]
        source: BoxError,
    },
    /// An AWS answer lacked a field the lab needs.
    #[error("{operation} for {resource} returned no {field}")]
    MissingField {
        operation: &'static str,
        resource: String,
        field: &'static str,
    },
}

impl LabError {
    pub(crate) fn io(action: impl Into<String>, source: std::io::Error) -> LabError {
        LabError::Io {
            action: action.into(),
            source,
        }
    }
}
