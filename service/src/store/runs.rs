//! `eval_runs` through a claim, and the `run_keys` rows a claim records.
//!
//! A claim is two transactions around the provider calls: [`reserve`] (with the miner's
//! terms and [`pin`]) before, [`record_hand_out`] (keys, credential, lease and audit line)
//! after.
//! A run between the two is `running` with `cap_usd` set and no `key_hash`: the budget counts
//! it as reserved (`committed_since`).

use super::{Conn, Query};
use crate::db::Backend;
use crate::runs::RunStatus;

/// The advisory-lock namespace of per-validator claims (PostgreSQL's two-key form).
const VALIDATOR_CLAIM_LOCK_SPACE: i32 = 0x0c1a;

/// Seconds a reservation holds its run before a claim hands it out: if the claiming replica
/// dies in between, the reaper takes the run back after this.
const RESERVATION_SECS: i64 = 300;

/// A run a claim took from the queue.
#[derive(Debug, sqlx::FromRow)]
pub struct Reserved {
    pub id: String,
    pub hotkey: String,
    pub agent_version_id: String,
    pub suite_id: i64,
    /// Claims of this run that failed before (backs off the next requeue).
    pub claim_retries: i64,
}

/// Takes the oldest claimable run for `validator` unless it already holds `max_held`. Two
/// validators never get the same run (PostgreSQL skips rows another claim holds; SQLite
/// runs one statement at a time). Call inside a transaction: on PostgreSQL the validator's
/// lock is held to its end.
pub async fn reserve(conn: &mut Conn, backend: Backend, validator: &str, now: i64, max_held: i64) -> Result<Option<Reserved>, sqlx::Error> {
    let pick = match backend {
        Backend::Postgres => {
            // Under READ COMMITTED, parallel claims of one validator each lock a different
            // row and none sees the others' uncommitted ones: all would pass the count. One
            // lock per validator makes them take turns (each statement then sees the rows
            // the one before committed). SQLite writes one at a time anyway.
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(VALIDATOR_CLAIM_LOCK_SPACE)
                .bind(validator)
                .execute(&mut *conn)
                .await?;
            "SELECT id FROM eval_runs WHERE status = $4 AND not_before <= $3 ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED"
        }
        Backend::Sqlite => "SELECT id FROM eval_runs WHERE status = $4 AND not_before <= $3 ORDER BY seq LIMIT 1",
    };
    // The capacity check rides in the same statement, so parallel claims from one validator
    // cannot all slip under it.
    let sql = format!(
        "UPDATE eval_runs SET status = $1, validator_hotkey = $2, claimed_at = $3, lease_expires_at = $3 + {RESERVATION_SECS}, updated_at = $3
         WHERE id = ({pick}) AND status = $4
           AND (SELECT COUNT(*) FROM eval_runs held WHERE held.validator_hotkey = $2 AND held.status = $1) < $5
         RETURNING id, hotkey, agent_version_id, suite_id, claim_retries"
    );
    sqlx::query_as(&sql)
        .bind(RunStatus::Running)
        .bind(validator)
        .bind(now)
        .bind(RunStatus::Queued)
        .bind(max_held)
        .fetch_optional(conn)
        .await
}

