//! How the simulated Chutes IdP may depart from Chutes' own habits while staying within the
//! standards (RFC 6749, RFC 6750, OpenID Connect Core). The default is Chutes as documented;
//! each switch is one behaviour another conforming server may have, so the service can be
//! tested against the standard rather than against one provider.

use serde::{Deserialize, Serialize};

/// Which client authentication methods the token and revocation endpoints accept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic or `client_id` + `client_secret` in the body (Chutes).
    #[default]
    Any,
    /// HTTP Basic only (`client_secret_basic`), the one method RFC 6749 section 2.3.1 obliges
    /// a server to support; a secret in the body is `invalid_client`.
    BasicOnly,
}

/// The switches. JSON: `{"omit_rotated_refresh_token": true, "client_auth": "basic_only", ...}`,
/// every field optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChutesIdpVariant {
    /// A refresh answers no `refresh_token` and the spent one stays valid (RFC 6749 section 6:
    /// the client keeps using the one it has).
    pub omit_rotated_refresh_token: bool,
    pub client_auth: ClientAuth,
    /// A refresh token is issued only to a grant that includes the `offline_access` scope
    /// (OpenID Connect Core section 11); otherwise the answer carries an access token alone.
    pub refresh_token_needs_offline_access: bool,
    /// userinfo names the user with the standard `preferred_username` claim instead of
    /// Chutes' own `username`.
    pub preferred_username_claim: bool,
    /// userinfo needs the `profile` scope; without it, 403 with
    /// `WWW-Authenticate: Bearer error="insufficient_scope"` (RFC 6750 section 3.1).
    pub userinfo_needs_profile_scope: bool,
}
