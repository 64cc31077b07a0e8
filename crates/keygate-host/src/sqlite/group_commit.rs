//! Committing concurrent requests' writes together.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::checkpoint::Checkpointer;
use super::local::run_statement;
use super::{QueryOutput, SqlValue};

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
///
/// Each write commits at least as durably as its own connection asked
/// (`synchronous`): a group commits at the strictest level of its writes.
pub(super) struct GroupCommit {
    writer: Arc<Mutex<Connection>>,
    /// The writer's `synchronous` now (changed under the writer's lock).
    writer_synchronous: std::sync::atomic::AtomicU8,
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
    /// The `synchronous` of the guest's connection.
    synchronous: u8,
    reply: oneshot::Sender<Result<Written, String>>,
}

pub(super) struct Written {
    pub(super) output: QueryOutput,
    /// The row id the statement inserted, if it inserted one.
    pub(super) rowid: Option<i64>,
    pub(super) changes: u64,
}

/// More statements than this wait for the next transaction, so one leader's
/// own request is not held up indefinitely.
const MAX_GROUP: usize = 64;

impl GroupCommit {
    /// `writer` is at `synchronous`.
    pub(super) fn new(
        writer: Arc<Mutex<Connection>>,
        synchronous: u8,
        checkpoints: Option<Checkpointer>,
    ) -> Self {
        Self {
            writer,
            writer_synchronous: synchronous.into(),
            queue: Mutex::default(),
            checkpoints,
        }
    }

    pub(super) async fn write(
        self: &Arc<Self>,
        statement: &str,
        params: &[SqlValue],
        synchronous: u8,
    ) -> Result<Written, String> {
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.jobs.push(WriteJob {
                statement: statement.to_owned(),
                params: params.to_vec(),
                synchronous,
                reply,
            });
            !std::mem::replace(&mut queue.leading, true)
        };
        if lead {
            // Lets the requests already runnable on this worker reach their
            // own writes first: 73 % of commits held one statement without
            // this (verify, 16 connections), 21 % with it. Should this
            // request be dropped while it waits (`--request-timeout`), the
            // guard hands the lead on, or every later write would queue
            // behind a leader that never comes back.
            let unfinished = LeadGuard(Some(self.clone()));
            tokio::task::yield_now().await;
            unfinished.disarm();
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

    /// Leads until the queue is empty, on a blocking thread when there is a
    /// runtime (else here).
    fn lead_on_elsewhere(self: Arc<Self>) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || while self.commit_queued() {});
            }
            Err(_) => while self.commit_queued() {},
        }
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
        let synchronous = jobs.iter().map(|job| job.synchronous).max();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(level) = synchronous {
            self.set_synchronous(&writer, level);
        }
        commit_together(&writer, jobs);
        drop(writer);
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.wrote(statements);
        }
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.leading = !queue.jobs.is_empty();
        queue.leading
    }

    /// Puts the writer (held by the caller) at `level` unless it is there.
    /// Should that fail, the writer is put at the strictest level instead:
    /// never less durable than a write asked for.
    fn set_synchronous(&self, writer: &Connection, level: u8) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.writer_synchronous.load(Relaxed) == level {
            return;
        }
        let level = match writer.pragma_update(None, "synchronous", level) {
            Ok(()) => level,
            Err(_) => {
                let _ = writer.pragma_update(None, "synchronous", 3);
                3
            }
        };
        self.writer_synchronous.store(level, Relaxed);
    }
}

/// The lead of a writer that has not started committing yet; dropped armed
/// (the request was cancelled), it passes the lead to a blocking thread.
struct LeadGuard(Option<Arc<GroupCommit>>);

impl LeadGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for LeadGuard {
    fn drop(&mut self) {
        if let Some(group) = self.0.take() {
            group.lead_on_elsewhere();
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
                    synchronous: 2,
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

    /// A group of writes commits at the strictest `synchronous` its writes'
    /// connections asked for; a write never commits less durably than asked.
    #[tokio::test]
    async fn a_group_commits_at_the_strictest_level_its_writes_asked_for() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        let writer = Arc::new(Mutex::new(conn));
        let group = Arc::new(GroupCommit::new(writer.clone(), 2, None));
        let level = || -> u8 {
            writer
                .lock()
                .unwrap()
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap()
        };
        group
            .write("INSERT INTO t VALUES (1)", &[], 1)
            .await
            .unwrap();
        assert_eq!(level(), 1, "alone: NORMAL as asked");
        let (a, b) = tokio::join!(
            group.write("INSERT INTO t VALUES (2)", &[], 1),
            group.write("INSERT INTO t VALUES (3)", &[], 2),
        );
        a.unwrap();
        b.unwrap();
        assert_eq!(level(), 2, "together with a FULL write: FULL");
        group
            .write("INSERT INTO t VALUES (4)", &[], 1)
            .await
            .unwrap();
        assert_eq!(level(), 1);
    }

    /// A request dropped (`--request-timeout`) while it leads, before it
    /// committed: its write is still committed by someone, and later writes
    /// are not left queued behind it (they all hung before the guard).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leader_dropped_before_committing_hands_the_lead_on() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        let writer = Arc::new(Mutex::new(conn));
        let group = Arc::new(GroupCommit::new(writer.clone(), 2, None));
        // Polled once (it leads, then yields), then dropped.
        let mut leader = Box::pin(group.write("INSERT INTO t VALUES (1)", &[], 2));
        let first = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(leader.as_mut(), cx))
        })
        .await;
        assert!(first.is_pending(), "the leader yields before it commits");
        drop(leader);
        let later = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            group.write("INSERT INTO t VALUES (2)", &[], 2),
        )
        .await
        .expect("a later write is not stuck behind the dropped leader");
        later.unwrap();
        assert_eq!(count(&writer.lock().unwrap(), "SELECT count(*) FROM t"), 2);
    }
}