/// How many runs `validator` holds.
pub async fn held_by(conn: &mut Conn, validator: &str) -> Result<i64, sqlx::Error> {
    let (held,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM eval_runs WHERE validator_hotkey = $1 AND status = $2")
        .bind(validator)
        .bind(RunStatus::Running)
        .fetch_one(conn)
        .await?;
    Ok(held)
}

/// Pins a reserved run to the provider it will use and commits its cap (`None`: a run whose
/// credential has no cap of ours, a direct Chutes token).
pub async fn pin(conn: &mut Conn, run_id: &str, provider: wire::Provider, cap_usd: Option<f64>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE eval_runs SET provider = $1, cap_usd = $2 WHERE id = $3")
        .bind(provider.as_str())
        .bind(crate::db::NullableF64(cap_usd))
        .bind(run_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The credential a run was handed: the hash of its key (an OpenRouter key, or the gateway's
/// run token), its cap and when it expires.
#[derive(Debug, Clone)]
pub struct RunCredential {
    pub key_hash: String,
    pub cap_usd: f64,
    pub expires_at: i64,
}

/// Hands the reserved run out: its credential (none for a direct Chutes token) and the
/// validator's lease.
pub async fn hand_out(
    conn: &mut Conn,
    run_id: &str,
    credential: Option<&RunCredential>,
    lease_expires_at: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    bind_hand_out(sqlx::query(HAND_OUT), run_id, credential, lease_expires_at, now).execute(conn).await?;
    Ok(())
}

/// [`hand_out`]'s statement: its parameters come first wherever it is used.
const HAND_OUT: &str = "UPDATE eval_runs SET key_hash = $1, cap_usd = COALESCE($2, cap_usd), token_expires_at = $3, lease_expires_at = $4, updated_at = $5 WHERE id = $6";
const HAND_OUT_PARAMETERS: usize = 6;

fn bind_hand_out<'q>(
    query: Query<'q>,
    run_id: &'q str,
    credential: Option<&'q RunCredential>,
    lease_expires_at: i64,
    now: i64,
) -> Query<'q> {
    query
        .bind(credential.map(|c| c.key_hash.as_str()))
        .bind(crate::db::NullableF64(credential.map(|c| c.cap_usd)))
        .bind(credential.map(|c| c.expires_at))
        .bind(lease_expires_at)
        .bind(now)
        .bind(run_id)
}

/// The claim's second phase: what [`record_hand_out`] writes.
pub struct HandOut<'a> {
    pub run_id: &'a str,
    /// The `run_keys` rows (none for a direct Chutes token).
    pub keys: &'a [KeyRecord],
    pub credential: Option<&'a RunCredential>,
    pub lease_expires_at: i64,
    /// The miner's audit line for the credential.
    pub line: &'a super::audit::NewEvent<'a>,
}

/// Records a claim's second phase: its keys ([`record_key`]), the run's credential and lease
/// ([`hand_out`]) and the miner's audit line. PostgreSQL takes it as one statement (data-
/// modifying CTEs): a round trip each was three of a claim's fourteen, and the database's own
/// work per statement was half of a claim's CPU. SQLite runs the three in turn, in process.
pub async fn record_hand_out(conn: &mut Conn, backend: Backend, hand: &HandOut<'_>, now: i64) -> Result<(), sqlx::Error> {
    if backend == Backend::Sqlite {
        for key in hand.keys {
            record_key(&mut *conn, key, now).await?;
        }
        hand_out(&mut *conn, hand.run_id, hand.credential, hand.lease_expires_at, now).await?;
        return super::audit::insert(conn, hand.line).await;
    }
    // The run's parameters first ($1 to $6, as `hand_out` numbers them), then each key's, then
    // the audit line's.
    let mut sql = format!("WITH run AS ({HAND_OUT})");
    let mut next = HAND_OUT_PARAMETERS + 1;
    if !hand.keys.is_empty() {
        let rows: Vec<String> = hand
            .keys
            .iter()
            .map(|_| {
                let row = format!("({})", super::placeholders(KEY_COLUMNS, next));
                next += KEY_COLUMNS.split(',').count();
                row
            })
            .collect();
        sql.push_str(&format!(", keys AS (INSERT INTO run_keys ({KEY_COLUMNS}) VALUES {})", rows.join(", ")));
    }
    sql.push_str(&format!(
        " INSERT INTO audit_events ({}) VALUES ({})",
        super::audit::COLUMNS,
        super::placeholders(super::audit::COLUMNS, next)
    ));
    let mut query = bind_hand_out(sqlx::query(&sql), hand.run_id, hand.credential, hand.lease_expires_at, now);
    for key in hand.keys {
        query = bind_key(query, key, now);
    }
    super::audit::bind(query, hand.line).execute(conn).await?;
    Ok(())
}

const KEY_COLUMNS: &str =
    "key_hash, hotkey, eval_run_id, minted_by, cap_usd, expires_at, created_at, upstream_key_hash, upstream_sealed, disabled_at, usage_usd";

fn bind_key<'q>(query: Query<'q>, key: &'q KeyRecord, now: i64) -> Query<'q> {
    query
        .bind(&key.key_hash)
        .bind(&key.hotkey)
        .bind(&key.run_id)
        .bind(&key.minted_by)
        .bind(key.cap_usd)
        .bind(key.expires_at)
        .bind(now)
        .bind(key.upstream.as_ref().map(|(hash, _)| hash.as_str()))
        .bind(key.upstream.as_ref().map(|(_, sealed)| sealed.clone()))
        .bind(key.disabled_at)
        // Disabled before use, it spent nothing and commits nothing to the budget.
        .bind(crate::db::NullableF64(key.disabled_at.map(|_| 0.0)))
}

/// A `run_keys` row: an OpenRouter key minted for a run, or a gateway run token.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub key_hash: String,
    pub hotkey: String,
    pub run_id: String,
    /// The management key's fingerprint, or `gateway::gateway_minter(provider)`.
    pub minted_by: String,
    pub cap_usd: f64,
    pub expires_at: i64,
    /// For a gateway token over an OpenRouter key: that key's hash and the key, sealed.
    pub upstream: Option<(String, Vec<u8>)>,
    /// Set when the key is recorded already disabled (it never reached a validator).
    pub disabled_at: Option<i64>,
}

