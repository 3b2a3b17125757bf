//! Who is calling: signed API requests, API bearer sessions, browser sign-in, and roles.

mod error;
pub mod roles;
pub mod sessions;
pub mod signature;
pub mod signed_request;
pub mod web_sign_in;

pub use error::AuthError;
