//! Who is looking: a sign-in with an API key becomes a session cookie
//! (HttpOnly, SameSite=Strict, `Secure` over HTTPS); each request finds its
//! session in the store, which also says whether the key still exists.
//!
//! Every form carries a CSRF token derived from the session token (a page
//! of another site can read neither), and every POST is also refused when
//! the browser says it came from another site (`Sec-Fetch-Site`) or its
//! `Origin` is not this host.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use drover_api::{AuthMode, Caller};
use queue_core::now_ms;
use sha2::{Digest, Sha256};

use crate::Dashboard;
use crate::config::SecureCookies;
use crate::error::PageError;
use crate::format;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "drover_session";
/// The one-shot message cookie's name (set by an action, shown and
/// cleared by the next page).
pub(crate) const FLASH_COOKIE: &str = "drover_flash";

/// A message for the next page an action leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flash {
    /// Whether it reports a failure.
    pub(crate) error: bool,
    pub(crate) text: String,
}

/// The person behind a request.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub(crate) caller: Caller,
    /// The token every form of theirs carries.
    pub(crate) csrf: String,
    /// The API key they signed in with (`None` with authentication off).
    pub(crate) key_name: Option<String>,
    /// A message left by their last action.
    pub(crate) flash: Option<Flash>,
}

impl Viewer {
    /// Whether they may act (admin scope).
    pub(crate) fn can_act(&self) -> bool {
        self.caller.can_admin()
    }

    /// `403` unless they may act.
    pub(crate) fn require_admin(&self) -> Result<(), PageError> {
        if self.can_act() {
            Ok(())
        } else {
            Err(PageError::forbidden(
                "your API key is read-only: it may look, not act; sign in with an admin key to act",
            ))
        }
    }

    /// `403` unless `token` is their CSRF token.
    pub(crate) fn check_csrf(&self, token: Option<&str>) -> Result<(), PageError> {
        match token {
            Some(t) if constant_time_eq(t.as_bytes(), self.csrf.as_bytes()) => Ok(()),
            _ => Err(PageError::forbidden(
                "this form is out of date or did not come from the dashboard; reload the page and try again",
            )),
        }
    }
}

impl FromRequestParts<Arc<Dashboard>> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        dash: &Arc<Dashboard>,
    ) -> Result<Self, PageError> {
        let flash = cookie(&parts.headers, FLASH_COOKIE).and_then(|raw| decode_flash(&raw));
        if dash.api.auth_mode() == AuthMode::Disabled {
            return Ok(Self {
                caller: Caller::auth_disabled(),
                csrf: dash.dev_csrf.clone(),
                key_name: None,
                flash,
            });
        }
        let next = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(PageError::SignIn {
                next,
                expired: false,
            });
        };
        let Some(session) = dash.api.store().session(&token, now_ms()).await? else {
            return Err(PageError::SignIn {
                next,
                expired: true,
            });
        };
        let key_name = session.key.name.clone();
        let caller = Caller::dashboard(session.key);
        if !caller.can_read() {
            return Err(PageError::forbidden(
                "this API key cannot read queues; the dashboard needs a key with the read or admin scope",
            ));
        }
        Ok(Self {
            caller,
            csrf: csrf_for(&token),
            key_name: Some(key_name),
            flash,
        })
    }
}

impl OptionalFromRequestParts<Arc<Dashboard>> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        dash: &Arc<Dashboard>,
    ) -> Result<Option<Self>, PageError> {
        match <Self as FromRequestParts<_>>::from_request_parts(parts, dash).await {
            Ok(viewer) => Ok(Some(viewer)),
            Err(PageError::SignIn { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The CSRF token of a session: a hash of its token, so it needs no
/// storage and cannot be guessed without the (HttpOnly) cookie.
pub(crate) fn csrf_for(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"drover-dashboard-csrf\0");
    h.update(session_token.as_bytes());
    hex::encode(h.finalize())
}

/// The value of cookie `name`, if the request has it.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value for cookie `name`; `max_age_secs` 0 deletes it.
pub(crate) fn set_cookie(
    dash: &Dashboard,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age_secs: u64,
) -> Option<HeaderValue> {
    let secure = match dash.settings.secure_cookies {
        SecureCookies::Always => true,
        SecureCookies::Never => false,
        SecureCookies::Auto => headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https")),
    };
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .ok()
}

/// A flash message as a cookie value.
pub(crate) fn encode_flash(flash: &Flash) -> String {
    let kind = if flash.error { "e" } else { "o" };
    format!("{kind}{}", format::query_value(&flash.text))
}

fn decode_flash(raw: &str) -> Option<Flash> {
    let error = match raw.as_bytes().first()? {
        b'e' => true,
        b'o' => false,
        _ => return None,
    };
    let text: String = form_urlencoded::parse(format!("t={}", &raw[1..]).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    Some(Flash { error, text })
}

/// Refuses a state-changing request the browser says came from another
/// site, or whose `Origin` names another host. Requests without either
/// header (old browsers, scripts) rely on the CSRF token alone.
pub(crate) fn same_origin(headers: &HeaderMap) -> Result<(), PageError> {
    let refused = || {
        PageError::forbidden("this request came from another site; use the dashboard's own pages")
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return Err(refused());
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        // Host names only: proxies often drop or rewrite the port of Host.
        let host = headers
            .get("x-forwarded-host")
            .or_else(|| headers.get(header::HOST))
            .and_then(|v| v.to_str().ok())
            .map(host_name)
            .unwrap_or_default();
        let origin_host = host_name(origin.split_once("://").map_or(origin, |(_, h)| h));
        if origin == "null" || !origin_host.eq_ignore_ascii_case(host) {
            return Err(refused());
        }
    }
    Ok(())
}

/// `host[:port]` (or `[v6]:port`) without the port.
fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map_or(authority, |(h, _)| h);
    }
    authority.split_once(':').map_or(authority, |(h, _)| h)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cookies_are_found_among_others() {
        let h = headers(&[("cookie", "a=1; drover_session=drs_x; b=2")]);
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("drs_x"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn flash_messages_survive_the_cookie() {
        let flash = Flash {
            error: true,
            text: "Retried 3 jobs; 1 could not be: \"x\" <b>".into(),
        };
        assert_eq!(decode_flash(&encode_flash(&flash)), Some(flash));
        assert_eq!(decode_flash("zzz"), None);
    }

    #[test]
    fn cross_site_posts_are_refused() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(
            same_origin(&headers(&[
                ("origin", "http://evil.example"),
                ("host", "127.0.0.1:8080")
            ]))
            .is_err()
        );
        assert!(
            same_origin(&headers(&[
                ("origin", "http://127.0.0.1:8080"),
                ("host", "127.0.0.1:8080")
            ]))
            .is_ok()
        );
        assert!(
            same_origin(&headers(&[
                ("origin", "https://ops.example:8443"),
                ("host", "ops.example")
            ]))
            .is_ok(),
            "a proxy that drops the port from Host"
        );
        assert!(same_origin(&headers(&[("origin", "null"), ("host", "ops.example")])).is_err());
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert!(same_origin(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_compare_exactly() {
        assert_ne!(csrf_for("drs_a"), csrf_for("drs_b"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
