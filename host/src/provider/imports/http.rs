//! The host side of `cbx:provider/http`: every request a provider names goes to the
//! [`HttpGateway`](crate::grant::http::HttpGateway), which checks it against the grant,
//! attaches credentials and performs it. Each request is logged, reported to the observer
//! (the audit log) and remembered; the first denial of a call ends the call.

use std::time::Duration;

use crate::grant::http::{HttpFailure, OutboundRequest};
use crate::provider::bindings::cbx::provider::http as wit_http;
use crate::provider::events::ProviderEvent;
use crate::provider::store::HostState;
use crate::terminal::inert;

impl wit_http::Host for HostState {
    async fn send(
        &mut self,
        request: wit_http::Request,
    ) -> Result<wit_http::Response, wit_http::HttpError> {
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
        match result {
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
        }
    }
}
