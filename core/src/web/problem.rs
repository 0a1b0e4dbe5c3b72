//! API errors as RFC 9457 problem details (`application/problem+json`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::domain::{FieldError, Validation};
use crate::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Field-level problems: JSON Pointers into the request body (or query parameter names).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For 412 responses: the version the resource is at now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
    /// For plugins waiting for approval: what they ask for that was not approved yet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// An error an API handler returns; renders as problem+json.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub problem: Box<Problem>,
    pub www_authenticate: Option<&'static str>,
    pub retry_after: Option<u32>,
    /// Set for refusals worth an audit entry; the API's audit layer writes it.
    pub audit: Option<Box<DeniedAccess>>,
    /// A refusal of a caller without a valid credential, charged to its address (see
    /// [`super::shield`]).
    pub anonymous: bool,
}

/// A refused API request, for the audit log.
#[derive(Debug, Clone)]
pub struct DeniedAccess {
    /// The tenant, when the credential named one.
    pub tenant_id: Option<crate::store::TenantId>,
    pub actor: String,
    /// `api.denied` (the role may not), `api.auth` (the credential is not valid).
    pub action: &'static str,
    pub outcome: crate::store::audit::Outcome,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self::typed(status, "about:blank", detail)
    }

    fn typed(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self {
            status,
            problem: Box::new(Problem {
                kind: kind.into(),
                title: status.canonical_reason().unwrap_or("Error").into(),
                status: status.as_u16(),
                detail: (!detail.is_empty()).then_some(detail),
                errors: Vec::new(),
                current_version: None,
                capabilities: Vec::new(),
            }),
            www_authenticate: None,
            retry_after: None,
            audit: None,
            anonymous: false,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut e = Self::typed(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/api/docs#problem-validation",
            "the request body has invalid fields",
        );
        e.problem.title = "Validation failed".into();
        e.problem.errors = errors;
        e
    }

    /// A plugin asks for capabilities the tenant has not approved.
    pub fn needs_approval(capabilities: Vec<String>) -> Self {
        let mut e = Self::typed(
            StatusCode::CONFLICT,
            "/api/docs#problem-approval",
            "the plugin asks for capabilities that were not approved: send `approve_capabilities: true` with `enabled: true` to approve them",
        );
        e.problem.title = "Approval needed".into();
        e.problem.capabilities = capabilities;
        e
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "an unexpected error occurred; it has been logged",
        )
    }
}

impl From<Validation> for ApiError {
    fn from(v: Validation) -> Self {
        ApiError::validation(v.errors)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { kind } => ApiError::not_found(format!("{kind} not found")),
            StoreError::Conflict { field, message } => {
                let mut err = ApiError::typed(StatusCode::CONFLICT, "/api/docs#problem-conflict", message.clone());
                if let Some(field) = field {
                    err.problem.errors.push(FieldError {
                        pointer: format!("/{field}"),
                        detail: message,
                    });
                }
                err
            }
            StoreError::PreconditionFailed { kind, current } => {
                let mut err = ApiError::typed(
                    StatusCode::PRECONDITION_FAILED,
                    "/api/docs#problem-precondition",
                    format!("the {kind} has changed since you read it; fetch it again (version {current}) and retry"),
                );
                err.problem.current_version = Some(current);
                err
            }
            StoreError::Invalid(v) => v.into(),
            StoreError::BadRequest(detail) => ApiError::bad_request(detail),
            StoreError::Forbidden(detail) => ApiError::forbidden(detail),
            StoreError::LimitReached(detail) => {
                let mut err = ApiError::typed(StatusCode::FORBIDDEN, "/api/docs#problem-limit", detail);
                err.problem.title = "Limit reached".into();
                err
            }
            StoreError::Busy(detail) => {
                let mut err = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, detail);
                err.retry_after = Some(1);
                err
            }
            StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "database unavailable");
                let mut err = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database is unavailable right now; retry shortly",
                );
                err.retry_after = Some(5);
                err
            }
            StoreError::Internal(reason) => {
                tracing::error!(%reason, "storage error");
                ApiError::internal()
            }
        }
    }
}

