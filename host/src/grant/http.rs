//! Performs the HTTP requests providers ask for, within their grant.
//!
//! Each request and each redirect hop is checked by [`egress::authorize`]; redirects are
//! followed only while they stay inside the grant (at most [`MAX_REDIRECTS`]); response bodies
//! are capped at [`HttpLimits::max_response_bytes`]; every request is bounded in time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::Grant;
use super::egress::{self, Denial, Refusal};
use crate::redact::Redactor;

/// Redirect hops followed per request.
pub const MAX_REDIRECTS: usize = 5;

/// Limits applied to provider HTTP traffic.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: u64,
    /// Timeout when the provider names none.
    pub default_timeout: Duration,
    /// Largest timeout a provider may ask for.
    pub max_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_response_bytes: 8 << 20,
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(120),
        }
    }
}

/// A request as a provider asks for it.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    /// Upper-case method name.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Option<Vec<u8>>,
    /// Requested timeout.
    pub timeout: Option<Duration>,
}

/// A response handed back to the provider.
#[derive(Debug, Clone)]
pub struct InboundResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// Why no response could be delivered.
#[derive(Debug, Clone)]
pub enum HttpFailure {
    /// The grant forbids the request (or a redirect it led to).
    Denied(Denial),
    /// No response within the time allowed.
    Timeout(String),
    /// Connection failure.
    Connect(String),
    /// The body exceeded the cap (the cap, in bytes).
    TooLarge(u64),
    /// A malformed request.
    Invalid(String),
    /// Anything else.
    Other(String),
}

/// How one provider request ended: a word of the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpOutcome {
    /// A response arrived (whatever its status).
    Ok,
    /// A redirect, followed as a request of its own.
    Redirect,
    /// The grant refused it; it never left the machine.
    Denied,
    /// The response body was over the cap.
    TooLarge,
    /// No response in time.
    Timeout,
    /// No connection.
    Connect,
    /// A malformed request.
    Invalid,
    /// Anything else.
    Error,
}

impl HttpOutcome {
    /// The word as the audit log writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpOutcome::Ok => "ok",
            HttpOutcome::Redirect => "redirect",
            HttpOutcome::Denied => "denied",
            HttpOutcome::TooLarge => "too-large",
            HttpOutcome::Timeout => "timeout",
            HttpOutcome::Connect => "connect",
            HttpOutcome::Invalid => "invalid",
            HttpOutcome::Error => "error",
        }
    }
}

/// What happened to one provider request; the raw material of logs and the audit trail.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpEvent {
    /// The provider.
    pub provider: String,
    /// The provider operation that made the request (set by the caller).
    pub operation: &'static str,
    /// Method.
    pub method: String,
    /// URL with its query string (credential-like parameter values redacted).
    pub url: String,
    /// Final status, if a response arrived.
    pub status: Option<u16>,
    /// Response body bytes received.
    pub bytes: u64,
    /// Credentials attached (names, never values).
    pub credentials: Vec<String>,
    /// How it ended.
    pub outcome: HttpOutcome,
    /// Details for failures.
    pub detail: Option<String>,
    /// How long it took, in milliseconds.
    pub millis: u64,
}

/// Sends provider requests within one provider's grant.
#[derive(Clone)]
pub struct HttpGateway {
    client: reqwest::Client,
    grant: Arc<Grant>,
    limits: HttpLimits,
    redactor: Redactor,
    /// An answer to give the next request instead of sending it (after the grant allowed
    /// it): how `cbx providers test` shows a provider the service's error answers.
    rehearsed: Arc<std::sync::Mutex<Option<InboundResponse>>>,
    /// What [`HttpGateway::scrub_credentials`] looks for: made at the first response (a
    /// command that sends nothing does not pay for it), shared by the gateway's clones.
    secret_forms: Arc<std::sync::OnceLock<Vec<String>>>,
}

