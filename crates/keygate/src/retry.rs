//! Running a statement again when the database asks for it: the one place
//! that decides what is retried, how often and how long it waits.
//!
//! Two kinds of failure are worth another try:
//!
//! - **Busy** (`database is locked`, `SQLITE_BUSY`; FTS5's "vtable constructor
//!   failed" for the same reason; a libSQL server's `TRANSACTION_TIMEOUT`,
//!   its forced rollback of a statement that waited too long for the write
//!   lock): another connection — another request, or another Spin instance
//!   on the same libSQL server — holds the write lock. The statement did
//!   nothing (SQLite runs each statement all or not at all), so running it
//!   again is safe for every statement.
//! - **Connection lost** (a dropped Hrana stream or HTTP connection to a
//!   libSQL server): the statement may or may not have run. Only statements
//!   that are safe to run twice are repeated: reads (`SELECT`, a `PRAGMA`
//!   that sets nothing) and the schema migration's (every one is `IF NOT
//!   EXISTS`, `IF EXISTS`, or a backfill that sets rows from `api_keys`).
//!   Writes are not: a second `key.used` insert would audit one call twice,
//!   a second create would find its own name taken. They answer
//!   `storage_unavailable`, and the caller (who knows what it sent) retries.
//!
//! Pauses grow exponentially from [`FIRST_PAUSE_MS`] to [`MAX_PAUSE_MS`] with
//! full jitter (a random pause up to the cap), so instances that collided
//! once do not collide again in step. [`MAX_RETRIES`] bounds the waiting at
//! about half a second in the worst case, well inside a gateway's timeout.

use std::time::Duration;

use crate::store::{Rows, Sql, SqlValue, StoreError};

/// Retries after the first try.
pub const MAX_RETRIES: u32 = 7;
/// The first pause's cap; each further pause's cap doubles.
const FIRST_PAUSE_MS: u64 = 4;
/// No pause is longer than this.
const MAX_PAUSE_MS: u64 = 250;

/// Whether a statement may be run again when its outcome is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeatable {
    /// Running it twice has the effect of running it once.
    Yes,
    /// Only if it is a read (see [`is_read_only`]).
    IfReadOnly,
}

/// Runs `statement`, again after a pause while the database answers busy
/// (or lost the connection, for a statement that may be repeated).
pub fn execute(
    sql: &dyn Sql,
    statement: &str,
    params: &[SqlValue],
    repeatable: Repeatable,
) -> Result<Rows, StoreError> {
    let may_repeat = match repeatable {
        Repeatable::Yes => true,
        Repeatable::IfReadOnly => is_read_only(statement),
    };
    let mut cap_ms = FIRST_PAUSE_MS;
    let mut retries = 0;
    loop {
        match sql.execute(statement, params) {
            Err(e)
                if retries < MAX_RETRIES
                    && (e.is_busy() || (may_repeat && e.is_connection_lost())) =>
            {
                std::thread::sleep(Duration::from_millis(jittered(cap_ms)));
                cap_ms = (cap_ms * 2).min(MAX_PAUSE_MS);
                retries += 1;
            }
            other => return other,
        }
    }
}

/// A statement that changes nothing: `SELECT …`, or a `PRAGMA` that only
/// reads a setting.
pub fn is_read_only(statement: &str) -> bool {
    let s = statement.trim_start();
    let starts = |word: &str| {
        s.get(..word.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(word))
    };
    starts("SELECT") || (starts("PRAGMA") && !s.contains('='))
}

/// A pause between 1 ms and `cap_ms`, uniformly; `cap_ms` when the system
/// has no randomness to give (never seen, but a pause must not fail).
fn jittered(cap_ms: u64) -> u64 {
    match getrandom::u64() {
        Ok(r) => 1 + r % cap_ms.max(1),
        Err(_) => cap_ms,
    }
}

