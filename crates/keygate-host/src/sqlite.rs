//! SQLite capability: `spin:sqlite/sqlite@3.0.0` and the older
//! `fermyon:spin/sqlite@2.0.0` for components, backed by databases behind the
//! [`Database`] trait (a local file here; a libSQL server would be another).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};
use tokio::sync::oneshot;
use wasmtime::component::Resource;

use crate::bindings::fermyon::spin::sqlite as v2;
use crate::bindings::spin::sqlite::sqlite as v3;
use crate::faults::{Call, guard_async};
use crate::key_value::describe;
use crate::runtime_config::Location;
use crate::state::RequestState;

/// A value bound to or read from a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

#[derive(Debug, Default, PartialEq)]
pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqlValue>>,
}

/// A labelled database: hands out connections.
pub trait Database: Send + Sync {
    fn connect(&self) -> Result<Box<dyn DbConnection>, String>;
}

/// One connection, held by a guest for as long as its handle lives, so a
/// transaction it opens with `BEGIN` stays on it.
pub trait DbConnection: Send {
    /// Runs one statement. A backend may have to wait (for a group commit, a
    /// network round trip) without holding a runtime thread, hence a future.
    fn execute<'a>(
        &'a mut self,
        statement: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<QueryOutput, String>>;
    fn last_insert_rowid(&self) -> i64;
    fn changes(&self) -> u64;
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Opens a SQLite file the way both capabilities want it: WAL, so readers do
/// not wait for writers and data survives a restart; a busy handler so
/// concurrent writers queue instead of failing.
pub fn open_sqlite_file(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let conn = Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    configure(&conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    Ok(conn)
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_handler(Some(wait_for_lock))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

/// A 16 MiB page cache (SQLite's default is 2 MiB) for a connection whose
/// cache stays valid: one that does all the writing (the group-commit writer,
/// a key-value store's only connection). A pooled reader's cache is dropped
/// whenever another connection commits, so a big one would only hold memory.
pub fn enlarge_page_cache(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "cache_size", -16_384)?;
    Ok(())
}

/// How a connection waits for another's write lock: about 5 s in all, as a
/// busy timeout of 5 s would. SQLite's own handler sleeps 1, 2, 5, 10… ms
/// between tries, on a runtime worker thread, while a write here holds the
/// lock for tens of microseconds; short pauses first waste far less.
fn wait_for_lock(attempt: i32) -> bool {
    let pause = match attempt {
        0..100 => std::time::Duration::from_micros(20),
        100..200 => std::time::Duration::from_micros(200),
        200..5_200 => std::time::Duration::from_millis(1),
        _ => return false,
    };
    std::thread::sleep(pause);
    true
}

/// A local SQLite database with a small pool of open connections, and one
/// more connection that commits the requests' single-statement writes
/// together ([`GroupCommit`]).
pub struct LocalDatabase {
    pool: Arc<ConnectionPool>,
    group: Arc<GroupCommit>,
}

/// Where a database's request connections come from: up to
/// [`IDLE_CONNECTIONS`] kept open between requests, more opened under load.
struct ConnectionPool {
    location: Location,
    idle: Mutex<Vec<Connection>>,
}

/// Connections kept open between requests; more are opened under load.
const IDLE_CONNECTIONS: usize = 8;

impl ConnectionPool {
    /// An idle connection, or a new one.
    fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => open_location(&self.location),
        }
    }

    /// Keeps `conn` for the next request, unless enough are idle already.
    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(conn);
        }
    }
}

impl LocalDatabase {
    pub fn open(label: &str, location: &Location) -> Result<Self> {
        let file = match location {
            Location::File(path) => Some(path),
            Location::Memory => None,
        };
        let location = match location {
            // A named shared-cache memory database, so every pooled connection
            // sees the same data; one connection stays idle to keep it alive.
            Location::Memory => Location::File(
                format!(
                    "file:keygate-{label}-{}?mode=memory&cache=shared",
                    std::process::id()
                )
                .into(),
            ),
            file => file.clone(),
        };
        let writer = open_location(&location)?;
        enlarge_page_cache(&writer)?;
        let writer = Arc::new(Mutex::new(writer));
        // A memory database has no WAL to checkpoint.
        let checkpoints = file
            .map(|path| Checkpointer::start(path, &writer))
            .transpose()?;
        let first = open_location(&location)?;
        Ok(Self {
            pool: Arc::new(ConnectionPool {
                location,
                idle: Mutex::new(vec![first]),
            }),
            group: Arc::new(GroupCommit::new(writer, checkpoints)),
        })
    }
}

fn open_location(location: &Location) -> Result<Connection> {
    let Location::File(path) = location else {
        unreachable!("memory is mapped to a URI")
    };
    if path.to_string_lossy().starts_with("file:") {
        let conn = Connection::open(path)?;
        configure(&conn)?;
        Ok(conn)
    } else {
        open_sqlite_file(path)
    }
}