impl HttpGateway {
    /// A gateway for `grant`.
    pub fn new(grant: Arc<Grant>, limits: HttpLimits, redactor: Redactor) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cbx/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(HttpGateway {
            client,
            grant,
            limits,
            redactor,
            rehearsed: Arc::default(),
            secret_forms: Arc::default(),
        })
    }

    /// Answers the next request this gateway (or a clone) allows with `response` instead of
    /// sending it. The request is still checked against the grant; the audit log records it
    /// with the rehearsed status and says it was not sent.
    pub fn rehearse(&self, response: InboundResponse) {
        *self.rehearsed.lock().unwrap_or_else(|e| e.into_inner()) = Some(response);
    }

    fn take_rehearsed(&self) -> Option<InboundResponse> {
        self.rehearsed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// The grant this gateway enforces.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// Sends `req`, following in-grant redirects, no later than `deadline`.
    /// Returns one event per request that left the machine (each redirect hop) and, for a
    /// refused request or hop, one `denied` event naming its URL.
    pub async fn send(
        &self,
        req: OutboundRequest,
        deadline: Instant,
    ) -> (Result<InboundResponse, HttpFailure>, Vec<HttpEvent>) {
        let started = Instant::now();
        let mut event = HttpEvent {
            provider: self.grant.provider.clone(),
            operation: "",
            method: req.method.clone(),
            url: self.redactor.redact(&shown_url(&req.url)),
            status: None,
            bytes: 0,
            credentials: Vec::new(),
            outcome: HttpOutcome::Ok,
            detail: None,
            millis: 0,
        };
        let mut hops = Vec::new();
        let result = self
            .send_inner(req, deadline, &mut event, &mut hops, started)
            .await;
        event.millis = started.elapsed().as_millis() as u64;
        if let Err(failure) = &result {
            let (outcome, detail) = match failure {
                HttpFailure::Denied(d) => (HttpOutcome::Denied, d.to_string()),
                HttpFailure::Timeout(m) => (HttpOutcome::Timeout, m.clone()),
                HttpFailure::Connect(m) => (HttpOutcome::Connect, m.clone()),
                HttpFailure::TooLarge(cap) => {
                    (HttpOutcome::TooLarge, format!("response over {cap} bytes"))
                }
                HttpFailure::Invalid(m) => (HttpOutcome::Invalid, m.clone()),
                HttpFailure::Other(m) => (HttpOutcome::Error, m.clone()),
            };
            event.outcome = outcome;
            event.detail = Some(self.redactor.redact(&detail));
        }
        hops.push(event);
        (result, hops)
    }

    async fn send_inner(
        &self,
        req: OutboundRequest,
        deadline: Instant,
        event: &mut HttpEvent,
        hops: &mut Vec<HttpEvent>,
        started: Instant,
    ) -> Result<InboundResponse, HttpFailure> {
        let timeout = req
            .timeout
            .unwrap_or(self.limits.default_timeout)
            .min(self.limits.max_timeout)
            .min(deadline.saturating_duration_since(Instant::now()));
        if timeout.is_zero() {
            return Err(HttpFailure::Timeout("the call's time is used up".into()));
        }
        let request_deadline = Instant::now() + timeout;
        let mut hop = Hop {
            method: parse_method(&req.method)?,
            url: req.url.clone(),
            body: req.body.clone(),
        };
        for n in 0..=MAX_REDIRECTS {
            let authorized = self.authorize(&hop, &req.headers, n)?;
            event.url = self.redactor.redact(&egress::shown(&authorized.url));
            event.credentials = authorized.credentials.clone();
            if let Some(rehearsed) = self.take_rehearsed() {
                event.status = Some(rehearsed.status);
                event.detail = Some("rehearsed by cbx providers test; not sent".into());
                return Ok(rehearsed);
            }
            let remaining = request_deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(HttpFailure::Timeout(format!(
                    "no response within {timeout:?}"
                )));
            }
            let mut builder = self
                .client
                .request(hop.method.clone(), authorized.url.clone())
                .headers(header_map(&authorized)?)
                .timeout(remaining);
            if let Some(b) = &hop.body {
                builder = builder.body(b.clone());
            }
            let response = builder
                .send()
                .await
                .map_err(|e| self.classify(&e, timeout))?;
            let status = response.status();
            event.status = Some(status.as_u16());
            if let Some(next) = redirect_target(&response, &authorized.url)? {
                if n == MAX_REDIRECTS {
                    return Err(HttpFailure::Other(format!(
                        "more than {MAX_REDIRECTS} redirects"
                    )));
                }
                hop.follow(status, next);
                self.record_redirect(event, hops, &hop, started);
                continue;
            }
            return self.receive(response, timeout, event).await;
        }
        Err(HttpFailure::Other(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// Checks one hop against the grant: the request itself, or a redirect it led to.
    fn authorize(
        &self,
        hop: &Hop,
        headers: &[(String, String)],
        n: usize,
    ) -> Result<egress::Authorized, HttpFailure> {
        match egress::authorize(&self.grant, hop.method.as_str(), &hop.url, headers) {
            Ok(a) => Ok(a),
            Err(Refusal::Denied(mut d)) => {
                if n > 0 {
                    d.reason = format!("a redirect led off the grant: {}", d.reason);
                }
                Err(HttpFailure::Denied(d))
            }
            Err(Refusal::Invalid(m)) => Err(HttpFailure::Invalid(m)),
        }
    }

    /// Records the hop that went out as a `redirect` event; `event` becomes the next hop's,
    /// a request of its own, checked afresh.
    fn record_redirect(
        &self,
        event: &mut HttpEvent,
        hops: &mut Vec<HttpEvent>,
        next: &Hop,
        started: Instant,
    ) {
        let shown_next = self.redactor.redact(&shown_url(&next.url));
        let mut done = event.clone();
        done.outcome = HttpOutcome::Redirect;
        done.detail = Some(format!("redirected to {shown_next}"));
        done.millis = started.elapsed().as_millis() as u64;
        hops.push(done);
        event.method = next.method.as_str().to_string();
        event.url = shown_next;
        event.status = None;
        event.bytes = 0;
        event.credentials.clear();
    }

    /// The response's headers and capped body, with credential values scrubbed: a service
    /// that echoes requests (an error page, a debug endpoint) must not hand the provider a
    /// credential the host attached.
    async fn receive(
        &self,
        response: reqwest::Response,
        timeout: Duration,
        event: &mut HttpEvent,
    ) -> Result<InboundResponse, HttpFailure> {
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = self.read_capped(response, timeout, event).await?;
        let (headers, body) = self.scrub_credentials(headers, body);
        Ok(InboundResponse {
            status,
            headers,
            body,
        })
    }

    async fn read_capped(
        &self,
        mut response: reqwest::Response,
        timeout: Duration,
        event: &mut HttpEvent,
    ) -> Result<Vec<u8>, HttpFailure> {
        let cap = self.limits.max_response_bytes;
        if response.content_length().is_some_and(|n| n > cap) {
            return Err(HttpFailure::TooLarge(cap));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.classify(&e, timeout))?
        {
            event.bytes += chunk.len() as u64;
            if body.len() as u64 + chunk.len() as u64 > cap {
                return Err(HttpFailure::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Replaces every secret credential value in a response with `<redacted>`, in plain,
    /// base64 and URL-encoded forms ([`crate::redact::encoded_forms`]), longest first. What
    /// holds none of them is returned as it came, without a copy.
    fn scrub_credentials(
        &self,
        mut headers: Vec<(String, String)>,
        mut body: Vec<u8>,
    ) -> (Vec<(String, String)>, Vec<u8>) {
        let secrets = self.secret_forms.get_or_init(|| secret_forms(&self.grant));
        for s in secrets {
            for (_, v) in headers.iter_mut() {
                if v.contains(s.as_str()) {
                    *v = v.replace(s.as_str(), crate::redact::SECRET);
                }
            }
            if let Some(scrubbed) =
                replace_bytes(&body, s.as_bytes(), crate::redact::SECRET.as_bytes())
            {
                body = scrubbed;
            }
        }
        (headers, body)
    }

    fn classify(&self, e: &reqwest::Error, timeout: Duration) -> HttpFailure {
        // reqwest's messages name the URL; redact in case it carries a secret.
        let text = self.redactor.redact(&error_chain(e));
        if e.is_timeout() {
            HttpFailure::Timeout(format!("no response within {}s", timeout.as_secs_f32()))
        } else if e.is_connect() {
            HttpFailure::Connect(text)
        } else {
            HttpFailure::Other(text)
        }
    }
}

/// The values of `grant`'s secret credentials in every form a response might carry them in
/// (plain, base64, URL-encoded), longest first, so that a value containing another is
/// replaced whole. Values under 4 bytes are left out: scrubbing them would mangle ordinary text.
fn secret_forms(grant: &Grant) -> Vec<String> {
    let mut secrets: Vec<String> = grant
        .credentials
        .iter()
        .filter(|c| c.secret)
        .map(|c| c.secret_value().to_string())
        .filter(|v| v.len() >= 4)
        .flat_map(|v| {
            let mut forms = crate::redact::encoded_forms(&v);
            forms.push(v);
            forms
        })
        .collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

/// `haystack` with every occurrence of `needle` replaced by `with`; `None` when `needle`
/// does not occur (or is empty), so nothing is copied.
fn replace_bytes(haystack: &[u8], needle: &[u8], with: &[u8]) -> Option<Vec<u8>> {
    let find = |from: usize| {
        haystack
            .get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| from + i)
    };
    if needle.is_empty() {
        return None;
    }
    let mut next = find(0)?;
    let mut out = Vec::with_capacity(haystack.len());
    let mut done = 0;
    loop {
        out.extend_from_slice(&haystack[done..next]);
        out.extend_from_slice(with);
        done = next + needle.len();
        match find(done) {
            Some(i) => next = i,
            None => break,
        }
    }
    out.extend_from_slice(&haystack[done..]);
    Some(out)
}

/// One request of a chain of redirects.
struct Hop {
    method: reqwest::Method,
    url: String,
    body: Option<Vec<u8>>,
}

impl Hop {
    /// Becomes the request a redirect with `status` to `next` asks for: 301 to 303 turn
    /// everything but HEAD into a GET without a body.
    fn follow(&mut self, status: reqwest::StatusCode, next: url::Url) {
        if matches!(status.as_u16(), 301..=303) && self.method != reqwest::Method::HEAD {
            self.method = reqwest::Method::GET;
            self.body = None;
        }
        self.url = next.to_string();
    }
}

/// The headers to send: the provider's, then the credentials bound to the endpoint (marked
/// sensitive, replacing any of the same name).
fn header_map(authorized: &egress::Authorized) -> Result<HeaderMap, HttpFailure> {
    let mut headers = HeaderMap::new();
    for (name, value) in &authorized.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| HttpFailure::Invalid(format!("bad header name `{name}`")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| HttpFailure::Invalid(format!("bad value for header `{name}`")))?;
        headers.append(name, value);
    }
    for (name, value) in &authorized.credential_headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| HttpFailure::Other("bad credential header name".into()))?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            HttpFailure::Other("a credential value is not a valid header value".into())
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(headers)
}

/// Where a redirect response points, resolved against the URL it answered; `None` for any
/// other response.
fn redirect_target(
    response: &reqwest::Response,
    base: &url::Url,
) -> Result<Option<url::Url>, HttpFailure> {
    if !response.status().is_redirection() {
        return Ok(None);
    }
    let Some(location) = response.headers().get(reqwest::header::LOCATION) else {
        return Ok(None);
    };
    let location = location
        .to_str()
        .map_err(|_| HttpFailure::Other("redirect with an unreadable Location".into()))?;
    base.join(location)
        .map(Some)
        .map_err(|e| HttpFailure::Other(format!("redirect to a bad URL: {e}")))
}

fn parse_method(m: &str) -> Result<reqwest::Method, HttpFailure> {
    match m {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" => {
            reqwest::Method::from_bytes(m.as_bytes())
                .map_err(|_| HttpFailure::Invalid(format!("bad method {m}")))
        }
        other => Err(HttpFailure::Invalid(format!(
            "method {other} is not allowed"
        ))),
    }
}

fn shown_url(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| url.chars().take(200).collect(), |u| egress::shown(&u))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::replace_bytes;

    #[test]
    fn replace_bytes_replaces_every_occurrence_and_copies_nothing_without_one() {
        let r = |h: &str, n: &str| {
            replace_bytes(h.as_bytes(), n.as_bytes(), b"<redacted>")
                .map(|v| String::from_utf8(v).unwrap())
        };
        assert_eq!(
            r("k=s3cret&again=s3crets3cret", "s3cret").as_deref(),
            Some("k=<redacted>&again=<redacted><redacted>")
        );
        assert_eq!(r("s3cret", "s3cret").as_deref(), Some("<redacted>"));
        assert_eq!(r("ss3cre", "s3cret"), None);
        assert_eq!(r("s3c", "s3cret"), None);
        assert_eq!(r("anything", ""), None);
    }
}
