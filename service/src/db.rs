//! Storage: one code path over SQLite (the embedded default) and PostgreSQL (to scale out).
//!
//! Every statement is written once, in the dialect both engines accept: `$N` parameters
//! (sqlx's SQLite driver binds `$N` by number), whole Unix seconds instead of timestamps,
//! `ON CONFLICT ... DO UPDATE` and `RETURNING`. The few places where the engines really
//! differ (row locking for claims) ask [`Db::backend`].

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Whether PostgreSQL aborted the transaction to break a deadlock (40P01) or a serialization
/// conflict (40001): nothing it wrote stays, and running it again is the cure.
pub fn is_lock_conflict(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|code| code == "40P01" || code == "40001")
}

impl Db {
    /// Opens (and for SQLite, creates) the database and runs the migrations.
    pub async fn connect(database_url: &SecretString) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let url = database_url.expose_secret();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };

        let pool = match backend {
            Backend::Sqlite => {
                let url = ensure_sqlite_file(url)?;
                let options = AnyConnectOptions::from_str(&url).map_err(DbError::Connect)?;
                // SQLite has one writer. A single connection in WAL mode serializes every
                // transaction in-process instead of failing them with SQLITE_BUSY, which is
                // the right trade for the embedded default; PostgreSQL is the scale-out path.
                AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await
                    .map_err(DbError::Connect)?
            }
            Backend::Postgres => {
                let options = AnyConnectOptions::from_str(url).map_err(DbError::Connect)?;
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .map_err(DbError::Connect)?
            }
        };

        let db = Db { pool, backend };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), DbError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Readiness: the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Makes sure the directory of a `sqlite:` file exists and the file is created on first run.
fn ensure_sqlite_file(url: &str) -> Result<String, DbError> {
    let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path != ":memory:"
        && !path.is_empty()
        && let Some(parent) = Path::new(path).parent().filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|source| DbError::CreateDir { path: parent.display().to_string(), source })?;
    }
    // The file holds sealed credentials and session records: readable by the service's user
    // only. SQLite gives its -wal and -shm files the main file's mode.
    #[cfg(unix)]
    if path != ":memory:" && !path.is_empty() {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path);
        let secured = file.and_then(|_| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)));
        secured.map_err(|source| DbError::CreateDir { path: path.to_owned(), source })?;
    }
    let mut url = format!("sqlite://{path}");
    match query {
        Some(q) if q.contains("mode=") => url.push_str(&format!("?{q}")),
        Some(q) => url.push_str(&format!("?{q}&mode=rwc")),
        None => url.push_str("?mode=rwc"),
    }
    Ok(url)
}

/// A nullable `DOUBLE PRECISION` bind that stays one type on PostgreSQL.
///
/// sqlx 0.8.6's `Any` driver hands a NULL `f64` to PostgreSQL as a `float4` NULL (its
/// `Null(Double)`/`Null(Real)` arms are swapped, `sqlx-core/src/any/arguments.rs`). A
/// statement first prepared with that NULL is cached with a `float4` parameter, and the same
/// statement later bound with a value sends eight bytes where four are expected: PostgreSQL
/// refuses it ("incorrect binary data format"). Found by a validator completing a run without
/// a score, then one with. A NULL here goes out as the `f32` NULL, which that code maps to
/// `float8`; a value goes out as `f64`.
#[derive(Debug, Clone, Copy)]
pub struct NullableF64(pub Option<f64>);

impl sqlx::Type<sqlx::Any> for NullableF64 {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <f64 as sqlx::Type<sqlx::Any>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Any> for NullableF64 {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        match self.0 {
            Some(value) => <f64 as sqlx::Encode<'q, sqlx::Any>>::encode_by_ref(&value, buf),
            None => <Option<f32> as sqlx::Encode<'q, sqlx::Any>>::encode_by_ref(&None, buf),
        }
    }
}

/// Fresh databases for tests, on either engine.
pub mod testing {
    use super::*;