pub async fn record_key(conn: &mut Conn, key: &KeyRecord, now: i64) -> Result<(), sqlx::Error> {
    let sql = format!("INSERT INTO run_keys ({KEY_COLUMNS}) VALUES ({})", super::placeholders(KEY_COLUMNS, 1));
    bind_key(sqlx::query(&sql), key, now).execute(conn).await?;
    Ok(())
}

/// Marks a recorded key disabled before it was used: it spent nothing.
pub async fn disable_unused_key(conn: &mut Conn, key_hash: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE run_keys SET disabled_at = $1, usage_usd = 0 WHERE key_hash = $2").bind(now).bind(key_hash).execute(conn).await?;
    Ok(())
}

/// Which runs a guarded change applies to: any, or only while `validator` holds it running.
#[derive(Debug, Clone, Copy)]
pub enum Holder<'a> {
    Any,
    Running(&'a str),
}

/// The run could not be handed out and fails with `reason` (the miner reads it). Answers
/// whether the run was changed (a guarded run may have moved on).
pub async fn fail_claim(conn: &mut Conn, run_id: &str, reason: &str, holder: Holder<'_>, now: i64) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "UPDATE eval_runs SET status = $1, failure_reason = $2, completed_at = $3, validator_hotkey = NULL, lease_expires_at = NULL, key_hash = NULL, cap_usd = NULL, token_expires_at = NULL, updated_at = $3
         WHERE id = $4{}",
        guard(holder, 5)
    );
    let query = sqlx::query(&sql).bind(RunStatus::Failed).bind(reason).bind(now).bind(run_id);
    let done = bind_guard(query, holder).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

/// The run goes back to the queue, claimable again from `not_before`, as if never claimed;
/// `count_retry` adds one to the claims of it that failed.
pub async fn requeue_claim(
    conn: &mut Conn,
    run_id: &str,
    not_before: i64,
    count_retry: bool,
    holder: Holder<'_>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "UPDATE eval_runs SET status = $1, provider = NULL, validator_hotkey = NULL, lease_expires_at = NULL, not_before = $2, failure_reason = NULL, key_hash = NULL, cap_usd = NULL, token_expires_at = NULL, provider_refusal = NULL, claim_retries = claim_retries + $3, updated_at = $4
         WHERE id = $5{}",
        guard(holder, 6)
    );
    let query = sqlx::query(&sql).bind(RunStatus::Queued).bind(not_before).bind(i64::from(count_retry)).bind(now).bind(run_id);
    let done = bind_guard(query, holder).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

/// The guard's condition, its parameters numbered from `first`.
fn guard(holder: Holder<'_>, first: usize) -> String {
    match holder {
        Holder::Any => String::new(),
        Holder::Running(_) => format!(" AND status = ${first} AND validator_hotkey = ${}", first + 1),
    }
}

