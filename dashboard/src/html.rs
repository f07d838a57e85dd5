//! The page shell every page shares: head, navigation, the signed-in key,
//! a flash message, and the hook the live script attaches to. Values are
//! escaped by maud wherever they appear; nothing here writes raw HTML.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::session::{FLASH_COOKIE, Viewer};

/// Bumped with the crate version so browsers refetch changed assets.
const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The section of the navigation a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Workers,
    Schedules,
    Workflows,
    Autoscaler,
    Audit,
}

/// A page to render around its body.
#[derive(Debug)]
pub(crate) struct Page<'a> {
    pub(crate) title: &'a str,
    pub(crate) section: Section,
    /// The path (and query) the live stream follows for this page, if it
    /// updates itself.
    pub(crate) live: Option<String>,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="same-origin";
            // No favicon request (and no 404 in the console).
            link rel="icon" href="data:,";
            title { (title) " · Drover" }
            link rel="stylesheet" href={ "/ui/assets/app.css?v=" (ASSET_VERSION) };
            script src={ "/ui/assets/app.js?v=" (ASSET_VERSION) } defer {}
        }
    }
}

/// A full page for a signed-in viewer.
pub(crate) fn page(viewer: &Viewer, page: &Page<'_>, body: &Markup) -> Response {
    let nav = [
        (Section::Overview, "/", "Overview"),
        (Section::Workers, "/workers", "Workers"),
        (Section::Schedules, "/schedules", "Schedules"),
        (Section::Workflows, "/workflows", "Workflows"),
        (Section::Autoscaler, "/autoscaler", "Autoscaler"),
        (Section::Audit, "/audit", "Audit log"),
    ];
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(page.title))
            body data-live=[page.live.as_deref()] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Drover" }
                    nav aria-label="Sections" {
                        ul {
                            @for (section, href, label) in nav {
                                li {
                                    a href=(href) aria-current=[(section == page.section).then_some("page")] { (label) }
                                }
                            }
                        }
                    }
                    div.who {
                        span #live-status.live-status role="status" aria-live="polite" {}
                        @match &viewer.key_name {
                            Some(name) => {
                                span { "Signed in with " strong { (name) } }
                                @if !viewer.can_act() { " " span.badge.readonly { "read-only" } }
                                form method="post" action="/logout" {
                                    input type="hidden" name="csrf" value=(viewer.csrf);
                                    button.link type="submit" { "Sign out" }
                                }
                            }
                            None => span.badge.dev { "development mode: no sign-in" },
                        }
                    }
                }
                main #main {
                    @if let Some(flash) = &viewer.flash {
                        p.flash.error[flash.error] role=(if flash.error { "alert" } else { "status" }) { (flash.text) }
                    }
                    (body)
                }
            }
        }
    };
    let mut response = markup.into_response();
    if viewer.flash.is_some() {
        // Shown once: clear it.
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{FLASH_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        )) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// A page without navigation (sign-in, errors before sign-in).
pub(crate) fn plain_page(title: &str, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.plain {
                main #main { (body) }
            }
        }
    }
}

/// A `<time>` showing `ms` in UTC, which the page's script also shows as
/// "3 min ago".
pub(crate) fn when(ms: u64) -> Markup {
    html! {
        time datetime=(crate::format::iso(ms)) title=(crate::format::time(ms)) data-ago { (crate::format::time(ms)) }
    }
}

/// A hidden CSRF field for a form of `viewer`'s.
pub(crate) fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// A badge naming a job or run state, coloured by class and always
/// spelled out (colour is never the only signal).
pub(crate) fn state_badge(state: &str) -> Markup {
    html! { span class={ "state state-" (state) } { (state) } }
}
