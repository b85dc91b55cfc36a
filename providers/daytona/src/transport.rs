//! The seam between the operations and the host: sending requests and writing debug logs.

use crate::cbx::provider::http::{self, HttpError, Request, Response};
use crate::cbx::provider::log::{self, Level};

/// Sends HTTP requests and records debug lines; the host in production, a fake in tests.
pub trait Transport {
    /// Sends one request and returns the service's response or the host's failure.
    fn send(&self, request: &Request) -> Result<Response, HttpError>;
    /// Records one debug line (never a header or body).
    fn debug(&self, message: &str);
}

/// The real transport: the host's `http` and `log` imports.
pub struct Host;

impl Transport for Host {
    fn send(&self, request: &Request) -> Result<Response, HttpError> {
        http::send(request)
    }

    fn debug(&self, message: &str) {
        log::log(Level::Debug, message);
    }
}
