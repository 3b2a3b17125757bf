//! `vault_data_keys` and the sealed values the vault re-seals in a rotation.

use super::Conn;

/// The advisory-lock namespace (PostgreSQL's two-key form) of creating the first data key.
const FIRST_DATA_KEY_LOCK_SPACE: i32 = 0x0a17;

/// A data key as stored: wrapped by the master key `master_key_id`.
#[derive(Debug, sqlx::FromRow)]
pub struct DataKey {
    pub id: String,
    pub master_key_id: String,
    pub wrapped_key: Vec<u8>,
    pub created_at: i64,
}

/// Data keys, oldest first: the last one seals new values.
pub async fn data_keys(conn: &mut Conn) -> Result<Vec<DataKey>, sqlx::Error> {
    sqlx::query_as("SELECT id, master_key_id, wrapped_key, created_at FROM vault_data_keys ORDER BY created_at, id").fetch_all(conn).await
}

/// PostgreSQL only: waits for this transaction's turn to create the first data key, held to
/// its end, so replicas starting together on an empty database make one between them.
pub async fn take_first_data_key_turn(conn: &mut Conn) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, 0)").bind(FIRST_DATA_KEY_LOCK_SPACE).execute(conn).await?;
    Ok(())
}

/// Whether any data key is stored (read after taking the turn: another replica's counts).
pub async fn has_data_key(conn: &mut Conn) -> Result<bool, sqlx::Error> {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM vault_data_keys").fetch_one(conn).await?;
    Ok(count != 0)
}

/// When the newest data key was created, if there is one: a new key is stamped after it, so
/// it seals from then on even when clocks disagree.
pub async fn newest_created_at(conn: &mut Conn) -> Result<Option<i64>, sqlx::Error> {
    let (newest,): (Option<i64>,) = sqlx::query_as("SELECT MAX(created_at) FROM vault_data_keys").fetch_one(conn).await?;
    Ok(newest)
}

pub async fn add_data_key(conn: &mut Conn, id: &str, master_key_id: &str, wrapped_key: &[u8], created_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO vault_data_keys (id, master_key_id, wrapped_key, created_at) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(master_key_id)
        .bind(wrapped_key)
        .bind(created_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes a data key nothing is sealed with any more. False when it was gone already.
pub async fn retire_data_key(conn: &mut Conn, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM vault_data_keys WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

/// The master keys some data key is wrapped by (the others can leave the key file).
pub async fn master_keys_in_use(conn: &mut Conn) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT master_key_id FROM vault_data_keys").fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// A connection's sealed credential; `provider` as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct SealedConnection {
    pub hotkey: String,
    pub provider: String,
    pub ciphertext: Vec<u8>,
}

pub async fn sealed_connections(conn: &mut Conn) -> Result<Vec<SealedConnection>, sqlx::Error> {
    sqlx::query_as("SELECT hotkey, provider, ciphertext FROM connections ORDER BY hotkey, provider").fetch_all(conn).await
}

/// A pending revocation's sealed credential; `provider` as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct SealedRevocation {
    pub id: String,
    pub hotkey: String,
    pub provider: String,
    pub ciphertext: Vec<u8>,
}

pub async fn sealed_revocations(conn: &mut Conn) -> Result<Vec<SealedRevocation>, sqlx::Error> {
    sqlx::query_as("SELECT id, hotkey, provider, ciphertext FROM pending_revocations ORDER BY id").fetch_all(conn).await
}

/// The sealed PKCE verifiers of the authorizations in progress: (state hash, sealed verifier).
pub async fn sealed_oauth_verifiers(conn: &mut Conn) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as("SELECT state_hash, sealed_verifier FROM oauth_states ORDER BY state_hash").fetch_all(conn).await
}

/// The sealed upstream keys the gateway forwards with: (gateway token hash, sealed key).
/// Retired tokens hold none.
pub async fn sealed_run_keys(conn: &mut Conn) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as("SELECT key_hash, upstream_sealed FROM run_keys WHERE upstream_sealed IS NOT NULL ORDER BY key_hash")
        .fetch_all(conn)
        .await
}

/// Every table that holds sealed values: its sealed column, and the condition that finds a
/// value's row by its key (bound from `$3` on).
const SEALED_TABLES: [(&str, &str, &str); 4] = [
    ("connections", "ciphertext", "hotkey = $3 AND provider = $4"),
    ("pending_revocations", "ciphertext", "id = $3"),
    ("oauth_states", "sealed_verifier", "state_hash = $3"),
    ("run_keys", "upstream_sealed", "key_hash = $3"),
];

/// Writes `resealed` over the value `old` in `table` (one of the tables read above), in the
/// row whose key is `row` (connections: hotkey and provider; the others: their id or hash).
/// False when the value changed meanwhile (a refresh rotated a token, a disconnect): one
/// statement, so it never overwrites a newer value.
pub async fn reseal(conn: &mut Conn, table: &str, row: &[String], old: &[u8], resealed: &[u8]) -> Result<bool, sqlx::Error> {
    let (_, column, key) = SEALED_TABLES.iter().find(|(t, _, _)| *t == table).expect("a known table");
    let sql = format!("UPDATE {} SET {column} = $1 WHERE {column} = $2 AND {key}", table);
    let mut update = sqlx::query(&sql).bind(resealed).bind(old);
    for part in row {
        update = update.bind(part);
    }
    Ok(update.execute(conn).await?.rows_affected() == 1)
}

/// What the vault's tests store and read back where the connections and the gateway would.
#[cfg(test)]
pub mod testing {
    use super::Conn;

    /// Alice's OpenRouter connection, holding `ciphertext`.
    pub async fn insert_connection(conn: &mut Conn, ciphertext: &[u8]) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO connections (hotkey, provider, state, label, ciphertext, connected_at, updated_at, refresh_lock_until) VALUES ('5Alice', 'openrouter', 'connected', 'a', $1, 0, 0, 0)")
            .bind(ciphertext)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Alice's gateway token `gw-hash`, holding the sealed upstream key `upstream_sealed`.
    pub async fn insert_gateway_token(conn: &mut Conn, upstream_sealed: &[u8]) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO run_keys (key_hash, hotkey, eval_run_id, minted_by, cap_usd, expires_at, created_at, upstream_key_hash, upstream_sealed) VALUES ('gw-hash', '5Alice', 'run', 'gateway:openrouter', 5, 0, 0, 'or-hash', $1)")
            .bind(upstream_sealed)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// The only connection's ciphertext.
    pub async fn connection_ciphertext(conn: &mut Conn) -> Result<Vec<u8>, sqlx::Error> {
        Ok(sqlx::query_as::<_, (Vec<u8>,)>("SELECT ciphertext FROM connections").fetch_one(conn).await?.0)
    }

    /// The only run key's sealed upstream key.
    pub async fn upstream_sealed(conn: &mut Conn) -> Result<Vec<u8>, sqlx::Error> {
        Ok(sqlx::query_as::<_, (Vec<u8>,)>("SELECT upstream_sealed FROM run_keys").fetch_one(conn).await?.0)
    }
}
