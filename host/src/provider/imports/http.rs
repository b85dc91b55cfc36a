//! The host side of `cbx:provider/http`: every request a provider names goes to the
//! [`HttpGateway`](crate::grant::http::HttpGateway), which checks it against the grant,
//! attaches credentials and performs it. Each request is logged, reported to the observer
//! (the audit log) and remembered.
//!
//! Before that, the request must fit the provider's request caps (per call and per run) and
//! the boundary's size caps; one that does not traps the call at once — it is audited once,
//! as the call's limit hit, and nothing is sent. The first denial ends the call too: later
//! requests of the same call are refused without being sent or audited again.

use std::time::Duration;

use crate::grant::http::{HttpFailure, OutboundRequest};
use crate::provider::bindings::cbx::provider::http as wit_http;
use crate::provider::bounds;
use crate::provider::events::ProviderEvent;
use crate::provider::limits::LimitHit;
use crate::provider::store::HostState;
use crate::terminal::inert;

impl wit_http::Host for HostState {
    async fn send(
        &mut self,
        request: wit_http::Request,
    ) -> wasmtime::Result<Result<wit_http::Response, wit_http::HttpError>> {
        self.admit(&request)?;
        if let Some(d) = &self.denial {
            return Ok(Err(wit_http::HttpError::Denied(format!(
                "an earlier request of this call was denied ({} {}); the call may send nothing more",
                d.method, d.url
            ))));
        }
        let method = match request.method {
            wit_http::Method::Get => "GET",
            wit_http::Method::Head => "HEAD",
            wit_http::Method::Post => "POST",
            wit_http::Method::Put => "PUT",
            wit_http::Method::Patch => "PATCH",
            wit_http::Method::Delete => "DELETE",
        };
        let outbound = OutboundRequest {
            method: method.to_string(),
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout: request
                .timeout_ms
                .map(|ms| Duration::from_millis(ms.into())),
        };
        let (result, events) = self.gateway.send(outbound, self.budget.deadline).await;
        for mut event in events {
            event.operation = self.op;
            tracing::debug!(
                provider = %self.provider,
                method = %event.method,
                url = %inert(&event.url),
                status = ?event.status,
                bytes = event.bytes,
                credentials = ?event.credentials,
                outcome = event.outcome.as_str(),
                millis = event.millis,
                "provider http request"
            );
            if let Some(observer) = &self.observer {
                observer(&ProviderEvent::Http(event.clone()));
            }
            self.events.push(event);
        }
        Ok(match result {
            Ok(r) => Ok(wit_http::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(HttpFailure::Denied(d)) => {
                let text = d.to_string();
                if self.denial.is_none() {
                    self.denial = Some(d);
                }
                Err(wit_http::HttpError::Denied(text))
            }
            Err(HttpFailure::Timeout(m)) => Err(wit_http::HttpError::Timeout(m)),
            Err(HttpFailure::Connect(m)) => Err(wit_http::HttpError::Connect(m)),
            Err(HttpFailure::TooLarge(cap)) => Err(wit_http::HttpError::TooLarge(cap)),
            Err(HttpFailure::Invalid(m)) => Err(wit_http::HttpError::InvalidRequest(m)),
            Err(HttpFailure::Other(m)) => Err(wit_http::HttpError::Other(m)),
        })
    }
}

impl HostState {
    /// Counts `request` against the request caps and checks its size; a trap naming the cap
    /// if it does not fit.
    fn admit(&mut self, request: &wit_http::Request) -> wasmtime::Result<()> {
        let caps = self.gateway.grant().requests;
        self.requests = self.requests.saturating_add(1);
        if self.requests > caps.per_call {
            return Err(wasmtime::Error::new(LimitHit::Requests {
                cap: caps.per_call,
                per_call: true,
            }));
        }
        if self.run.count_request() > caps.per_run {
            return Err(wasmtime::Error::new(LimitHit::Requests {
                cap: caps.per_run,
                per_call: false,
            }));
        }
        bounds::request(request).map_err(wasmtime::Error::new)
    }
}
