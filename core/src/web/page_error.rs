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

/// Left on a response for [`render_page_errors`], which knows the request.
#[derive(Clone)]
struct StoreFailure(Arc<StoreError>);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::Answer(answer) => *answer,
            PageError::Store(e) => {
                let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
                response.extensions_mut().insert(StoreFailure(Arc::new(e)));
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
    let Some(StoreFailure(error)) = response.extensions_mut().remove::<StoreFailure>() else {
        return response;
    };
    match page {
        Some(page) => {
            let (status, message) = store_failure(&page, &error);
            super::ui::error_page(&app, &page.error_headers, status, &message)
        }
        None => response,
    }
}