impl Database for LocalDatabase {
    /// The connection is taken from the pool (or opened) only when a
    /// statement needs it, as Spin's does: a request whose writes all go to
    /// the group commit, or that never runs a statement, holds none.
    fn connect(&self) -> Result<Box<dyn DbConnection>, String> {
        Ok(Box::new(PooledConnection {
            conn: None,
            pool: self.pool.clone(),
            group: self.group.clone(),
            committed_elsewhere: None,
            may_have_local_schema: false,
        }))
    }
}

struct PooledConnection {
    /// Taken from `pool` at the first statement that needs it.
    conn: Option<Connection>,
    pool: Arc<ConnectionPool>,
    group: Arc<GroupCommit>,
    /// `last_insert_rowid` and `changes` of this connection's last write when
    /// the group commit ran it, so both answer as if it had run here.
    committed_elsewhere: Option<(i64, u64)>,
    /// Set once the guest ran a statement that may create state only this
    /// connection sees (a `TEMP` table, an `ATTACH`): its writes then stay
    /// here, where those names resolve.
    may_have_local_schema: bool,
}

impl PooledConnection {
    fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("taken before use")
    }

    fn take_connection(&mut self) -> Result<(), String> {
        if self.conn.is_none() {
            self.conn = Some(self.pool.take().map_err(|e| format!("{e:#}"))?);
        }
        Ok(())
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        // A transaction the guest left open is rolled back, never inherited
        // by the next request.
        if !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
            return;
        }
        // Nor are its TEMP tables or attached databases: such a connection is
        // closed, as Spin's connection would be at the end of the request.
        if self.may_have_local_schema && has_local_schema(&conn) {
            return;
        }
        self.pool.give_back(conn);
    }
}

impl DbConnection for PooledConnection {
    fn execute<'a>(
        &'a mut self,
        statement: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<QueryOutput, String>> {
        let dml = is_dml(statement);
        // Without a connection of its own the guest has no transaction open
        // and no TEMP table: its data change goes straight to the group.
        let groupable = dml
            && match &self.conn {
                None => true,
                Some(conn) => conn.is_autocommit() && !self.may_have_local_schema,
            };
        if !groupable {
            if let Err(e) = self.take_connection() {
                return Box::pin(std::future::ready(Err(e)));
            }
            let readonly = match self.conn().prepare_cached(statement) {
                Ok(stmt) => stmt.readonly(),
                Err(e) => return Box::pin(std::future::ready(Err(e.to_string()))),
            };
            if !readonly && !dml {
                self.may_have_local_schema = true;
            }
            let conn = self.conn();
            let rowid = conn.last_insert_rowid();
            let result = run_statement(conn, statement, params);
            if result.is_ok() && self.committed_elsewhere.is_some() {
                let conn = self.conn();
                let (mut last_rowid, mut changes) = self.committed_elsewhere.unwrap_or_default();
                if conn.last_insert_rowid() != rowid {
                    last_rowid = conn.last_insert_rowid();
                }
                if is_dml(statement) {
                    changes = conn.changes();
                }
                self.committed_elsewhere = Some((last_rowid, changes));
            }
            return Box::pin(std::future::ready(result));
        }
        let group = self.group.clone();
        Box::pin(async move {
            let written = group.write(statement, params).await?;
            let last_rowid = written.rowid.unwrap_or_else(|| self.last_insert_rowid());
            self.committed_elsewhere = Some((last_rowid, written.changes));
            Ok(written.output)
        })
    }

    fn last_insert_rowid(&self) -> i64 {
        match (self.committed_elsewhere, &self.conn) {
            (Some((rowid, _)), _) => rowid,
            (None, Some(conn)) => conn.last_insert_rowid(),
            (None, None) => 0,
        }
    }

    fn changes(&self) -> u64 {
        match (self.committed_elsewhere, &self.conn) {
            (Some((_, changes)), _) => changes,
            (None, Some(conn)) => conn.changes(),
            (None, None) => 0,
        }
    }
}

fn has_local_schema(conn: &Connection) -> bool {
    conn.query_row(
        "SELECT (SELECT count(*) FROM temp.sqlite_master)
              + (SELECT count(*) FROM pragma_database_list WHERE name NOT IN ('main', 'temp'))",
        [],
        |row| row.get::<_, i64>(0),
    )
    .map_or(true, |n| n > 0)
}

fn run_statement(
    conn: &Connection,
    statement: &str,
    params: &[SqlValue],
) -> Result<QueryOutput, String> {
    let mut stmt = conn.prepare_cached(statement).map_err(|e| e.to_string())?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let width = columns.len();
    let mut rows_out = Vec::new();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter()))
        .map_err(|e| e.to_string())?;
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(match row.get_ref(i).map_err(|e| e.to_string())? {
                ValueRef::Null => SqlValue::Null,
                ValueRef::Integer(i) => SqlValue::Integer(i),
                ValueRef::Real(r) => SqlValue::Real(r),
                ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
            });
        }
        rows_out.push(values);
    }
    Ok(QueryOutput {
        columns,
        rows: rows_out,
    })
}

