//! Browser sessions (tower-sessions) stored in our own database, on either engine, so that
//! any replica behind the load balancer can serve any miner.

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use crate::db::Db;
use crate::store::web_sessions;

#[derive(Clone, Debug)]
pub struct DbSessionStore {
    db: Db,
    clock: crate::clock::Clock,
}

impl DbSessionStore {
    pub fn new(db: Db, clock: crate::clock::Clock) -> Self {
        DbSessionStore { db, clock }
    }

    pub async fn delete_expired(&self, now: i64) -> Result<u64, sqlx::Error> {
        web_sessions::delete_expired(&mut *self.db.pool().acquire().await?, now).await
    }
}

/// A session id is a bearer credential: only its digest is stored, as for API sessions, so a
/// copy of the database opens no browser session.
fn key(id: &Id) -> String {
    crate::auth::sessions::digest(&id.to_string())
}

fn backend(e: sqlx::Error) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

fn encode(record: &Record) -> Result<Vec<u8>, session_store::Error> {
    serde_json::to_vec(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        loop {
            let mut conn = self.db.pool().acquire().await.map_err(backend)?;
            let inserted = web_sessions::create(&mut conn, &key(&record.id), &encode(record)?, record.expiry_date.unix_timestamp())
                .await
                .map_err(backend)?;
            if inserted {
                return Ok(());
            }
            // A 128-bit id collided: draw another, as tower-sessions asks of stores.
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let mut conn = self.db.pool().acquire().await.map_err(backend)?;
        web_sessions::save(&mut conn, &key(&record.id), &encode(record)?, record.expiry_date.unix_timestamp()).await.map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let mut conn = self.db.pool().acquire().await.map_err(backend)?;
        let row = web_sessions::load(&mut conn, &key(id), self.clock.now()).await.map_err(backend)?;
        let Some((data, expires_at)) = row else {
            return Ok(None);
        };
        let data = serde_json::from_slice(&data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        let expiry_date = time::OffsetDateTime::from_unix_timestamp(expires_at).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record { id: *id, data, expiry_date }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let mut conn = self.db.pool().acquire().await.map_err(backend)?;
        web_sessions::delete(&mut conn, &key(id)).await.map_err(backend)
    }
}
