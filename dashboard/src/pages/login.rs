//! Signing in with an API key, and out.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use drover_api::AuthMode;
use maud::{Markup, html};
use queue_core::now_ms;
use queue_core::store::AuditEntry;
use serde::Deserialize;

use crate::Dashboard;
use crate::error::PageError;
use crate::forms::FormFields;
use crate::html::plain_page;
use crate::session::{SESSION_COOKIE, Viewer, cookie, set_cookie};

/// The sign-in page's query.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    expired: Option<String>,
}

/// The sign-in form (or straight on, when already signed in or when
/// authentication is off).
pub(crate) async fn form(
    State(dash): State<Arc<Dashboard>>,
    viewer: Option<Viewer>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if dash.api.auth_mode() == AuthMode::Disabled || viewer.is_some() {
        return Redirect::to(next).into_response();
    }
    let notice = q
        .expired
        .is_some()
        .then_some("Your session ended (it expired, you signed out elsewhere, or its key was revoked). Sign in again.");
    (StatusCode::OK, sign_in_page(next, notice, false)).into_response()
}

fn sign_in_page(next: &str, notice: Option<&str>, is_error: bool) -> Markup {
    plain_page(
        "Sign in",
        &html! {
            div.signin {
                h1 { "Drover" }
                p { "Sign in with an API key that has the " code { "read" } " or " code { "admin" } " scope. "
                    "Read-only keys can look at everything but act on nothing." }
                @if let Some(notice) = notice {
                    p.flash.error[is_error] role="alert" { (notice) }
                }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="key" { "API key" }
                    input #key type="password" name="key" required autocomplete="current-password"
                        spellcheck="false" placeholder="drv_…" autofocus;
                    button type="submit" { "Sign in" }
                }
                p.note { "Create a key with " code { "drover keys create --name you --scope read" } "." }
            }
        },
    )
}

/// Checks the key and opens a session.
pub(crate) async fn sign_in(
    State(dash): State<Arc<Dashboard>>,
    headers: HeaderMap,
    form: FormFields,
) -> Result<Response, PageError> {
    let next = safe_next(form.get("next")).to_string();
    if dash.api.auth_mode() == AuthMode::Disabled {
        return Ok(Redirect::to(&next).into_response());
    }
    let token = form.get("key").unwrap_or_default().trim();
    let store = dash.api.store();
    let Some(key) = store.authenticate(token).await? else {
        let page = sign_in_page(&next, Some("That API key is unknown or revoked."), true);
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    if !key.scopes.iter().any(|s| s.permits_read()) {
        let page = sign_in_page(
            &next,
            Some(
                "That key can only add jobs; the dashboard needs a key with the read or admin scope.",
            ),
            true,
        );
        return Ok((StatusCode::FORBIDDEN, page).into_response());
    }
    let now = now_ms();
    if let Err(e) = store.purge_expired_sessions(now).await {
        tracing::warn!(error = %e, "cannot purge expired dashboard sessions; will retry at the next sign-in");
    }
    let session = store
        .create_session(&key.id, now, dash.settings.session_ttl)
        .await?;
    audit(&dash, &format!("key:{} (dashboard)", key.name), "sign-in").await;
    let mut response = Redirect::to(&next).into_response();
    if let Some(v) = set_cookie(
        &dash,
        &headers,
        SESSION_COOKIE,
        &session.token,
        dash.settings.session_ttl.as_secs(),
    ) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Ends the session.
pub(crate) async fn sign_out(
    State(dash): State<Arc<Dashboard>>,
    viewer: Viewer,
    headers: HeaderMap,
    form: FormFields,
) -> Result<Response, PageError> {
    viewer.check_csrf(form.get("csrf"))?;
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        dash.api.store().end_session(&token).await?;
    }
    audit(&dash, viewer.caller.name(), "sign-out").await;
    let mut response = Redirect::to("/login").into_response();
    if let Some(v) = set_cookie(&dash, &headers, SESSION_COOKIE, "", 0) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Records a sign-in or sign-out in the audit log (a failure to is
/// logged: the person is already signed in or out).
async fn audit(dash: &Dashboard, actor: &str, action: &str) {
    let entry = AuditEntry {
        at_ms: now_ms(),
        actor: actor.to_string(),
        action: action.to_string(),
        queue: None,
        target: None,
        params: serde_json::json!({}),
        outcome: "ok".into(),
    };
    if let Err(e) = dash.api.store().record_audit(&entry).await {
        tracing::warn!(error = %e, action, "cannot write the audit log");
    }
}

/// `next` if it is a path on this site, else `/` (no open redirects).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(
            safe_next(Some("/queues/a?state=failed")),
            "/queues/a?state=failed"
        );
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
