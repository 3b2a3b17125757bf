//! The oro-inference service: start-up, telemetry and the HTTP surface over the service layer.

pub mod gateway;
pub mod http;
pub mod operator;
pub mod startup;
pub mod telemetry;
