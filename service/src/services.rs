//! The handle every caller holds: settings, storage and the provider clients.

use std::sync::Arc;

use crate::config::Settings;
use crate::db::Db;

#[derive(Clone)]
pub struct Services {
    pub settings: Arc<Settings>,
    pub db: Db,
}

impl Services {
    pub fn new(settings: Settings, db: Db) -> Self {
        Services { settings: Arc::new(settings), db }
    }
}
