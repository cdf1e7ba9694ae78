//! `[ui]`, `[ui.oidc]` and `[roles]`: who may use the console and what their groups make them.

use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;

use super::{AuthConfig, Role, Roles, Secret};

/// `[ui]`: who may use the console: basic (a browser asks for it), bearer or none; without
/// it the forms are closed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UiConfig {
    pub auth: Option<AuthConfig>,
    /// The role its credentials hold [default: admin, what the single console user could
    /// always do].
    pub role: Option<Role>,
    /// `[ui.oidc]`: sign in with an OpenID Connect provider; roles come from its groups
    /// claim through `[roles]`. Basic auth (`auth`) may stay beside it for scripts.
    pub oidc: Option<OidcConfig>,
}

/// `[ui.oidc]`: the console's single sign-on (authorization code flow with PKCE).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OidcConfig {
    /// The provider's issuer (`https://idp.example.com/realms/ops`); its
    /// `/.well-known/openid-configuration` is read on the first sign-in. `https` unless the
    /// host is a loopback address.
    pub issuer: String,
    pub client_id: String,
    /// `{ env = "…" }` or `{ file = "…" }`, like every secret here.
    pub client_secret: Secret,
    /// This server's callback as registered at the provider:
    /// `https://runbooks.example.com/ui/login/callback`.
    pub redirect_url: String,
    /// The ID token claim that lists the person's groups [default: groups].
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Scopes asked for besides `openid` [default: profile, groups].
    pub scopes: Option<Vec<String>>,
    /// How long a console session lasts [default: 12 hours].
    pub session_hours: Option<u64>,
}

fn default_groups_claim() -> String {
    "groups".into()
}

impl OidcConfig {
    /// The URLs parse, and anything but a loopback provider or callback is `https`.
    pub fn check(&self) -> Result<()> {
        let secure = |what: &str, text: &str| -> Result<url::Url> {
            let url = url::Url::parse(text)
                .map_err(|e| anyhow::anyhow!("[ui.oidc] {what} {text:?} is not a URL: {e}"))?;
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            anyhow::ensure!(
                url.scheme() == "https" || (url.scheme() == "http" && loopback),
                "[ui.oidc] {what} {text:?} must be https (http only on a loopback address)"
            );
            Ok(url)
        };
        secure("issuer", &self.issuer)?;
        let redirect = secure("redirect-url", &self.redirect_url)?;
        anyhow::ensure!(
            redirect.path() == "/ui/login/callback",
            "[ui.oidc] redirect-url must end in /ui/login/callback (the console's callback), \
             not {:?}",
            redirect.path()
        );
        anyhow::ensure!(!self.client_id.is_empty(), "[ui.oidc] client-id is empty");
        anyhow::ensure!(
            !self.groups_claim.is_empty(),
            "[ui.oidc] groups-claim is empty"
        );
        anyhow::ensure!(
            self.session_hours
                .is_none_or(|h| (1..=24 * 30).contains(&h)),
            "[ui.oidc] session-hours must be 1 to 720"
        );
        Ok(())
    }

    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_hours.unwrap_or(12) * 3600)
    }
}

/// `[roles]`: groups (of an identity provider; OpenID Connect sign-in brings them) per role.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RolesConfig {
    pub viewer: Vec<String>,
    pub operator: Vec<String>,
    pub approver: Vec<String>,
    pub admin: Vec<String>,
}

impl RolesConfig {
    /// The roles `groups` give.
    pub fn of_groups(&self, groups: &[String]) -> Roles {
        let lists = [
            (Role::Viewer, &self.viewer),
            (Role::Operator, &self.operator),
            (Role::Approver, &self.approver),
            (Role::Admin, &self.admin),
        ];
        Roles::of(
            lists
                .into_iter()
                .filter(|(_, list)| list.iter().any(|g| groups.contains(g)))
                .map(|(role, _)| role),
        )
    }
}