fn bind_guard<'q>(query: AnyQuery<'q>, holder: Holder<'q>) -> AnyQuery<'q> {
    match holder {
        Holder::Any => query,
        Holder::Running(validator) => query.bind(RunStatus::Running).bind(validator),
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// A run's failed claims so far.
pub async fn claim_retries(conn: &mut Conn, run_id: &str, holder: Holder<'_>) -> Result<Option<i64>, sqlx::Error> {
    let row: Option<(i64,)> = match holder {
        Holder::Any => sqlx::query_as("SELECT claim_retries FROM eval_runs WHERE id = $1").bind(run_id).fetch_optional(conn).await?,
        Holder::Running(validator) => {
            sqlx::query_as("SELECT claim_retries FROM eval_runs WHERE id = $1 AND status = $2 AND validator_hotkey = $3")
                .bind(run_id)
                .bind(RunStatus::Running)
                .bind(validator)
                .fetch_optional(conn)
                .await?
        }
    };
    Ok(row.map(|(r,)| r))
}

/// Who holds a run, as the validator routes check it.
#[derive(Debug, sqlx::FromRow)]
pub struct Holding {
    pub status: RunStatus,
    pub validator_hotkey: Option<String>,
    pub key_hash: Option<String>,
}

pub async fn holding(conn: &mut Conn, run_id: &str) -> Result<Option<Holding>, sqlx::Error> {
    sqlx::query_as("SELECT status, validator_hotkey, key_hash FROM eval_runs WHERE id = $1").bind(run_id).fetch_optional(conn).await
}

/// Extends the lease of a run `validator` holds (and keeps its latest progress report); false
/// when it no longer holds it.
pub async fn renew_lease(
    conn: &mut Conn,
    run_id: &str,
    validator: &str,
    lease_expires_at: i64,
    progress: Option<String>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let renewed = sqlx::query(
        "UPDATE eval_runs SET lease_expires_at = $1, progress = COALESCE($2, progress), updated_at = $3 WHERE id = $4 AND status = $5 AND validator_hotkey = $6",
    )
    .bind(lease_expires_at)
    .bind(progress)
    .bind(now)
    .bind(run_id)
    .bind(RunStatus::Running)
    .bind(validator)
    .execute(conn)
    .await?;
    Ok(renewed.rows_affected() > 0)
}

/// What a validator reported at the end of a run it holds.
#[derive(Debug)]
pub struct Outcome {
    pub status: RunStatus,
    pub failure_reason: Option<String>,
    pub score: Option<f64>,
}

/// What was recorded: a run whose provider refused payment through the gateway fails with that
/// reason, whatever the validator reported. `None` when `validator` no longer holds the run.
#[derive(Debug, sqlx::FromRow)]
pub struct Recorded {
    pub status: RunStatus,
    pub failure_reason: Option<String>,
}

pub async fn complete(conn: &mut Conn, run_id: &str, validator: &str, outcome: Outcome, now: i64) -> Result<Option<Recorded>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE eval_runs SET status = CASE WHEN provider_refusal IS NULL THEN $1 ELSE $8 END, failure_reason = COALESCE(provider_refusal, $2),
             score = $3, completed_at = $4, lease_expires_at = NULL, updated_at = $4
         WHERE id = $5 AND status = $6 AND validator_hotkey = $7 RETURNING status, failure_reason",
    )
    .bind(outcome.status)
    .bind(outcome.failure_reason)
    .bind(crate::db::NullableF64(outcome.score))
    .bind(now)
    .bind(run_id)
    .bind(RunStatus::Running)
    .bind(validator)
    .bind(RunStatus::Failed)
    .fetch_optional(conn)
    .await
}

/// A running run whose lease ran out, as the reaper reads it.
#[derive(Debug, sqlx::FromRow)]
pub struct Abandoned {
    pub id: String,
    /// Leases of it that ran out before this one.
    pub attempts: i64,
    pub key_hash: Option<String>,
    pub provider: Option<String>,
    pub hotkey: String,
}

pub async fn abandoned(conn: &mut Conn, now: i64) -> Result<Vec<Abandoned>, sqlx::Error> {
    sqlx::query_as("SELECT id, attempts, key_hash, provider, hotkey FROM eval_runs WHERE status = $1 AND lease_expires_at < $2")
        .bind(RunStatus::Running)
        .bind(now)
        .fetch_all(conn)
        .await
}

