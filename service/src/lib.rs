//! The service layer. The REST handlers (server), the Leptos server functions (app) and
//! the tests all call these functions; none of them talks to the database or a provider
//! directly.

pub mod auth;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod services;
pub mod session_store;

pub use config::Settings;
pub use db::Db;
pub use services::Services;
