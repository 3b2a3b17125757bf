//! Wire types of the ORO inference API (see `shared/CONTRACT.md`) and the exact texts that
//! get signed. Everything here is plain serde so the server, the hydrated browser bundle and
//! the `oro` CLI agree on one definition.

pub mod api;
pub mod models;
pub mod provider;
pub mod signing;
pub mod ss58;

pub use provider::Provider;
