//! Failures of pages and forms, so page handlers return `Result<Response, PageError>` and use
//! `?`. What a failure looks like is decided in one place: htmx requests get the error
//! fragment (swapped in where the answer goes), other requests the error page, both in the
//! visitor's language and with the request's id.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::session::PageContext;
use crate::store::StoreError;

/// Why a page could not be served.
#[derive(Debug)]
pub enum PageError {
    /// An answer already made: the "not allowed" page, a form shown again with its errors.
    Answer(Box<Response>),
    /// The store failed or found nothing; rendered by [`render_page_errors`].
    Store(StoreError),
    /// The request could not be carried out, for a reason the visitor is told; rendered by
    /// [`render_page_errors`] as the error fragment or page.
    Refused { status: StatusCode, message: String },
}

impl PageError {
    pub fn refused(status: StatusCode, message: impl Into<String>) -> Self {
        PageError::Refused {
            status,
            message: message.into(),
        }
    }
}

pub type PageResult = Result<Response, PageError>;

impl From<Box<Response>> for PageError {
    fn from(answer: Box<Response>) -> Self {
        PageError::Answer(answer)
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        PageError::Store(e)
    }
}

/// A service's refusal with the status and words the REST API gives it, so a page and the API
/// say the same about the same failure.
fn refused_as_the_api_would(error: impl Into<super::problem::ApiError>) -> PageError {
    let problem = error.into().problem;
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    PageError::refused(status, problem.detail.unwrap_or(problem.title))
}

impl From<crate::service::rules::RulesError> for PageError {
    fn from(e: crate::service::rules::RulesError) -> Self {
        use crate::service::rules::RulesError;
        match e {
            RulesError::NotFound => PageError::Store(StoreError::NotFound { kind: "rule" }),
            RulesError::Store(e) => PageError::Store(e),
            other => refused_as_the_api_would(other),
        }
    }
}

impl From<crate::service::plugins::PluginError> for PageError {
    fn from(e: crate::service::plugins::PluginError) -> Self {
        use crate::service::plugins::PluginError;
        match e {
            PluginError::Store(e) => PageError::Store(e),
            // The engine's own words are for the log; the visitor is told plugins cannot run.
            PluginError::Unavailable(why) => PageError::Store(StoreError::Unavailable(why)),
            other => refused_as_the_api_would(other),
        }
    }
}

/// Left on a response for [`render_page_errors`], which knows the request.
#[derive(Clone)]
enum Failure {
    Store(Arc<StoreError>),
    Refused(String),
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::Answer(answer) => *answer,
            PageError::Store(e) => {
                let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
                response.extensions_mut().insert(Failure::Store(Arc::new(e)));
                response
            }
            PageError::Refused { status, message } => {
                let mut response = status.into_response();
                response.extensions_mut().insert(Failure::Refused(message));
                response
            }
        }
    }
}

/// The status and the visitor's message for a store failure. An id that names nothing is a
/// 404 and a refused request a 400; a storage failure's details go to the log, not the page.
pub fn store_failure(page: &PageContext, error: &StoreError) -> (StatusCode, String) {
    match error {
        StoreError::NotFound { .. } => (StatusCode::NOT_FOUND, page.locale.text("admin.not_found")),
        StoreError::BadRequest(message) => (StatusCode::BAD_REQUEST, message.clone()),
        StoreError::Forbidden(message) => (StatusCode::FORBIDDEN, message.clone()),
        StoreError::Unavailable(_) | StoreError::Busy(_) => {
            tracing::warn!(error = %error, target = %page.target, "page: storage unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, page.locale.text("errors.unavailable"))
        }
        _ => {
            tracing::error!(error = %error, target = %page.target, "page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong; the error has been logged.".to_owned(),
            )
        }
    }
}

/// Renders the failures page handlers returned as [`PageError::Store`], for the request that
/// got them: runs inside the session layer, which put the request's [`PageContext`] in place.
pub async fn render_page_errors(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let page = request.extensions().get::<PageContext>().cloned();
    let mut response = next.run(request).await;
    let Some(failure) = response.extensions_mut().remove::<Failure>() else {
        return response;
    };
    let Some(page) = page else {
        return response;
    };
    let (status, message) = match failure {
        Failure::Store(error) => store_failure(&page, &error),
        Failure::Refused(message) => (response.status(), message),
    };
    super::ui::error_page(&app, &page.error_headers, status, &message)
}
