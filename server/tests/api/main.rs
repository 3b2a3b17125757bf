//! Integration tests: the real server on a random port, a fresh database per test, the
//! provider simulator behind the configured base URLs. Every test that touches storage runs
//! on SQLite and on PostgreSQL (`both_engines!`).

mod helpers;

mod auth;
mod connections;
mod faults;
mod foundation;
mod gateway;
mod hardening;
mod openapi;
mod oro_clients;
mod python_sdk;
mod runs;
mod security;
