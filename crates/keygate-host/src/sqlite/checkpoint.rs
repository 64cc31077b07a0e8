//! WAL checkpoints off the writer's path.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use rusqlite::Connection;

use super::open_as_spin_does;
#[cfg(test)]
use super::open_sqlite_file;

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
        let conn = open_as_spin_does(path)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
