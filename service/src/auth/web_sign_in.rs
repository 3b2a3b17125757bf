//! Browser sign-in with a wallet extension: the server writes a Sign-In-with-Substrate
//! message with a single-use nonce, the wallet signs it (`signRaw`, `<Bytes>`-wrapped), and
//! the server checks signature, nonce, domain and expiry, and that the text is exactly the
//! one it issued, before opening a session.

use wire::signing::SignInMessage;

use crate::auth::{AuthError, sessions::random_token, signature};
use crate::clock;
use crate::db::Db;
use crate::domain::Hotkey;
use crate::store;

const PURPOSE_WEB: &str = "web-sign-in";
/// How long the miner has to approve the signature in the wallet.
pub const SIGN_IN_TTL_SECS: i64 = 600;
pub const STATEMENT: &str = "Sign in to ORO inference providers. This signature costs nothing and grants no transfer.";

/// Writes the message the wallet will sign, and remembers its nonce.
pub async fn begin(db: &Db, public_url: &url::Url, address: &str, now: i64) -> Result<SignInMessage, AuthError> {
    let hotkey = Hotkey::parse(address.trim())?;
    let nonce = random_token(18);
    let expires_at = now + SIGN_IN_TTL_SECS;
    let message = SignInMessage {
        domain: domain_of(public_url),
        address: hotkey.to_string(),
        statement: STATEMENT.to_owned(),
        uri: public_url.as_str().trim_end_matches('/').to_owned(),
        version: "1".to_owned(),
        nonce: nonce.clone(),
        issued_at: clock::rfc3339(now),
        expiration_time: clock::rfc3339(expires_at),
    };
    let issued = issued_key(&nonce, &message.to_text());
    store::auth::insert_challenge(&mut *db.pool().acquire().await?, &issued, hotkey.as_str(), PURPOSE_WEB, expires_at).await?;
    Ok(message)
}

/// The stored challenge: the nonce and the digest of the exact text issued with it, so only
/// that text signs in. A page that rewords the statement, the URI or the dates (to make a
/// wallet show something else) gets a signature over a text we never issued.
fn issued_key(nonce: &str, text: &str) -> String {
    format!("{nonce}.{}", crate::auth::sessions::digest(text))
}

fn domain_of(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => url.as_str().to_owned(),
    }
}

/// Checks a signed message and spends its nonce; answers the hotkey that signed in.
pub async fn finish(db: &Db, public_url: &url::Url, message_text: &str, signature_hex: &str, now: i64) -> Result<Hotkey, AuthError> {
    let message = SignInMessage::parse(message_text).map_err(|e| AuthError::MalformedSignInMessage(e.to_string()))?;
    let hotkey = Hotkey::parse(&message.address)?;
    let expected_domain = domain_of(public_url);
    if message.domain != expected_domain {
        return Err(AuthError::WrongDomain(message.domain.chars().take(80).collect()));
    }
    let expires =
        clock::parse_rfc3339(&message.expiration_time).ok_or_else(|| AuthError::MalformedSignInMessage("Expiration Time".into()))?;
    if expires < now {
        return Err(AuthError::ExpiredSignIn);
    }
    let signature = signature::parse_signature_hex(signature_hex.trim()).ok_or(AuthError::MalformedSignature)?;
    if !signature::verify(hotkey.public_key(), message_text.as_bytes(), &signature) {
        return Err(AuthError::BadSignature);
    }
    // Spend the nonce only after the signature holds, so a forged attempt cannot burn a
    // miner's pending sign-in.
    let issued = issued_key(&message.nonce, message_text);
    if !store::auth::spend_challenge(&mut *db.pool().acquire().await?, &issued, hotkey.as_str(), PURPOSE_WEB, now).await? {
        return Err(AuthError::UnknownChallenge);
    }
    Ok(hotkey)
}