/// `INSERT`, `UPDATE`, `DELETE` or `REPLACE`: statements that can run inside
/// someone else's transaction with exactly their own effect. Schema changes,
/// `PRAGMA`s, `VACUUM` and transaction control run on the guest's connection.
fn is_dml(statement: &str) -> bool {
    let mut rest = statement.trim_start();
    loop {
        if let Some(comment) = rest.strip_prefix("--") {
            rest = comment.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(comment) = rest.strip_prefix("/*") {
            rest = comment.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    let word = rest
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    ["INSERT", "UPDATE", "DELETE", "REPLACE"]
        .iter()
        .any(|dml| word.eq_ignore_ascii_case(dml))
}

/// Group commit: the single-statement writes of concurrent requests are
/// committed in one transaction, one WAL append and one lock round for many
/// requests instead of one each. Nothing a guest can observe changes: each
/// statement still has exactly its own effect (a failing one is undone on its
/// own, as SQLite undoes a failed statement inside a transaction), and
/// `execute` returns only after the transaction holding it has committed.
///
/// The first writer to arrive leads: once the requests already runnable on
/// its worker have had their turn (and queued their writes), it runs what is
/// queued on the writer connection while the others wait without holding a
/// runtime thread; if
/// more arrived meanwhile, a blocking thread leads on until the queue is
/// empty. Alone, a write is simply run in autocommit on the writer, so a
/// single client pays nothing extra.
struct GroupCommit {
    writer: Arc<Mutex<Connection>>,
    queue: Mutex<WriteQueue>,
    checkpoints: Option<Checkpointer>,
}

#[derive(Default)]
struct WriteQueue {
    jobs: Vec<WriteJob>,
    leading: bool,
}

struct WriteJob {
    statement: String,
    params: Vec<SqlValue>,
    reply: oneshot::Sender<Result<Written, String>>,
}

struct Written {
    output: QueryOutput,
    /// The row id the statement inserted, if it inserted one.
    rowid: Option<i64>,
    changes: u64,
}

/// More statements than this wait for the next transaction, so one leader's
/// own request is not held up indefinitely.
const MAX_GROUP: usize = 64;

impl GroupCommit {
    fn new(writer: Arc<Mutex<Connection>>, checkpoints: Option<Checkpointer>) -> Self {
        Self {
            writer,
            queue: Mutex::default(),
            checkpoints,
        }
    }

    async fn write(
        self: &Arc<Self>,
        statement: &str,
        params: &[SqlValue],
    ) -> Result<Written, String> {
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.jobs.push(WriteJob {
                statement: statement.to_owned(),
                params: params.to_vec(),
                reply,
            });
            !std::mem::replace(&mut queue.leading, true)
        };
        if lead {
            // Lets the requests already runnable on this worker reach their
            // own writes first: 73 % of commits held one statement without
            // this (verify, 16 connections), 21 % with it.
            tokio::task::yield_now().await;
        }
        if lead && self.commit_queued() {
            // Writes arrived meanwhile: a blocking thread leads on, so this
            // request answers now instead of waiting for a quiet moment.
            let group = self.clone();
            tokio::task::spawn_blocking(move || while group.commit_queued() {});
        }
        answer
            .await
            .unwrap_or_else(|_| Err("the write was abandoned".into()))
    }

    /// Commits what is queued, as the leader. True when more has been queued
    /// meanwhile and the caller must go on leading; false when it stepped down.
    fn commit_queued(&self) -> bool {
        let jobs = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let take = queue.jobs.len().min(MAX_GROUP);
            queue.jobs.drain(..take).collect::<Vec<_>>()
        };
        let statements = jobs.len();
        commit_together(&self.writer.lock().unwrap_or_else(|p| p.into_inner()), jobs);
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.wrote(statements);
        }
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.leading = !queue.jobs.is_empty();
        queue.leading
    }
}

/// WAL checkpoints on a thread of their own. A checkpoint copies the WAL back
/// into the database and `fsync`s it, which on a slow disk took up to 935 ms
/// in the soak; run by the connection that commits (SQLite's autocheckpoint),
/// it held every write queued behind it. Here the writer never checkpoints
/// (`wal_autocheckpoint = 0`); after every [`CHECKPOINT_EVERY`] statements
/// [`checkpoint_fully`] runs on a separate connection.
pub struct Checkpointer {
    written: std::sync::atomic::AtomicUsize,
    wake: std::sync::mpsc::SyncSender<()>,
}

/// About 1,000 WAL pages at the ~7 pages of a verify, as SQLite's default.
const CHECKPOINT_EVERY: usize = 128;

/// When the log starts over, a WAL file that grew past this (a burst of
/// writes during a slow checkpoint, readers in the way) is cut back to it.
const WAL_SIZE_LIMIT: i64 = 32 << 20;