/// The longest the pauses can add up to.
pub fn worst_case_wait() -> Duration {
    let mut cap = FIRST_PAUSE_MS;
    let mut total = 0;
    for _ in 0..MAX_RETRIES {
        total += cap;
        cap = (cap * 2).min(MAX_PAUSE_MS);
    }
    Duration::from_millis(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// Fails the first `failures` calls with `message`, then answers.
    struct Flaky {
        message: &'static str,
        failures: Cell<u32>,
        calls: RefCell<Vec<String>>,
    }

    impl Flaky {
        fn new(message: &'static str, failures: u32) -> Self {
            Self {
                message,
                failures: Cell::new(failures),
                calls: RefCell::new(Vec::new()),
            }
        }
    }

    impl Sql for Flaky {
        fn execute(&self, sql: &str, _: &[SqlValue]) -> Result<Rows, StoreError> {
            self.calls.borrow_mut().push(sql.to_owned());
            if self.failures.get() > 0 {
                self.failures.set(self.failures.get() - 1);
                return Err(StoreError::new(self.message));
            }
            Ok(Rows::default())
        }
    }

    /// As Spin's libSQL client (libsql 0.5) and keygate-host word them.
    const LIBSQL_BUSY: &str = "Hrana: `cursor error: `error at step 0: (error code: SQLITE_BUSY) \
         `SQLite error: database is locked````";
    const LIBSQL_LOST: &str = "Hrana: `http error: `connection closed before message completed``";
    const LIBSQL_EXPIRED: &str = "Hrana: `api error: `status=400 Bad Request, body={\"error\":\
         \"The stream has expired due to inactivity\",\"code\":\"STREAM_EXPIRED\"}``";

    #[test]
    fn a_busy_database_is_tried_again_for_any_statement_until_the_tries_run_out() {
        let db = Flaky::new(LIBSQL_BUSY, MAX_RETRIES);
        let insert = "INSERT INTO audit_log (at) VALUES (?)";
        assert!(execute(&db, insert, &[], Repeatable::IfReadOnly).is_ok());
        assert_eq!(db.calls.borrow().len() as u32, MAX_RETRIES + 1);

        let db = Flaky::new(LIBSQL_BUSY, MAX_RETRIES + 1);
        let e = execute(&db, insert, &[], Repeatable::IfReadOnly).unwrap_err();
        assert!(e.is_busy());
        assert_eq!(db.calls.borrow().len() as u32, MAX_RETRIES + 1);
    }

    #[test]
    fn a_lost_connection_repeats_reads_and_repeatable_statements_but_never_a_write() {
        let read = Flaky::new(LIBSQL_LOST, 2);
        assert!(execute(&read, "SELECT 1 FROM api_keys", &[], Repeatable::IfReadOnly).is_ok());
        assert_eq!(read.calls.borrow().len(), 3);

        let write = Flaky::new(LIBSQL_LOST, 1);
        let insert = "INSERT INTO audit_log (at) VALUES (?)";
        assert!(execute(&write, insert, &[], Repeatable::IfReadOnly).is_err());
        assert_eq!(
            write.calls.borrow().len(),
            1,
            "a write whose outcome is unknown runs once"
        );

        let expired = Flaky::new(LIBSQL_EXPIRED, 1);
        assert!(execute(&expired, "SELECT 1", &[], Repeatable::IfReadOnly).is_ok());
        assert_eq!(expired.calls.borrow().len(), 2);

        let migration = Flaky::new(LIBSQL_LOST, 1);
        let create = "CREATE TABLE IF NOT EXISTS t (x)";
        assert!(execute(&migration, create, &[], Repeatable::Yes).is_ok());
        assert_eq!(migration.calls.borrow().len(), 2);
    }

    #[test]
    fn a_statement_the_server_rolled_back_after_waiting_for_the_lock_is_run_again() {
        const TIMED_OUT: &str = "Hrana: `cursor error: `error at step 0: (error code: \
             TRANSACTION_TIMEOUT) `Transaction timed out```";
        let db = Flaky::new(TIMED_OUT, 1);
        let insert = "INSERT INTO audit_log (at) VALUES (?)";
        assert!(execute(&db, insert, &[], Repeatable::IfReadOnly).is_ok());
        assert_eq!(db.calls.borrow().len(), 2);
    }

    #[test]
    fn other_errors_are_not_retried() {
        let db = Flaky::new("UNIQUE constraint failed: api_keys.name_folded", 1);
        assert!(
            execute(
                &db,
                "INSERT INTO api_keys (id) VALUES (?)",
                &[],
                Repeatable::Yes
            )
            .is_err()
        );
        assert_eq!(db.calls.borrow().len(), 1);
    }

    #[test]
    fn reads_are_told_from_writes() {
        for read in ["SELECT 1", "  select x FROM t", "PRAGMA user_version"] {
            assert!(is_read_only(read), "{read}");
        }
        for write in [
            "INSERT INTO t VALUES (1)",
            "PRAGMA user_version = 3",
            "PRAGMA synchronous = NORMAL",
            "UPDATE t SET x = 1",
            "DELETE FROM t",
            "",
        ] {
            assert!(!is_read_only(write), "{write}");
        }
    }

    #[test]
    fn pauses_are_jittered_within_their_cap_and_bounded_in_total() {
        let pauses: Vec<u64> = (0..64).map(|_| jittered(250)).collect();
        assert!(pauses.iter().all(|p| (1..=250).contains(p)));
        assert!(
            pauses.iter().any(|p| *p != pauses[0]),
            "64 pauses all alike: no jitter"
        );
        assert_eq!(
            worst_case_wait(),
            Duration::from_millis(4 + 8 + 16 + 32 + 64 + 128 + 250)
        );
    }
}
