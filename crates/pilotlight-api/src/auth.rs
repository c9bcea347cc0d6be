//! Bearer-token authentication with roles.
//!
//! Tokens come from files named in the config; the table compares in time independent of where
//! a candidate differs. Roles are ordered viewer < operator < approver: a route names the least
//! role it needs.

use axum::extract::FromRequestParts;
use http::StatusCode;
use http::request::Parts;
use pilotlight_core::config::Role;
use pilotlight_core::secret::Secret;

use crate::ApiState;
use crate::error::ApiError;

/// A known token.
#[derive(Debug)]
pub struct TokenEntry {
    pub name: String,
    pub role: Role,
    pub token: Secret,
}

/// Every token the daemon accepts.
#[derive(Debug, Default)]
pub struct TokenTable {
    entries: Vec<TokenEntry>,
}

impl TokenTable {
    pub fn new(entries: Vec<TokenEntry>) -> TokenTable {
        TokenTable { entries }
    }

    /// The principal a presented token belongs to.
    pub fn lookup(&self, presented: &str) -> Option<Principal> {
        // Check every entry so timing does not reveal which one matched.
        let mut found = None;
        for e in &self.entries {
            if e.token.matches(presented) && found.is_none() {
                found = Some(Principal {
                    name: e.name.clone(),
                    role: e.role,
                });
            }
        }
        found
    }
}

fn rank(role: Role) -> u8 {
    match role {
        Role::Viewer => 0,
        Role::Operator => 1,
        Role::Approver => 2,
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

impl Principal {
    /// # Errors
    /// 403 when the principal's role is below `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if rank(self.role) >= rank(needed) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this call needs the {} role; {} has {}",
                    needed.as_str(),
                    self.name,
                    self.role.as_str()
                ),
            ))
        }
    }
}

impl FromRequestParts<ApiState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let header = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing Authorization: Bearer <token> header"))?;
        let value = header
            .to_str()
            .map_err(|_| unauthorized("Authorization header is not valid text"))?;
        let token = value
            .strip_prefix("Bearer ")
            .ok_or_else(|| unauthorized("Authorization must use the Bearer scheme"))?;
        state
            .tokens
            .lookup(token.trim())
            .ok_or_else(|| unauthorized("unknown token"))
    }
}