impl Checkpointer {
    /// Starts the checkpoint thread for the database file at `path`, whose
    /// only writing connection is `writer`, and turns off the writer's own
    /// checkpoints.
    pub fn start(path: &Path, writer: &Arc<Mutex<Connection>>) -> Result<Self> {
        {
            let writer = writer.lock().unwrap_or_else(|p| p.into_inner());
            writer.pragma_update(None, "wal_autocheckpoint", 0)?;
            writer.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        }
        let conn = open_sqlite_file(path)?;
        let writer = writer.clone();
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    checkpoint_fully(&conn, &writer);
                    // The next round waits for a wake-up from a commit after
                    // this one, which has started the log over; a round now
                    // could hold the read locks that restart needs.
                    while woken.try_recv().is_ok() {}
                }
            })?;
        Ok(Self {
            written: Default::default(),
            wake,
        })
    }

    /// Counts `statements` committed; wakes the checkpoint thread every
    /// [`CHECKPOINT_EVERY`].
    pub fn wrote(&self, statements: usize) {
        use std::sync::atomic::Ordering;
        let before = self.written.fetch_add(statements, Ordering::Relaxed);
        if before / CHECKPOINT_EVERY != (before + statements) / CHECKPOINT_EVERY {
            // Full: a checkpoint is already due, which covers this one too.
            let _ = self.wake.try_send(());
        }
    }
}

/// One checkpoint round: copies the WAL into the database so the writer's
/// next commit starts it over. A PASSIVE checkpoint alone does not stop
/// writers; under a steady stream of commits it never caught up, the WAL was
/// never started over, and it grew without bound (1.9 GB after 40,000
/// writes). So PASSIVE passes copy (and `fsync`) the bulk while writers go
/// on, each pass only what arrived during the one before, until that is
/// little; then, with `writer` held, one more copies the rest, and the next
/// commit writes from the start of the file — unless a reader that began
/// before it still reads the old log. Waiting for such readers (a list query
/// can take 10 ms) with writes held cost more than the copying, so a round
/// waits for them (RESTART) only when the log has not started over for a
/// while: when it holds more than [`RESTART_AFTER_FRAMES`]. A failure (busy,
/// I/O) is retried at the next round; nothing is lost.
fn checkpoint_fully(conn: &Connection, writer: &Mutex<Connection>) {
    let mut found = 0;
    for _ in 0..MAX_PASSIVE_PASSES {
        match checkpoint(conn, "PASSIVE") {
            Some(frames) if frames - found >= SMALL_REST => found = frames,
            _ => break,
        }
    }
    let _no_writes = writer.lock().unwrap_or_else(|p| p.into_inner());
    if found > RESTART_AFTER_FRAMES {
        checkpoint(conn, "RESTART");
    } else {
        checkpoint(conn, "PASSIVE");
    }
}

/// New frames (4 KiB pages) a pass may find and still be the last before the
/// writer-held step; that step took 1–4 ms here, most of it `fsync`s.
const SMALL_REST: i64 = 64;
const MAX_PASSIVE_PASSES: usize = 4;

/// About four rounds' worth: a log this long has not been started over.
const RESTART_AFTER_FRAMES: i64 = 4 * 1024;

/// A checkpoint in `mode`; the number of WAL frames it found.
fn checkpoint(conn: &Connection, mode: &str) -> Option<i64> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        row.get(1)
    })
    .ok()
}

fn commit_together(conn: &Connection, mut jobs: Vec<WriteJob>) {
    if jobs.len() <= 1 {
        let Some(job) = jobs.pop() else { return };
        let result = run_job(conn, &job);
        let _ = job.reply.send(result);
        return;
    }
    loop {
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            for job in jobs {
                let _ = job.reply.send(Err(e.to_string()));
            }
            return;
        }
        let mut ran = Vec::with_capacity(jobs.len());
        let mut jobs_left = jobs.into_iter();
        let mut transaction_lost = false;
        for job in jobs_left.by_ref() {
            let result = run_job(conn, &job);
            if result.is_err() && conn.is_autocommit() {
                // The statement ended the transaction (`OR ROLLBACK`, an I/O
                // error): it failed; the others have not committed and run again.
                let _ = job.reply.send(result);
                transaction_lost = true;
                break;
            }
            ran.push((job, result));
        }
        if transaction_lost {
            jobs = ran
                .into_iter()
                .map(|(job, _)| job)
                .chain(jobs_left)
                .collect();
            if jobs.is_empty() {
                return;
            }
            continue;
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => {
                for (job, result) in ran {
                    let _ = job.reply.send(result);
                }
            }
            Err(_) => {
                // A deferred constraint of one statement, say: roll back and
                // run each alone, so each gets the answer it would have had.
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                for (job, _) in ran {
                    commit_together(conn, vec![job]);
                }
            }
        }
        return;
    }
}

fn run_job(conn: &Connection, job: &WriteJob) -> Result<Written, String> {
    // SAFETY: the handle of a connection this thread holds (behind the
    // writer's mutex); setting the last row id is a plain field write in SQLite.
    unsafe { rusqlite::ffi::sqlite3_set_last_insert_rowid(conn.handle(), i64::MIN) };
    let output = run_statement(conn, &job.statement, &job.params)?;
    let rowid = conn.last_insert_rowid();
    Ok(Written {
        output,
        rowid: (rowid != i64::MIN).then_some(rowid),
        changes: conn.changes(),
    })
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            SqlValue::Integer(i) => ValueRef::Integer(*i),
            SqlValue::Real(r) => ValueRef::Real(*r),
            SqlValue::Text(t) => ValueRef::Text(t.as_bytes()),
            SqlValue::Blob(b) => ValueRef::Blob(b),
            SqlValue::Null => ValueRef::Null,
        }))
    }
}

