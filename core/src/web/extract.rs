//! Request extractors that fail with problem details instead of plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::AppState;
use super::problem::ApiError;
use crate::auth::{self, Action, Area, AuthError, Principal};
use crate::domain::FieldError;
use crate::store::audit::Origin;
use crate::store::audit::Outcome;
use crate::store::{ListParams, TenantScope};

/// A JSON request body. Malformed JSON is a 400; well-formed JSON with wrong, missing or
/// unknown fields is a 422 naming the field; an oversize body is a 413.
///
/// The outcome is kept, not returned: handlers check the caller's permission first and only
/// then look at the body (`body.0?`), so a caller without the right learns nothing from
/// validation messages.
pub struct ApiJson<T>(pub Result<T, ApiError>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiJson(read_json(req, state).await))
    }
}

async fn read_json<S: Send + Sync, T: DeserializeOwned>(req: Request, state: &S) -> Result<T, ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false);
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is larger than the server accepts",
            )
        } else {
            ApiError::bad_request(format!("could not read the request body: {rejection}"))
        }
    })?;
    parse_json(&bytes)
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let pointer = if path == "." {
                    String::new()
                } else {
                    format!("/{}", path.replace('.', "/"))
                };
                ApiError::validation(vec![FieldError {
                    pointer,
                    detail: strip_position(&inner.to_string()),
                }])
            }
            _ => ApiError::bad_request(format!("malformed JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// serde_json appends " at line 1 column 17" to data errors; the pointer says where already.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The `If-Match` precondition: `Some(version)` when the client sent one.
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let value = value
            .to_str()
            .map_err(|_| ApiError::bad_request("If-Match must be an ETag"))?
            .trim();
        if value == "*" {
            return Ok(IfMatch(None));
        }
        // Our ETags are strong; a weak or foreign tag can never match, which is a 412.
        let version = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .and_then(|v| v.parse::<i64>().ok());
        Ok(IfMatch(Some(version.unwrap_or(-1))))
    }
}

pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Query parameters as a typed set; one the type does not know, or a malformed query string,
/// is a 400 problem naming it.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))?;
        Ok(ApiQuery(value))
    }
}

/// List query parameters, kept as raw pairs for the store to validate.
pub struct ListQuery(pub ListParams);

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        Ok(ListQuery(ListParams(pairs)))
    }
}

/// The authenticated caller of an API request.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("\u{0}"));
        let token = auth::bearer(header)?;
        let result = if state.jwt.is_enabled() && auth::jwt::looks_like_jwt(token) {
            state.jwt.authenticate(&state.store, token).await
        } else {
            auth::authenticate(&state.store, &state.tokens, token).await
        };
        let principal = result.map_err(|e| {
            let outcome = match e {
                AuthError::Suspended => Outcome::Denied,
                _ => Outcome::Failure,
            };
            // Never the secret itself: a recognisable prefix is enough to find the credential.
            let shown: String = token.chars().take(12).collect();
            let audited = !matches!(e, AuthError::Store(_) | AuthError::IssuerUnavailable);
            let err = ApiError::from(e);
            if audited {
                err.audited(None, &format!("bearer:{shown}…"), "api.auth", outcome)
            } else {
                err
            }
        })?;
        let key = match &principal {
            Principal::Tenant(scope) => scope.actor().to_owned(),
            Principal::Platform { actor } => actor.clone(),
        };
        if let Err(wait) = state.limits.api.check(&key) {
            let mut err = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "this credential is making requests faster than its rate limit allows",
            );
            err.retry_after = Some(u32::try_from(crate::auth::ratelimit::retry_after_secs(wait)).unwrap_or(u32::MAX));
            return Err(err);
        }
        Ok(Caller(principal))
    }
}

/// Where an API request came from, for the audit log.
pub struct RequestOrigin(pub Origin);

impl FromRequestParts<AppState> for RequestOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0);
        Ok(RequestOrigin(super::session::origin_of(
            &parts.headers,
            peer,
            state.config.http.trust_forwarded_for,
        )))
    }
}

impl Caller {
    /// The tenant scope, if the caller may do `action` in `area`.
    pub fn tenant(self, action: Action, area: Area) -> Result<TenantScope, ApiError> {
        match self.0 {
            Principal::Tenant(scope) if auth::permits(scope.role(), action, area) => Ok(scope),
            Principal::Tenant(scope) => Err(ApiError::forbidden(format!(
                "the role {} may not {} {}",
                scope.role(),
                match action {
                    Action::Read => "read",
                    Action::Write => "change",
                },
                area_name(area)
            ))
            .audited(Some(scope.tenant()), scope.actor(), "api.denied", Outcome::Denied)),
            Principal::Platform { actor } => Err(ApiError::forbidden(
                "platform tokens manage tenants; use a tenant token for tenant data",
            )
            .audited(None, &actor, "api.denied", Outcome::Denied)),
        }
    }

    pub fn platform(self) -> Result<String, ApiError> {
        match self.0 {
            Principal::Platform { actor } => Ok(actor),
            Principal::Tenant(scope) => Err(ApiError::forbidden("only platform admins can manage tenants").audited(
                Some(scope.tenant()),
                scope.actor(),
                "api.denied",
                Outcome::Denied,
            )),
        }
    }
}

fn area_name(area: Area) -> &'static str {
    area.name()
}

/// How much of a refused request's body is read and dropped so the client gets the answer.
const DISCARD_AT_MOST: usize = 1 << 20;

/// Reads and drops up to 1 MiB of a request body that is refused before it was read: closing a
/// connection with unread data makes the kernel reset it, and the client may then lose the
/// answer. Nothing is kept; a larger body is cut off (its sender may see the reset).
pub async fn discard_body(body: axum::body::Body) {
    use futures_util::StreamExt;
    let mut frames = body.into_data_stream();
    let mut read = 0;
    while read < DISCARD_AT_MOST {
        match frames.next().await {
            Some(Ok(frame)) => read += frame.len(),
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        size: u32,
    }

    #[test]
    fn json_errors_are_classified_and_located() {
        let e = parse_json::<Body>(b"{\"name\": ").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = parse_json::<Body>(b"{\"name\": 5}").unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.problem.errors[0].pointer, "/name");
        let e = parse_json::<Body>(b"{\"name\": \"x\", \"inner\": {\"size\": \"big\"}}").unwrap_err();
        assert_eq!(e.problem.errors[0].pointer, "/inner/size");
        let e = parse_json::<Body>(b"{\"name\": \"x\", \"colour\": 1}").unwrap_err();
        assert!(
            e.problem.errors[0].detail.contains("unknown field `colour`"),
            "{:?}",
            e.problem
        );
        let e = parse_json::<Body>(b"{\"name\": \"x\"} trailing").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(parse_json::<Body>(b"{\"name\": \"x\"}").is_ok());
    }
}
