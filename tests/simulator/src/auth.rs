//! Bearer authentication: the API key, or the JWT plus `X-Daytona-Organization-ID` (§1.2),
//! and the API key's permission scopes (`daytona-api-more.md` §4): a route needing a scope the
//! key lacks answers 403 `Access denied`; the JWT (an organization owner's) bypasses them.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};

use super::Shared;
use super::error::ApiError;

/// Header carrying the organization for JWT auth.
pub(crate) const ORG_HEADER: &str = "x-daytona-organization-id";

/// Extractor that succeeds only for an authenticated request.
#[derive(Debug, Clone)]
pub(crate) struct Authed {
    /// The API key's permissions; `None` for the JWT (an owner: every scope).
    pub scopes: Option<Vec<String>>,
}

impl Authed {
    /// Fails with 403 `Access denied` unless the caller has `scope`.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        match &self.scopes {
            Some(s) if !s.iter().any(|p| p == scope) => {
                Err(ApiError::new(StatusCode::FORBIDDEN, "Access denied"))
            }
            _ => Ok(()),
        }
    }

    /// Whether the caller used the API key (not the JWT).
    pub fn is_api_key(&self) -> bool {
        self.scopes.is_some()
    }
}

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
        return Ok(Authed {
            scopes: Some(config.api_key_permissions.clone()),
        });
    }
    if config.jwt.as_deref() == Some(token) {
        let org = headers.get(ORG_HEADER).and_then(|v| v.to_str().ok());
        if org == Some(config.organization_id.as_str()) {
            return Ok(Authed { scopes: None });
        }
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Invalid authentication context",
        ));
    }
    Err(unauthorized())
}