/// Opens each database the runtime configuration defines.
pub fn open_databases(
    config: &BTreeMap<String, Location>,
) -> Result<BTreeMap<String, Arc<dyn Database>>> {
    config
        .iter()
        .map(|(label, location)| {
            let db = LocalDatabase::open(label, location)
                .with_context(|| format!("sqlite database `{label}` at {}", describe(location)))?;
            Ok((label.clone(), Arc::new(db) as Arc<dyn Database>))
        })
        .collect()
}

/// A connection a guest has opened: the resource behind `connection` handles
/// of both interface versions.
pub struct OpenConnection(Box<dyn DbConnection>);

/// The errors both interface versions share, before mapping to either.
enum Failure {
    AccessDenied,
    InvalidConnection,
    Io(String),
}

impl RequestState {
    fn sqlite_open(&mut self, database: &str) -> Result<Resource<OpenConnection>, Failure> {
        let Some(db) = self.component.sqlite_databases.get(database) else {
            return Err(Failure::AccessDenied);
        };
        let conn = db.connect().map_err(Failure::Io)?;
        self.table
            .push(OpenConnection(conn))
            .map_err(|e| Failure::Io(e.to_string()))
    }

    /// `execute` of both interface versions, under the fault switch.
    async fn sqlite_execute(
        &mut self,
        handle: &Resource<OpenConnection>,
        statement: &str,
        params: Vec<SqlValue>,
    ) -> wasmtime::Result<Result<QueryOutput, Failure>> {
        let faults = self.component.faults.clone();
        let run = async {
            let conn = self.sqlite_conn(handle)?;
            conn.0
                .execute(statement, &params)
                .await
                .map_err(Failure::Io)
        };
        guard_async(
            faults.as_deref(),
            Call::SqliteExecute,
            statement,
            Failure::Io,
            run,
        )
        .await
    }

    fn sqlite_conn(
        &mut self,
        handle: &Resource<OpenConnection>,
    ) -> Result<&mut OpenConnection, Failure> {
        self.table
            .get_mut(handle)
            .map_err(|_| Failure::InvalidConnection)
    }
}

macro_rules! value_conversions {
    ($m:ident) => {
        impl From<$m::Value> for SqlValue {
            fn from(v: $m::Value) -> Self {
                match v {
                    $m::Value::Integer(i) => SqlValue::Integer(i),
                    $m::Value::Real(r) => SqlValue::Real(r),
                    $m::Value::Text(t) => SqlValue::Text(t),
                    $m::Value::Blob(b) => SqlValue::Blob(b),
                    $m::Value::Null => SqlValue::Null,
                }
            }
        }

        impl From<SqlValue> for $m::Value {
            fn from(v: SqlValue) -> Self {
                match v {
                    SqlValue::Integer(i) => $m::Value::Integer(i),
                    SqlValue::Real(r) => $m::Value::Real(r),
                    SqlValue::Text(t) => $m::Value::Text(t),
                    SqlValue::Blob(b) => $m::Value::Blob(b),
                    SqlValue::Null => $m::Value::Null,
                }
            }
        }

        impl From<QueryOutput> for $m::QueryResult {
            fn from(out: QueryOutput) -> Self {
                $m::QueryResult {
                    columns: out.columns,
                    rows: out
                        .rows
                        .into_iter()
                        .map(|values| $m::RowResult {
                            values: values.into_iter().map(Into::into).collect(),
                        })
                        .collect(),
                }
            }
        }

        impl From<Failure> for $m::Error {
            fn from(f: Failure) -> Self {
                match f {
                    Failure::AccessDenied => $m::Error::AccessDenied,
                    Failure::InvalidConnection => $m::Error::InvalidConnection,
                    Failure::Io(message) => $m::Error::Io(message),
                }
            }
        }

        impl $m::Host for RequestState {}
    };
}

value_conversions!(v2);
value_conversions!(v3);

impl v3::HostConnection for RequestState {
    fn open(&mut self, database: String) -> Result<Resource<OpenConnection>, v3::Error> {
        Ok(self.sqlite_open(&database)?)
    }

