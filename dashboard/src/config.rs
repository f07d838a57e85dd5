//! The `[dashboard]` table of the config file, and its checked form.

use std::time::Duration;

use serde::Deserialize;

/// When the session cookie carries `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookies {
    /// When the request came over HTTPS (`X-Forwarded-Proto: https` from
    /// the proxy in front).
    #[default]
    Auto,
    /// Always (the dashboard is only reached over HTTPS).
    Always,
    /// Never (plain HTTP on a trusted network).
    Never,
}

/// `[dashboard]` as written in the config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Serve the dashboard at `/` (with the API).
    pub enabled: bool,
    /// How long a sign-in lasts, in seconds.
    pub session_ttl_secs: u64,
    /// When the session cookie is marked `Secure`.
    pub secure_cookies: SecureCookies,
    /// How often open pages are brought up to date, in ms.
    pub live_interval_ms: u64,
    /// Most live streams (one per open browser tab) at once; more get
    /// `503` and their pages stay as loaded.
    pub max_live_streams: usize,
    /// Jobs per page in job lists, unless the page asks for another size.
    pub page_size: u64,
    /// Admin actions expected to touch more jobs than this (cleans,
    /// drains, bulk retries) run in the background: the page answers at
    /// once and the audit log records the outcome when it is done.
    pub background_action_above: u64,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_ttl_secs: 12 * 3_600,
            secure_cookies: SecureCookies::Auto,
            live_interval_ms: 1_000,
            max_live_streams: 256,
            page_size: 50,
            background_action_above: 10_000,
        }
    }
}

/// The checked `[dashboard]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardSettings {
    pub(crate) enabled: bool,
    pub(crate) session_ttl: Duration,
    pub(crate) secure_cookies: SecureCookies,
    pub(crate) live_interval: Duration,
    pub(crate) max_live_streams: usize,
    pub(crate) page_size: u64,
    pub(crate) background_action_above: u64,
}

/// Smallest and largest page sizes a list accepts.
pub(crate) const PAGE_SIZES: std::ops::RangeInclusive<u64> = 5..=500;

impl DashboardConfig {
    /// Checks the values; the message names the bad key.
    pub fn resolve(&self) -> Result<DashboardSettings, String> {
        if !(60..=30 * 86_400).contains(&self.session_ttl_secs) {
            return Err(
                "[dashboard] session_ttl_secs must be between 60 and 2592000 (30 days)".into(),
            );
        }
        if !(200..=60_000).contains(&self.live_interval_ms) {
            return Err("[dashboard] live_interval_ms must be between 200 and 60000".into());
        }
        if !PAGE_SIZES.contains(&self.page_size) {
            return Err(format!(
                "[dashboard] page_size must be between {} and {}",
                PAGE_SIZES.start(),
                PAGE_SIZES.end()
            ));
        }
        Ok(DashboardSettings {
            enabled: self.enabled,
            session_ttl: Duration::from_secs(self.session_ttl_secs),
            secure_cookies: self.secure_cookies,
            live_interval: Duration::from_millis(self.live_interval_ms),
            max_live_streams: self.max_live_streams,
            page_size: self.page_size,
            background_action_above: self.background_action_above,
        })
    }
}

impl DashboardSettings {
    /// Whether the dashboard is served.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

impl Default for DashboardSettings {
    fn default() -> Self {
        // The defaults are valid by construction.
        match DashboardConfig::default().resolve() {
            Ok(s) => s,
            Err(e) => unreachable!("default [dashboard] settings are invalid: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve_and_bad_values_are_named() {
        assert!(DashboardSettings::default().enabled());
        let bad = DashboardConfig {
            live_interval_ms: 10,
            ..DashboardConfig::default()
        };
        assert!(bad.resolve().unwrap_err().contains("live_interval_ms"));
    }
}
