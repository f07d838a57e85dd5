//! A posted HTML form, read whole: fields may repeat (the job ids of a
//! bulk action), which `serde_urlencoded` cannot express. Reading one also
//! refuses a post that came from another site.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;

use crate::Dashboard;
use crate::error::PageError;
use crate::session::{Viewer, same_origin};

/// Largest form accepted: a bulk action on a 500-job page with long ids.
const MAX_FORM_BYTES: usize = 512 * 1024;

/// The fields of a posted form, in order.
#[derive(Debug, Default)]
pub(crate) struct FormFields(Vec<(String, String)>);

impl FormFields {
    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Parses an `application/x-www-form-urlencoded` body.
    pub(crate) fn parse(body: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
}

impl<S: Send + Sync> FromRequest<S> for FormFields {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, PageError> {
        same_origin(req.headers())?;
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(PageError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the dashboard takes its own forms (application/x-www-form-urlencoded)",
            ));
        }
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            PageError::new(
                e.status(),
                "the form could not be read; reload the page and try again",
            )
        })?;
        if body.len() > MAX_FORM_BYTES {
            return Err(PageError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "the form is too large; select fewer jobs",
            ));
        }
        Ok(Self::parse(&body))
    }
}

/// A form an admin posted: the viewer is signed in, the form carries their
/// CSRF token, and they have the admin scope, checked in that order
/// before the handler runs.
#[derive(Debug)]
pub(crate) struct AdminPost {
    pub(crate) viewer: Viewer,
    pub(crate) form: FormFields,
}

impl FromRequest<Arc<Dashboard>> for AdminPost {
    type Rejection = PageError;

    async fn from_request(req: Request, dash: &Arc<Dashboard>) -> Result<Self, PageError> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, dash).await?;
        let form = FormFields::from_request(Request::from_parts(parts, body), dash).await?;
        viewer.check_csrf(form.get("csrf"))?;
        viewer.require_admin()?;
        Ok(Self { viewer, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_fields_are_kept_in_order() {
        let f = FormFields::parse(b"csrf=t&id=1&id=a%2Fb&action=retry");
        assert_eq!(f.get("csrf"), Some("t"));
        assert_eq!(f.all("id"), vec!["1", "a/b"]);
        assert_eq!(f.get("missing"), None);
    }
}
