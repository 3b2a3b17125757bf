//! The service layer. The REST handlers (server), the Leptos server functions (app) and
//! the tests all call these functions; none of them talks to the database or a provider
//! directly.

pub mod agents;
pub mod audit;
pub mod auth;
pub mod budget;
pub mod catalog;
pub mod clock;
pub mod code_url;
pub mod config;
pub mod connections;
pub mod db;
pub mod domain;
pub mod failure;
pub mod gateway;
pub mod providers;
pub mod rate_limit;
pub mod runs;
pub mod services;
pub mod session_store;
pub mod store;
pub mod vault;

pub use config::Settings;
pub use db::Db;
pub use services::{ServiceError, Services};
