//! Bearer authentication: the API key, or the JWT plus `X-Daytona-Organization-ID` (§1.2).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};

use super::Shared;
use super::error::ApiError;

/// Header carrying the organization for JWT auth.
pub(crate) const ORG_HEADER: &str = "x-daytona-organization-id";

/// Extractor that succeeds only for an authenticated request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Authed;

impl FromRequestParts<Arc<Shared>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        check(&parts.headers, &shared.config)
    }
}

/// Checks the headers against the configured API key / JWT.
pub(crate) fn check(headers: &HeaderMap, config: &super::SimConfig) -> Result<Authed, ApiError> {
    let unauthorized = || ApiError::new(StatusCode::UNAUTHORIZED, "Invalid credentials");
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthorized)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(unauthorized());
    }
    if token == config.api_key {
        // API keys carry their organization; the header is ignored.
        return Ok(Authed);
    }
    if config.jwt.as_deref() == Some(token) {
        let org = headers.get(ORG_HEADER).and_then(|v| v.to_str().ok());
        if org == Some(config.organization_id.as_str()) {
            return Ok(Authed);
        }
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Invalid authentication context",
        ));
    }
    Err(unauthorized())
}
