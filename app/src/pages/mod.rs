pub mod dashboard;
pub mod home;
pub mod models;
pub mod oauth_callback;