    /// The PostgreSQL server tests create their databases on.
    pub fn postgres_admin_url() -> String {
        std::env::var("ORO_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// A database that exists for one test and is removed afterwards.
    pub struct TestDatabase {
        pub url: SecretString,
        pub backend: Backend,
        cleanup: Option<Cleanup>,
    }

    enum Cleanup {
        SqliteDir(std::path::PathBuf),
        PostgresDatabase(String),
    }

    impl TestDatabase {
        pub async fn create(backend: Backend) -> Self {
            let id = uuid::Uuid::new_v4().simple().to_string();
            match backend {
                Backend::Sqlite => {
                    let dir = std::env::temp_dir().join(format!("oro-test-{id}"));
                    let url = format!("sqlite://{}/oro.db", dir.display());
                    TestDatabase { url: url.into(), backend, cleanup: Some(Cleanup::SqliteDir(dir)) }
                }
                Backend::Postgres => {
                    sqlx::any::install_default_drivers();
                    let name = format!("oro_test_{id}");
                    let admin = postgres_admin_url();
                    let pool = AnyPoolOptions::new().max_connections(1).connect(&admin).await.unwrap_or_else(|e| {
                        panic!("PostgreSQL is needed for this test and is not reachable ({e}); start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`")
                    });
                    pool.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create test database");
                    pool.close().await;
                    let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin);
                    TestDatabase { url: format!("{base}/{name}").into(), backend, cleanup: Some(Cleanup::PostgresDatabase(name)) }
                }
            }
        }

        pub async fn connect(&self) -> Db {
            Db::connect(&self.url).await.expect("open the test database")
        }
    }

    impl Drop for TestDatabase {
        fn drop(&mut self) {
            match self.cleanup.take() {
                Some(Cleanup::SqliteDir(dir)) => {
                    let _ = std::fs::remove_dir_all(dir);
                }
                Some(Cleanup::PostgresDatabase(name)) => {
                    // Drop runs outside async; a short-lived runtime on its own thread does it.
                    let _ = std::thread::spawn(move || {
                        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
                        if let Ok(runtime) = runtime {
                            runtime.block_on(async move {
                                if let Ok(pool) = AnyPoolOptions::new().max_connections(1).connect(&postgres_admin_url()).await {
                                    let _ = pool.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await;
                                    pool.close().await;
                                }
                            });
                        }
                    })
                    .join();
                }
                None => {}
            }
        }
    }
}

/// Stores an enum of the domain as the text of its `as_str()`, read back with its `parse()`,
/// on both engines; an unknown text is a decode error, not a silent mismatch.
macro_rules! text_column {
    ($type:ty) => {
        impl sqlx::Type<sqlx::Any> for $type {
            fn type_info() -> sqlx::any::AnyTypeInfo {
                <str as sqlx::Type<sqlx::Any>>::type_info()
            }

            fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
                <str as sqlx::Type<sqlx::Any>>::compatible(ty)
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::Any> for $type {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                let text: &'q str = self.as_str();
                <&str as sqlx::Encode<'q, sqlx::Any>>::encode_by_ref(&text, buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Any> for $type {
            fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <String as sqlx::Decode<'r, sqlx::Any>>::decode(value)?;
                <$type>::parse(&text).ok_or_else(|| format!("unknown {} {text:?}", stringify!($type)).into())
            }
        }
    };
}
pub(crate) use text_column;

#[cfg(test)]
mod tests {
    use super::*;

    /// The two migration sets say the same thing in two dialects: the PostgreSQL file is the
    /// SQLite file with its three type names translated, and nothing else. A schema change
    /// written to one set only, or differently, fails here.
    #[test]
    fn migration_sets_do_not_drift() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let names = |dialect: &str| {
            let mut names: Vec<String> = std::fs::read_dir(root.join(dialect))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".sql"))
                .collect();
            names.sort();
            names
        };
        let (sqlite, postgres) = (names("sqlite"), names("postgres"));
        assert_eq!(sqlite, postgres, "the same migrations, by name, in both dialects");
        assert!(sqlite.len() >= 8);
        let word = |text: &str, from: &str, to: &str| {
            // Whole words only: `INTEGER` in an identifier would be a different column.
            let mut out = String::with_capacity(text.len());
            let mut rest = text;
            while let Some(at) = rest.find(from) {
                let before = rest[..at].chars().next_back();
                let after = rest[at + from.len()..].chars().next();
                let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
                out.push_str(&rest[..at]);
                out.push_str(if boundary(before) && boundary(after) { to } else { from });
                rest = &rest[at + from.len()..];
            }
            out.push_str(rest);
            out
        };
        for name in &sqlite {
            let lite = std::fs::read_to_string(root.join("sqlite").join(name)).unwrap();
            let pg = std::fs::read_to_string(root.join("postgres").join(name)).unwrap();
            let translated = word(&word(&word(&lite, "INTEGER", "BIGINT"), "BLOB", "BYTEA"), "REAL", "DOUBLE PRECISION");
            assert!(translated == pg, "{name}: the PostgreSQL migration is not the SQLite one with its types translated");
        }
    }

    #[test]
    fn sqlite_urls_get_created_on_first_run() {
        let dir = std::env::temp_dir().join(format!("oro-url-{}", uuid::Uuid::new_v4().simple()));
        let url = format!("sqlite://{}/sub/oro.db", dir.display());
        let fixed = ensure_sqlite_file(&url).unwrap();
        assert!(fixed.ends_with("oro.db?mode=rwc"));
        assert!(dir.join("sub").is_dir());
        std::fs::remove_dir_all(dir).unwrap();
    }

    async fn round_trip(backend: Backend) {
        let test_db = testing::TestDatabase::create(backend).await;
        let db = test_db.connect().await;
        db.ping().await.unwrap();
        // Migrations ran: the nonce table exists and takes `$N` parameters on both engines.
        sqlx::query("INSERT INTO used_nonces (hotkey, nonce, expires_at) VALUES ($1, $2, $3)")
            .bind("5Abc")
            .bind("n1")
            .bind(10_i64)
            .execute(db.pool())
            .await
            .unwrap();
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM used_nonces WHERE hotkey = $1").bind("5Abc").fetch_one(db.pool()).await.unwrap();
        assert_eq!(count, 1);
        db.close().await;
    }

    #[tokio::test]
    async fn migrates_and_queries_on_sqlite() {
        round_trip(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn migrates_and_queries_on_postgres() {
        round_trip(Backend::Postgres).await;
    }
}