/// An abandoned run fails (it was abandoned `attempts` times); false when its lease was renewed
/// meanwhile.
pub async fn fail_abandoned(conn: &mut Conn, run_id: &str, attempts: i64, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE eval_runs SET status = $1, failure_reason = $2, completed_at = $3, lease_expires_at = NULL, attempts = $6, updated_at = $3
         WHERE id = $4 AND status = $5 AND lease_expires_at < $3",
    )
    .bind(RunStatus::Failed)
    .bind(format!("abandoned: {attempts} validators took this run and stopped reporting"))
    .bind(now)
    .bind(run_id)
    .bind(RunStatus::Running)
    .bind(attempts)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An abandoned run goes back to the queue (the next claim mints a new credential, on the
/// default then); false when its lease was renewed meanwhile.
pub async fn requeue_abandoned(conn: &mut Conn, run_id: &str, attempts: i64, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE eval_runs SET status = $1, provider = NULL, validator_hotkey = NULL, lease_expires_at = NULL, key_hash = NULL, cap_usd = NULL, token_expires_at = NULL, provider_refusal = NULL, attempts = $5, updated_at = $2
         WHERE id = $3 AND status = $4 AND lease_expires_at < $2",
    )
    .bind(RunStatus::Queued)
    .bind(now)
    .bind(run_id)
    .bind(RunStatus::Running)
    .bind(attempts)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Up to `limit` keys still live whose run ended (or no longer names them) or whose expiry
/// passed, oldest expiry first. A gateway token wrapping an OpenRouter key lives as long as
/// that key's run.
pub async fn stale_keys(conn: &mut Conn, now: i64, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT k.key_hash FROM run_keys k LEFT JOIN eval_runs r ON r.key_hash = COALESCE(k.upstream_key_hash, k.key_hash)
         WHERE k.disabled_at IS NULL AND k.orphaned_at IS NULL AND (k.expires_at < $1 OR r.id IS NULL OR r.status <> $2)
         ORDER BY k.expires_at LIMIT $3",
    )
    .bind(now)
    .bind(RunStatus::Running)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(hash,)| hash).collect())
}

/// A run as its miner's Stop reads it.
#[derive(Debug, sqlx::FromRow)]
pub struct Owned {
    pub status: RunStatus,
    pub hotkey: String,
    pub key_hash: Option<String>,
    pub provider: Option<String>,
}

pub async fn owned(conn: &mut Conn, run_id: &str) -> Result<Option<Owned>, sqlx::Error> {
    sqlx::query_as("SELECT status, hotkey, key_hash, provider FROM eval_runs WHERE id = $1").bind(run_id).fetch_optional(conn).await
}

/// What the run spent, as recorded when its credential was retired.
pub async fn spend(conn: &mut Conn, run_id: &str) -> Result<Option<f64>, sqlx::Error> {
    let row: Option<(Option<f64>,)> =
        sqlx::query_as("SELECT spend_usd FROM eval_runs WHERE id = $1").bind(run_id).fetch_optional(conn).await?;
    Ok(row.and_then(|(spend,)| spend))
}

/// Records what the run spent, by the run or by the key it names.
pub async fn record_spend(conn: &mut Conn, run: SpendOf<'_>, usd: f64) -> Result<(), sqlx::Error> {
    let (sql, id) = match run {
        SpendOf::Run(id) => ("UPDATE eval_runs SET spend_usd = $1 WHERE id = $2", id),
        SpendOf::KeyHash(hash) => ("UPDATE eval_runs SET spend_usd = $1 WHERE key_hash = $2", hash),
    };
    sqlx::query(sql).bind(usd).bind(id).execute(conn).await?;
    Ok(())
}