    async fn execute(
        &mut self,
        handle: Resource<OpenConnection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> wasmtime::Result<Result<v3::QueryResult, v3::Error>> {
        let params = parameters.into_iter().map(Into::into).collect();
        let result = self.sqlite_execute(&handle, &statement, params).await?;
        Ok(result.map(Into::into).map_err(Into::into))
    }

    fn last_insert_rowid(&mut self, handle: Resource<OpenConnection>) -> i64 {
        self.sqlite_conn(&handle)
            .map(|c| c.0.last_insert_rowid())
            .unwrap_or(0)
    }

    fn changes(&mut self, handle: Resource<OpenConnection>) -> u64 {
        self.sqlite_conn(&handle)
            .map(|c| c.0.changes())
            .unwrap_or(0)
    }

    fn drop(&mut self, handle: Resource<OpenConnection>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl v2::HostConnection for RequestState {
    fn open(&mut self, database: String) -> Result<Resource<OpenConnection>, v2::Error> {
        Ok(self.sqlite_open(&database)?)
    }

    async fn execute(
        &mut self,
        handle: Resource<OpenConnection>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> wasmtime::Result<Result<v2::QueryResult, v2::Error>> {
        let params = parameters.into_iter().map(Into::into).collect();
        let result = self.sqlite_execute(&handle, &statement, params).await?;
        Ok(result.map(Into::into).map_err(Into::into))
    }

    fn drop(&mut self, handle: Resource<OpenConnection>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database file in a directory that lives as long as the returned guard.
    fn database_in_a_temporary_file() -> (tempfile::TempDir, Arc<LocalDatabase>) {
        let dir = tempfile::tempdir().unwrap();
        let db = LocalDatabase::open("default", &Location::File(dir.path().join("db.sqlite")));
        (dir, Arc::new(db.unwrap()))
    }

    /// A database file with a table `t (x)`, its writer (which never
    /// checkpoints itself) and a connection for checkpoint rounds, as the
    /// runner has them.
    fn writer_and_checkpointer() -> (
        tempfile::TempDir,
        std::path::PathBuf,
        Arc<Mutex<Connection>>,
        Connection,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = open_sqlite_file(&path).unwrap();
        writer
            .execute_batch("PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x)")
            .unwrap();
        let checkpointer = open_sqlite_file(&path).unwrap();
        (dir, path, Arc::new(Mutex::new(writer)), checkpointer)
    }

    #[tokio::test]
    async fn every_value_type_round_trips() {
        let (_dir, db) = database_in_a_temporary_file();
        let mut c = db.connect().unwrap();
        c.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)", &[])
            .await
            .unwrap();
        let values = vec![
            SqlValue::Integer(i64::MIN),
            SqlValue::Real(1.5),
            SqlValue::Text("héllo".into()),
            SqlValue::Blob(vec![0, 255, 7]),
            SqlValue::Null,
        ];
        c.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", &values)
            .await
            .unwrap();
        assert_eq!(c.changes(), 1);
        assert_eq!(c.last_insert_rowid(), 1);
        let out = c.execute("SELECT * FROM t", &[]).await.unwrap();
        assert_eq!(out.columns, ["i", "r", "s", "b", "n"]);
        assert_eq!(out.rows, vec![values]);
    }

    /// Under a steady stream of writes, each checkpoint round lets the writer
    /// start the WAL over: the file is reused, not appended to for ever. As
    /// in the runner, the writer asks for a round every so many writes and
    /// goes on writing while it runs (at most one round ahead).
    #[test]
    fn checkpoint_rounds_keep_the_wal_small_while_writes_go_on() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
        let (dir, _path, writer, checkpointer) = writer_and_checkpointer();
        let wal = dir.path().join("db.sqlite-wal");
        let (rows, every) = (4_000, 50);
        let (requested, completed) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let done = AtomicBool::new(false);
        let largest_wal = std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 1..=rows {
                    if i % every == 0 {
                        let round = requested.fetch_add(1, SeqCst) + 1;
                        while completed.load(SeqCst) + 1 < round {
                            std::thread::yield_now();
                        }
                    }
                    let w = writer.lock().unwrap();
                    w.execute("INSERT INTO t VALUES (randomblob(1000))", [])
                        .unwrap();
                }
                done.store(true, SeqCst);
            });
            let mut largest = 0;
            loop {
                if requested.load(SeqCst) > completed.load(SeqCst) {
                    checkpoint_fully(&checkpointer, &writer);
                    completed.fetch_add(1, SeqCst);
                } else if done.load(SeqCst) {
                    break largest;
                } else {
                    std::thread::yield_now();
                }
                largest = largest.max(std::fs::metadata(&wal).unwrap().len());
            }
        });
        // Each insert commits on its own: at least one 4 KiB page frame.
        let appended = rows as u64 * 4096;
        assert!(
            largest_wal < appended / 4,
            "the WAL reached {largest_wal} bytes; without restarts it would hold {appended}"
        );
        let count: i64 = writer
            .lock()
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, rows as i64);
    }

    /// A reader that kept an old snapshot through many writes kept the log
    /// from starting over. The next round finds a log that long and, with
    /// writes held, waits for that reader (RESTART) instead of copying only
    /// what the reader allows: once the reader is done, the next write starts
    /// the log over.
    #[test]
    fn a_round_after_a_long_log_waits_for_the_reader_in_the_way() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        let (_dir, path, writer, checkpointer) = writer_and_checkpointer();
        writer
            .lock()
            .unwrap()
            .execute("INSERT INTO t VALUES (1)", [])
            .unwrap();
        let log_frames = || checkpoint(&checkpointer, "PASSIVE").unwrap();
        let (snapshot_taken, writes_done, round_over) = (
            AtomicBool::new(false),
            AtomicBool::new(false),
            AtomicBool::new(false),
        );
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let reader = open_sqlite_file(&path).unwrap();
                reader.execute_batch("BEGIN").unwrap();
                let rows: i64 = reader
                    .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(rows, 1);
                snapshot_taken.store(true, SeqCst);
                while !writes_done.load(SeqCst) {
                    std::thread::yield_now();
                }
                // Done reading once the round holds writes (or is over).
                while writer.try_lock().is_ok() && !round_over.load(SeqCst) {
                    std::thread::yield_now();
                }
                reader.execute_batch("COMMIT").unwrap();
            });
            while !snapshot_taken.load(SeqCst) {
                std::thread::yield_now();
            }
            {
                let w = writer.lock().unwrap();
                for _ in 0..RESTART_AFTER_FRAMES + 100 {
                    w.execute("INSERT INTO t VALUES (randomblob(1000))", [])
                        .unwrap();
                }
            }
            assert!(log_frames() > RESTART_AFTER_FRAMES);
            writes_done.store(true, SeqCst);
            checkpoint_fully(&checkpointer, &writer);
            round_over.store(true, SeqCst);
        });
        writer
            .lock()
            .unwrap()
            .execute("INSERT INTO t VALUES (2)", [])
            .unwrap();
        let frames = log_frames();
        assert!(frames < 16, "the log was not started over: {frames} frames");
    }

    #[tokio::test]
    async fn an_open_transaction_is_rolled_back_when_the_connection_is_released() {
        let db = LocalDatabase::open("mem", &Location::Memory).unwrap();
        let mut c = db.connect().unwrap();
        c.execute("CREATE TABLE t (x)", &[]).await.unwrap();
        c.execute("BEGIN", &[]).await.unwrap();
        c.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
        drop(c);
        let mut c = db.connect().unwrap();
        let out = c.execute("SELECT count(*) FROM t", &[]).await.unwrap();
        assert_eq!(out.rows, vec![vec![SqlValue::Integer(0)]]);
    }

    #[tokio::test]
    async fn statement_errors_are_reported_not_panicked() {
        let db = LocalDatabase::open("mem2", &Location::Memory).unwrap();
        let mut c = db.connect().unwrap();
        assert!(
            c.execute("SELEKT 1", &[])
                .await
                .unwrap_err()
                .contains("syntax")
        );
        let e = c.execute("SELECT ?", &[]).await.unwrap_err();
        assert!(
            e.contains("parameters"),
            "a missing parameter is an error, as in Spin: {e}"
        );
        let e = c
            .execute("INSERT INTO missing VALUES (1)", &[])
            .await
            .unwrap_err();
        assert!(e.contains("no such table"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_each_commit_with_their_own_row_id_and_change_count() {
        let (_dir, db) = database_in_a_temporary_file();
        let mut c = db.connect().unwrap();
        c.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, writer INTEGER)",
            &[],
        )
        .await
        .unwrap();
        let writers = (0..64).map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut c = db.connect().unwrap();
                c.execute("INSERT INTO t (writer) VALUES (?)", &[SqlValue::Integer(w)])
                    .await
                    .unwrap();
                let rowid = c.last_insert_rowid();
                assert_eq!(c.changes(), 1);
                // Read-your-write on the same connection, and the row id is this write's.
                let out = c
                    .execute(
                        "SELECT writer FROM t WHERE id = ?",
                        &[SqlValue::Integer(rowid)],
                    )
                    .await
                    .unwrap();
                assert_eq!(out.rows, vec![vec![SqlValue::Integer(w)]]);
                assert_eq!((c.last_insert_rowid(), c.changes()), (rowid, 1));
                rowid
            })
        });
        let mut rowids = Vec::new();
        for writer in writers.collect::<Vec<_>>() {
            rowids.push(writer.await.unwrap());
        }
        rowids.sort();
        assert_eq!(rowids, (1..=64).collect::<Vec<i64>>());
    }

    /// Verify under load: every request holds a handle while its insert
    /// waits for the group commit. Such handles take no pooled connection;
    /// when they did, 16 requests in flight emptied the pool of 8 and every
    /// further request opened (and closed) a connection of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn handles_that_only_write_outside_a_transaction_take_no_pooled_connection() {
        let (_dir, db) = database_in_a_temporary_file();
        let mut c = db.connect().unwrap();
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)", &[])
            .await
            .unwrap();
        drop(c);
        let idle = || db.pool.idle.lock().unwrap().len();
        assert_eq!(idle(), 1);
        let mut handles: Vec<_> = (0..32).map(|_| db.connect().unwrap()).collect();
        assert_eq!(
            (handles[0].last_insert_rowid(), handles[0].changes()),
            (0, 0),
            "a handle that ran nothing answers as a fresh connection"
        );
        let writes: Vec<_> = handles
            .drain(..)
            .map(|mut c| {
                tokio::spawn(async move {
                    c.execute("INSERT INTO t DEFAULT VALUES", &[])
                        .await
                        .unwrap();
                    c
                })
            })
            .collect();
        for write in writes {
            handles.push(write.await.unwrap());
        }
        assert_eq!(idle(), 1, "no handle took the pooled connection");
        let mut rowids: Vec<i64> = handles.iter().map(|c| c.last_insert_rowid()).collect();
        rowids.sort();
        assert_eq!(rowids, (1..=32).collect::<Vec<i64>>());
        // The first read takes one; it goes back to the pool with the handle.
        let out = handles[0]
            .execute("SELECT count(*) FROM t", &[])
            .await
            .unwrap();
        assert_eq!(out.rows, vec![vec![SqlValue::Integer(32)]]);
        assert_eq!(idle(), 0);
        drop(handles);
        assert_eq!(idle(), 1);
    }

    /// Runs `statements` as one group, as the leader would, and returns each
    /// statement's answer.
    fn group_of(conn: &Connection, statements: &[&str]) -> Vec<Result<u64, String>> {
        let (jobs, answers): (Vec<_>, Vec<_>) = statements
            .iter()
            .map(|statement| {
                let (reply, answer) = oneshot::channel();
                let job = WriteJob {
                    statement: statement.to_string(),
                    params: Vec::new(),
                    reply,
                };
                (job, answer)
            })
            .unzip();
        commit_together(conn, jobs);
        answers
            .into_iter()
            .map(|mut a| a.try_recv().unwrap().map(|w| w.changes))
            .collect()
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_failing_statement_in_a_group_fails_alone() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x UNIQUE)").unwrap();
        let answers = group_of(
            &conn,
            &[
                "INSERT INTO t VALUES (1)",
                "INSERT INTO t VALUES (1)",
                "INSERT INTO t VALUES (2)",
                "UPDATE t SET x = x + 10",
            ],
        );
        assert_eq!(answers[0], Ok(1));
        assert!(answers[1].as_ref().unwrap_err().contains("UNIQUE"));
        assert_eq!(answers[2], Ok(1));
        assert_eq!(answers[3], Ok(2));
        assert_eq!(count(&conn, "SELECT sum(x) FROM t"), 23);
        assert!(conn.is_autocommit(), "the group's transaction is closed");
    }

    #[test]
    fn a_statement_that_rolls_the_group_back_fails_alone_and_the_others_run_again() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x UNIQUE)").unwrap();
        let answers = group_of(
            &conn,
            &[
                "INSERT INTO t VALUES (1)",
                "INSERT OR ROLLBACK INTO t VALUES (1)",
                "INSERT INTO t VALUES (2)",
            ],
        );
        assert_eq!(answers[0], Ok(1));
        assert!(answers[1].is_err());
        assert_eq!(answers[2], Ok(1));
        assert_eq!(count(&conn, "SELECT count(*) FROM t"), 2);
    }

    #[test]
    fn a_group_that_cannot_commit_is_run_again_one_statement_at_a_time() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (p REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        // A deferred foreign key fails at COMMIT, not at the statement.
        let answers = group_of(
            &conn,
            &[
                "INSERT INTO parent VALUES (1)",
                "INSERT INTO child VALUES (2)",
            ],
        );
        assert_eq!(answers[0], Ok(1));
        assert!(answers[1].as_ref().unwrap_err().contains("FOREIGN KEY"));
        assert_eq!(count(&conn, "SELECT count(*) FROM parent"), 1);
        assert_eq!(count(&conn, "SELECT count(*) FROM child"), 0);
        assert!(conn.is_autocommit());
    }

    #[tokio::test]
    async fn a_temp_table_is_written_on_its_own_connection_and_not_handed_on() {
        let db = LocalDatabase::open("mem3", &Location::Memory).unwrap();
        let mut c = db.connect().unwrap();
        c.execute("CREATE TEMP TABLE scratch (x)", &[])
            .await
            .unwrap();
        c.execute("INSERT INTO scratch VALUES (1)", &[])
            .await
            .unwrap();
        assert_eq!(c.last_insert_rowid(), 1);
        let out = c
            .execute("SELECT count(*) FROM scratch", &[])
            .await
            .unwrap();
        assert_eq!(out.rows, vec![vec![SqlValue::Integer(1)]]);
        drop(c);
        let mut next = db.connect().unwrap();
        let e = next
            .execute("SELECT * FROM scratch", &[])
            .await
            .unwrap_err();
        assert!(e.contains("no such table"), "{e}");
    }

    #[test]
    fn only_plain_data_changes_are_grouped() {
        for dml in [
            "INSERT INTO t VALUES (1)",
            "  update t set x = 1",
            "-- why\nDELETE FROM t",
            "/* c */ REPLACE INTO t VALUES (1)",
        ] {
            assert!(is_dml(dml), "{dml}");
        }
        for other in [
            "CREATE TABLE t (x)",
            "PRAGMA user_version = 3",
            "VACUUM",
            "BEGIN",
            "SELECT 1",
            "INSERTX",
            "",
        ] {
            assert!(!is_dml(other), "{other}");
        }
    }
}
