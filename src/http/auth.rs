//! Authentication: named bearer tokens with roles, also accepted as HTTP basic auth
//! (user = token name, password = token) so that Alertmanager's `http_config` works
//! either way. Secrets are compared in constant time and never logged.

use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::{Role, Token};

/// Who made a request: a token's name, or `anonymous` when no tokens are configured
/// (the daemon then only listens on loopback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// The audit log's actor for this caller.
    pub fn actor(&self) -> String {
        format!("token:{}", self.name)
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Posting alerts: `ingest` or `admin`.
    Ingest,
    /// Reading and acting on records: `operator` or `admin`.
    Operator,
    /// The configuration in force: `admin` only.
    Admin,
}

impl Need {
    fn allows(self, role: Role) -> bool {
        matches!(
            (self, role),
            (_, Role::Admin) | (Need::Ingest, Role::Ingest) | (Need::Operator, Role::Operator)
        )
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError {
        challenge: true,
        ..ApiError::new(StatusCode::UNAUTHORIZED, message).field("Authorization")
    }
}

fn matches(secret: &str, given: &str) -> bool {
    secret.as_bytes().ct_eq(given.as_bytes()).into()
}

/// Checks the request's credentials against the configured tokens.
pub fn authorize(tokens: &[Token], headers: &HeaderMap, need: Need) -> Result<Caller, ApiError> {
    if tokens.is_empty() {
        return Ok(Caller {
            name: "anonymous".into(),
            role: Role::Admin,
        });
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "missing Authorization header (Bearer token or basic auth)",
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| unauthorized("Authorization header is not ASCII"))?;
    let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
    let credentials = credentials.trim();
    let token = if scheme.eq_ignore_ascii_case("bearer") {
        tokens.iter().find(|t| matches(&t.secret, credentials))
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| unauthorized("basic credentials are not valid base64"))?;
        let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        tokens
            .iter()
            .find(|t| matches(&t.secret, password) && t.name == user)
    } else {
        return Err(unauthorized(
            "unsupported Authorization scheme, expected Bearer or Basic",
        ));
    };
    let token = token.ok_or_else(|| unauthorized("invalid credentials"))?;
    if !need.allows(token.role) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "token {:?} has role {} which may not use this endpoint",
                token.name,
                token.role.as_str()
            ),
        )
        .field("Authorization"));
    }
    Ok(Caller {
        name: token.name.clone(),
        role: token.role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Vec<Token> {
        vec![
            Token {
                name: "am".into(),
                role: Role::Ingest,
                secret: "ingest-secret-0123456789".into(),
            },
            Token {
                name: "ops".into(),
                role: Role::Operator,
                secret: "operator-secret-0123456789".into(),
            },
        ]
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn bearer_and_basic_are_accepted_for_their_role() {
        let caller = authorize(
            &tokens(),
            &headers("Bearer ingest-secret-0123456789"),
            Need::Ingest,
        )
        .unwrap();
        assert_eq!(caller.actor(), "token:am");
        let basic = base64::engine::general_purpose::STANDARD.encode("am:ingest-secret-0123456789");
        authorize(&tokens(), &headers(&format!("Basic {basic}")), Need::Ingest).unwrap();
        authorize(
            &tokens(),
            &headers("bearer operator-secret-0123456789"),
            Need::Operator,
        )
        .unwrap();
    }

    #[test]
    fn wrong_or_missing_credentials_are_refused() {
        let status = |h: HeaderMap, need| authorize(&tokens(), &h, need).unwrap_err().status;
        assert_eq!(
            status(HeaderMap::new(), Need::Ingest),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(headers("Bearer nope"), Need::Ingest),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(headers("Token x"), Need::Ingest),
            StatusCode::UNAUTHORIZED
        );
        let wrong_user =
            base64::engine::general_purpose::STANDARD.encode("ops:ingest-secret-0123456789");
        assert_eq!(
            status(headers(&format!("Basic {wrong_user}")), Need::Ingest),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(headers("Bearer ingest-secret-0123456789"), Need::Operator),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(headers("Bearer operator-secret-0123456789"), Need::Ingest),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn no_tokens_means_open_loopback() {
        assert_eq!(
            authorize(&[], &HeaderMap::new(), Need::Operator)
                .unwrap()
                .name,
            "anonymous"
        );
    }
}