/// Which run a spend belongs to.
#[derive(Debug, Clone, Copy)]
pub enum SpendOf<'a> {
    Run(&'a str),
    KeyHash(&'a str),
}

/// Queues a new run of an agent version; `seq` orders the queue.
pub async fn queue(
    conn: &mut Conn,
    run_id: &str,
    seq: i64,
    agent_version_id: &str,
    hotkey: &str,
    suite_id: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO eval_runs (id, seq, agent_version_id, hotkey, suite_id, status, attempts, not_before, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, $7)",
    )
    .bind(run_id)
    .bind(seq)
    .bind(agent_version_id)
    .bind(hotkey)
    .bind(suite_id)
    .bind(RunStatus::Queued)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A run's status; none when there is no such run.
pub async fn status(conn: &mut Conn, run_id: &str) -> Result<Option<RunStatus>, sqlx::Error> {
    let row: Option<(RunStatus,)> = sqlx::query_as("SELECT status FROM eval_runs WHERE id = $1").bind(run_id).fetch_optional(conn).await?;
    Ok(row.map(|(status,)| status))
}

/// What a presigned code link is checked against: the run's agent version and who holds it.
#[derive(Debug, sqlx::FromRow)]
pub struct CodeHolder {
    pub agent_version_id: String,
    pub validator_hotkey: Option<String>,
    pub status: RunStatus,
}

pub async fn code_holder(conn: &mut Conn, run_id: &str) -> Result<Option<CodeHolder>, sqlx::Error> {
    sqlx::query_as("SELECT agent_version_id, validator_hotkey, status FROM eval_runs WHERE id = $1").bind(run_id).fetch_optional(conn).await
}

/// Whether `validator` holds a running run of this agent version.
pub async fn validator_runs_version(conn: &mut Conn, agent_version_id: &str, validator: &str) -> Result<bool, sqlx::Error> {
    let held: Option<(String,)> =
        sqlx::query_as("SELECT id FROM eval_runs WHERE agent_version_id = $1 AND validator_hotkey = $2 AND status = $3 LIMIT 1")
            .bind(agent_version_id)
            .bind(validator)
            .bind(RunStatus::Running)
            .fetch_optional(conn)
            .await?;
    Ok(held.is_some())
}

/// A run as its miner sees it in the list.
#[derive(Debug, sqlx::FromRow)]
pub struct MinerRun {
    pub id: String,
    pub agent_name: String,
    pub agent_version_id: String,
    pub status: RunStatus,
    pub provider: Option<String>,
    pub failure_reason: Option<String>,
    pub cap_usd: Option<f64>,
    /// The final spend once the run ended; before, a gateway run's live spend.
    pub spend_usd: Option<f64>,
    pub score: Option<f64>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    /// When the credential the run's validator holds was disabled, if it was.
    pub credential_disabled_at: Option<i64>,
}

/// A miner's newest runs, newest first. `gateway_minters` name the run gateway's tokens,
/// whose rows hold a running run's spend.
pub async fn of_miner(conn: &mut Conn, hotkey: &str, limit: i64, gateway_minters: [&str; 2]) -> Result<Vec<MinerRun>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id, a.agent_name, r.agent_version_id, r.status, r.provider, r.failure_reason, r.cap_usd,
                COALESCE(r.spend_usd, k.spent_usd) AS spend_usd, r.score, r.created_at, r.completed_at,
                COALESCE(k.disabled_at, c.disabled_at) AS credential_disabled_at
         FROM eval_runs r JOIN agent_versions v ON v.id = r.agent_version_id JOIN agents a ON a.id = v.agent_id
         LEFT JOIN run_keys k ON k.minted_by IN ($3, $4) AND (k.key_hash = r.key_hash OR k.upstream_key_hash = r.key_hash)
         -- What the validator holds: the gateway token (k; for OpenRouter behind the gateway
         -- it wraps the run's key, which may be disabled later or never, after a disconnect),
         -- else the run's own OpenRouter key (c).
         LEFT JOIN run_keys c ON c.key_hash = r.key_hash
         WHERE r.hotkey = $1 ORDER BY r.seq DESC LIMIT $2",
    )
    .bind(hotkey)
    .bind(limit)
    .bind(gateway_minters[0])
    .bind(gateway_minters[1])
    .fetch_all(conn)
    .await
}

/// Marks a running run whose provider refused payment (the first refusal is kept).
pub async fn mark_provider_refusal(conn: &mut Conn, run_id: &str, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE eval_runs SET provider_refusal = $1 WHERE id = $2 AND status = $3 AND provider_refusal IS NULL")
        .bind(reason)
        .bind(run_id)
        .bind(RunStatus::Running)
        .execute(conn)
        .await?;
    Ok(())
}

/// What a miner's runs have committed since `since` (the budget's month): every minted key's
/// recorded spend, else its cap (abandoned attempts included), plus the caps reserved by
/// claims still minting (running, capped, no key yet).
pub async fn committed_since(conn: &mut Conn, hotkey: &str, since: i64) -> Result<f64, sqlx::Error> {
    let (minted,): (Option<f64>,) = sqlx::query_as(
        "SELECT SUM(COALESCE(usage_usd, cap_usd)) FROM run_keys WHERE hotkey = $1 AND created_at >= $2 AND upstream_key_hash IS NULL",
    )
    .bind(hotkey)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    let (reserved,): (Option<f64>,) =
        sqlx::query_as("SELECT SUM(cap_usd) FROM eval_runs WHERE hotkey = $1 AND status = $2 AND cap_usd IS NOT NULL AND key_hash IS NULL")
            .bind(hotkey)
            .bind(RunStatus::Running)
            .fetch_one(conn)
            .await?;
    Ok(minted.unwrap_or(0.0) + reserved.unwrap_or(0.0))
}