impl From<crate::service::plugins::PluginError> for ApiError {
    fn from(e: crate::service::plugins::PluginError) -> Self {
        use crate::service::plugins::PluginError;
        match e {
            PluginError::NotInstallable(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            PluginError::Refused(why) => ApiError::forbidden(why),
            PluginError::TooLarge(why) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, why),
            PluginError::Unavailable(_) => ApiError::bad_request(e.to_string()),
            PluginError::Invalid(v) => v.into(),
            PluginError::NeedsApproval(pending) => ApiError::needs_approval(pending),
            PluginError::Store(e) => e.into(),
        }
    }
}

impl From<crate::service::rules::RulesError> for ApiError {
    fn from(e: crate::service::rules::RulesError) -> Self {
        use crate::service::rules::RulesError;
        match e {
            RulesError::Invalid(v) => v.into(),
            RulesError::NotFound => StoreError::NotFound { kind: "rule" }.into(),
            RulesError::Precondition { current } => StoreError::PreconditionFailed { kind: "rule", current }.into(),
            RulesError::BadScope => ApiError::bad_request(e.to_string()),
            RulesError::Internal(why) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, why),
            RulesError::Store(e) => e.into(),
        }
    }
}

impl From<crate::service::access::AccessError> for ApiError {
    fn from(e: crate::service::access::AccessError) -> Self {
        use crate::service::access::AccessError;
        match e {
            AccessError::Invalid(v) => v.into(),
            // The service recorded the refusal already.
            AccessError::Beyond(why) => ApiError::forbidden(why.to_string()),
            AccessError::OwnAccess(why) => ApiError::new(StatusCode::CONFLICT, why),
            AccessError::Store(e) => e.into(),
        }
    }
}

impl From<crate::service::telephony::ControlError> for ApiError {
    fn from(e: crate::service::telephony::ControlError) -> Self {
        use crate::service::telephony::ControlError;
        match e {
            ControlError::NotFound => ApiError::not_found(
                "no such agent or call, or no such action (pause, unpause, logout, call; hangup, transfer, hold, unhold, listen, whisper, barge)",
            ),
            ControlError::BadRequest(why) => ApiError::bad_request(why),
            ControlError::Forbidden(why) => ApiError::forbidden(why),
            ControlError::NoCall => ApiError::new(StatusCode::CONFLICT, "the agent is on no call"),
            ControlError::NoConnector => ApiError::new(
                StatusCode::CONFLICT,
                "no connector is enabled in this tenant (install and enable one, e.g. the Asterisk plugin)",
            ),
            ControlError::Refused { message, retryable } => {
                let status = if retryable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                };
                let mut error = ApiError::new(status, format!("the connector could not do it: {message}"));
                if retryable {
                    error.retry_after = Some(5);
                }
                error
            }
            ControlError::Store(e) => e.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Store(e) => e.into(),
            AuthError::IssuerUnavailable => {
                let mut err = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
                err.retry_after = Some(5);
                err
            }
            AuthError::Suspended => ApiError::forbidden(e.to_string()),
            other => {
                let mut err = ApiError::new(StatusCode::UNAUTHORIZED, other.to_string());
                err.www_authenticate = Some(match other {
                    AuthError::Missing => "Bearer realm=\"monti\"",
                    _ => "Bearer realm=\"monti\", error=\"invalid_token\"",
                });
                err.anonymous_refusal()
            }
        }
    }
}

impl ApiError {
    /// Marks the error as the refusal of a caller without a valid credential.
    pub fn anonymous_refusal(mut self) -> Self {
        self.anonymous = true;
        self
    }

    /// Marks the error for the audit log.
    pub fn audited(
        mut self,
        tenant_id: Option<&crate::store::TenantId>,
        actor: &str,
        action: &'static str,
        outcome: crate::store::audit::Outcome,
    ) -> Self {
        self.audit = Some(Box::new(DeniedAccess {
            tenant_id: tenant_id.cloned(),
            actor: actor.to_owned(),
            action,
            outcome,
        }));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        if let Some(denied) = self.audit {
            if let Some(detail) = &self.problem.detail {
                response.extensions_mut().insert(AuditDetail(detail.clone()));
            }
            response.extensions_mut().insert(*denied);
        }
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(challenge) = self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.anonymous {
            response = super::shield::charge(response);
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The problem's detail, carried to the audit layer with a [`DeniedAccess`].
#[derive(Debug, Clone)]
pub struct AuditDetail(pub String);
