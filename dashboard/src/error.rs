//! What a page answers when it cannot show what was asked: an HTML page
//! with the right status and a sentence saying what to do, or the way to
//! the sign-in form. Causes of 5xx are logged, never shown.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use drover_api::ApiError;
use maud::html;
use queue_core::{ErrorKind, QueueError};

use crate::format;
use crate::html::plain_page;

/// A page that could not be shown.
#[derive(Debug)]
pub(crate) enum PageError {
    /// Not signed in (or the session ended): go to the sign-in form, and
    /// come back to `next` after.
    SignIn { next: String, expired: bool },
    /// Any other failure, shown as a page.
    Page { status: StatusCode, message: String },
}

impl PageError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Page {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        // 5xx messages from the API are already generic, the cause logged.
        Self::new(e.status(), e.message().to_string())
    }
}

impl From<QueueError> for PageError {
    fn from(e: QueueError) -> Self {
        match e.kind() {
            ErrorKind::NotFound => Self::not_found(e.to_string()),
            ErrorKind::InvalidInput => Self::bad_request(e.to_string()),
            _ => ApiError::from(e).into(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn { next, expired } => {
                let mut to = format!("/login?next={}", format::query_value(&next));
                if expired {
                    to.push_str("&expired=1");
                }
                let mut response = Redirect::to(&to).into_response();
                if expired {
                    // The session is gone: drop its cookie.
                    if let Ok(v) = HeaderValue::from_str(
                        "drover_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
                    ) {
                        response.headers_mut().append(header::SET_COOKIE, v);
                    }
                }
                response
            }
            Self::Page { status, message } => {
                let title = status.canonical_reason().unwrap_or("Error");
                let body = html! {
                    h1 { (status.as_u16()) " " (title) }
                    p role="alert" { (message) }
                    p { a href="/" { "Back to the overview" } }
                };
                (status, plain_page(title, &body)).into_response()
            }
        }
    }
}
