//! `catalog_models`: the allowlisted models, in the operator's order, each under both
//! providers' names, with its prices and the one marked default.

use super::Conn;

/// One model as stored.
#[derive(Debug)]
pub struct Model {
    pub chutes_name: String,
    pub openrouter_name: String,
    pub is_default: bool,
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    pub rank_metric: Option<f64>,
    pub healthy: bool,
    pub updated_at: i64,
}

/// Flags are 0/1 integers on both engines (SQLite has no boolean for the Any driver to read).
#[derive(sqlx::FromRow)]
struct Row {
    chutes_name: String,
    openrouter_name: String,
    is_default: i64,
    input_usd_per_mtok: f64,
    output_usd_per_mtok: f64,
    rank_metric: Option<f64>,
    healthy: i64,
    updated_at: i64,
}

/// Every model, in the operator's order.
pub async fn models(conn: &mut Conn) -> Result<Vec<Model>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT chutes_name, openrouter_name, is_default, input_usd_per_mtok, output_usd_per_mtok, rank_metric, healthy, updated_at
         FROM catalog_models ORDER BY position, chutes_name",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Model {
            chutes_name: r.chutes_name,
            openrouter_name: r.openrouter_name,
            is_default: r.is_default != 0,
            input_usd_per_mtok: r.input_usd_per_mtok,
            output_usd_per_mtok: r.output_usd_per_mtok,
            rank_metric: r.rank_metric,
            healthy: r.healthy != 0,
            updated_at: r.updated_at,
        })
        .collect())
}

pub async fn is_empty(conn: &mut Conn) -> Result<bool, sqlx::Error> {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM catalog_models").fetch_one(conn).await?;
    Ok(count == 0)
}

/// Adds a model at `position` (healthy, not the default). False when either name is taken,
/// which is also how replicas seeding an empty table together meet each other's rows.
pub async fn insert(
    conn: &mut Conn,
    chutes_name: &str,
    openrouter_name: &str,
    position: i64,
    is_default: bool,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO catalog_models (chutes_name, openrouter_name, position, is_default, healthy, updated_at)
         VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT DO NOTHING",
    )
    .bind(chutes_name)
    .bind(openrouter_name)
    .bind(position)
    .bind(i64::from(is_default))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The position after the last model's.
pub async fn next_position(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    let (next,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(position), -1) + 1 FROM catalog_models").fetch_one(conn).await?;
    Ok(next)
}

/// False when no model has that Chutes name.
pub async fn remove(conn: &mut Conn, chutes_name: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM catalog_models WHERE chutes_name = $1").bind(chutes_name).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

/// Makes one model the default and every other not; two statements, so the caller passes a
/// transaction. False (and nothing changed) when no model has that Chutes name.
pub async fn set_default(conn: &mut Conn, chutes_name: &str, now: i64) -> Result<bool, sqlx::Error> {
    let hit = sqlx::query("UPDATE catalog_models SET is_default = 1, updated_at = $1 WHERE chutes_name = $2")
        .bind(now)
        .bind(chutes_name)
        .execute(&mut *conn)
        .await?;
    if hit.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("UPDATE catalog_models SET is_default = 0 WHERE chutes_name <> $1").bind(chutes_name).execute(conn).await?;
    Ok(true)
}

/// Prices the model with that name (either provider's). False when there is none.
pub async fn set_price(
    conn: &mut Conn,
    name: &str,
    input_usd_per_mtok: f64,
    output_usd_per_mtok: f64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let hit = sqlx::query(
        "UPDATE catalog_models SET input_usd_per_mtok = $1, output_usd_per_mtok = $2, updated_at = $3 WHERE chutes_name = $4 OR openrouter_name = $4",
    )
    .bind(input_usd_per_mtok)
    .bind(output_usd_per_mtok)
    .bind(now)
    .bind(name)
    .execute(conn)
    .await?;
    Ok(hit.rows_affected() > 0)
}
