//! The commands' bodies: each takes an [`crate::client::ApiClient`] and prints oro-sdk's lines.

pub mod budget;
pub mod inference;
pub mod runs;
pub mod submit;
