//! End-to-end tests of the `oro` binary: the real server with the provider simulator
//! (SQLite), wallets written by Python's bittensor_wallet, the Chutes browser flow driven
//! through the simulated IdP and the loopback listener.

mod helpers;

mod chutes;
mod inference;
mod submit;
mod transport;
mod wallet;
