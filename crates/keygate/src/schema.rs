//! The SQLite schema, applied automatically and versioned with
//! `PRAGMA user_version`.
//!
//! Every statement is idempotent (`IF NOT EXISTS`; an `ADD COLUMN` that
//! finds its column is taken as done) and the version is written last, so
//! two instances migrating a fresh database at once, or a migration cut
//! short, simply run the statements again. No explicit transaction: Spin
//! hands one statement per call, and remote backends (libSQL over HTTP) do
//! not keep a transaction open between calls.
//!
//! Indexes follow the queries in `service`: every overview sort has a
//! `(column, id)` index (the `id` tie-break makes paging stable), and the
//! audit trail's filters each have an index ending in `at DESC, id DESC`.
//! The overview's `name` filter is a substring match, served by a trigram
//! index (schema v4) for needles of three or more characters. User ids are
//! compared `COLLATE NOCASE` (ASCII case-insensitively, schema v9), and the
//! indexes on them use that collation, so one index serves both spellings.

use crate::retry::{self, Repeatable};
use crate::store::{Sql, StoreError};

pub const SCHEMA_VERSION: i64 = 11;

/// Schema version 1. `name_folded` is the Unicode-lower-cased name, computed
/// in Rust: SQLite's `lower()` folds ASCII only, which would let "Ärger" and
/// "ärger" be two live keys.
pub const V1: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS api_keys (
        id TEXT PRIMARY KEY NOT NULL,
        name TEXT NOT NULL,
        name_folded TEXT NOT NULL,
        description TEXT,
        key_hash TEXT NOT NULL UNIQUE,
        hint TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER,
        expires_at INTEGER,
        revoked_at INTEGER,
        revoked_reason TEXT
    )",
    // Names are unique among keys that are not revoked, also under races.
    "CREATE UNIQUE INDEX IF NOT EXISTS api_keys_live_name
        ON api_keys (name_folded) WHERE revoked_at IS NULL",
    "CREATE INDEX IF NOT EXISTS api_keys_by_name ON api_keys (name_folded, id)",
    // Also serves `created_by = ?` and the webhook's "keys of this user".
    "CREATE INDEX IF NOT EXISTS api_keys_by_owner ON api_keys (created_by, id)",
    "CREATE INDEX IF NOT EXISTS api_keys_by_created_at ON api_keys (created_at, id)",
    // NULL (never used) sorts first ascending: the oldest, as the contract wants.
    "CREATE INDEX IF NOT EXISTS api_keys_by_last_used_at ON api_keys (last_used_at, id)",
    "CREATE TABLE IF NOT EXISTS audit_log (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        user TEXT NOT NULL,
        action TEXT NOT NULL,
        key_id TEXT,
        key_name TEXT,
        details TEXT NOT NULL DEFAULT '{}'
    )",
    "CREATE INDEX IF NOT EXISTS audit_by_time ON audit_log (at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS audit_by_user ON audit_log (user, at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS audit_by_key ON audit_log (key_id, at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS audit_by_action ON audit_log (action, at DESC, id DESC)",
    // One `user.removed` per user, however often the removal is delivered or retried.
    "CREATE UNIQUE INDEX IF NOT EXISTS audit_user_removed_once
        ON audit_log (user) WHERE action = 'user.removed'",
    // Verify writes only the `key.used` entry; this keeps `last_used_at` in
    // step in the same statement (and never moves it backwards).
    "CREATE TRIGGER IF NOT EXISTS audit_key_used_sets_last_used_at
        AFTER INSERT ON audit_log
        WHEN NEW.action = 'key.used'
        BEGIN
            UPDATE api_keys SET last_used_at = NEW.at
            WHERE id = NEW.key_id AND (last_used_at IS NULL OR last_used_at < NEW.at);
        END",
    // Revoking a key and auditing it are one statement, so a crash cannot
    // leave one without the other, and a retry (which only revokes keys not
    // yet revoked) cannot audit twice.
    "CREATE TRIGGER IF NOT EXISTS api_keys_revocation_is_audited
        AFTER UPDATE OF revoked_at ON api_keys
        WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
        BEGIN
            INSERT INTO audit_log (at, user, action, key_id, key_name, details)
            VALUES (NEW.revoked_at, NEW.created_by, 'key.revoked', NEW.id, NEW.name,
                    json_object('reason', NEW.revoked_reason));
        END",
    "CREATE TABLE IF NOT EXISTS removed_users (
        user_id TEXT PRIMARY KEY NOT NULL,
        removed_at INTEGER NOT NULL,
        webhook_id TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS webhook_deliveries (
        webhook_id TEXT PRIMARY KEY NOT NULL,
        response TEXT NOT NULL,
        received_at INTEGER NOT NULL
    )",
];

/// Schema version 2: key counts per owner, so the overview's `total` is a
/// read of a few rows instead of a `COUNT(*)` over every key (5 ms at 100,000
/// keys). Triggers keep them in step in the statement that changes a key.
/// The triggers come first and the counts are then set from `api_keys` in one
/// statement, so a key written while this runs is counted exactly once, and a
/// migration cut short is finished correctly by the next run.
pub const V2: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS key_counts (
        created_by TEXT PRIMARY KEY NOT NULL,
        total INTEGER NOT NULL,
        revoked INTEGER NOT NULL
    ) WITHOUT ROWID",
    "CREATE TRIGGER IF NOT EXISTS key_counts_on_insert
        AFTER INSERT ON api_keys
        BEGIN
            INSERT INTO key_counts (created_by, total, revoked)
            VALUES (NEW.created_by, 1, NEW.revoked_at IS NOT NULL)
            ON CONFLICT (created_by) DO UPDATE
            SET total = total + 1, revoked = revoked + (NEW.revoked_at IS NOT NULL);
        END",
    "CREATE TRIGGER IF NOT EXISTS key_counts_on_delete
        AFTER DELETE ON api_keys
        BEGIN
            UPDATE key_counts
            SET total = total - 1, revoked = revoked - (OLD.revoked_at IS NOT NULL)
            WHERE created_by = OLD.created_by;
        END",
    "CREATE TRIGGER IF NOT EXISTS key_counts_on_revocation
        AFTER UPDATE OF revoked_at ON api_keys
        WHEN (OLD.revoked_at IS NULL) <> (NEW.revoked_at IS NULL)
        BEGIN
            UPDATE key_counts
            SET revoked = revoked + (CASE WHEN NEW.revoked_at IS NULL THEN -1 ELSE 1 END)
            WHERE created_by = NEW.created_by;
        END",
    "INSERT OR REPLACE INTO key_counts (created_by, total, revoked)
        SELECT created_by, count(*), count(revoked_at) FROM api_keys GROUP BY created_by",
    // `status=active` is the live count minus the live keys already expired.
    "CREATE INDEX IF NOT EXISTS api_keys_live_by_expiry
        ON api_keys (expires_at, created_by) WHERE revoked_at IS NULL AND expires_at IS NOT NULL",
];

/// Schema version 3: one owner's keys newest first (the overview's default
/// sort with a `created_by` filter) straight from an index. Without it, an
/// owner with 100,000 keys took 180 ms a page: the planner takes the owner
/// index for the filter and then sorted every key of that owner.
pub const V3: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS api_keys_by_owner_created_at ON api_keys (created_by, created_at, id)",
];

/// Schema version 4: creating and deleting a key are each one statement
/// with their audit entry, as revoking already was, so no failure or crash
/// between two calls can leave a key listed that the trail never saw created,
/// or an entry for a deletion that did not happen.
pub const V4: &[&str] = &[
    "CREATE TRIGGER IF NOT EXISTS api_keys_creation_is_audited
        AFTER INSERT ON api_keys
        BEGIN
            INSERT INTO audit_log (at, user, action, key_id, key_name, details)
            VALUES (NEW.created_at, NEW.created_by, 'key.created', NEW.id, NEW.name, '{}');
        END",
    // `key.deleted` names the acting user, which only the insert knows: the
    // entry removes the key, rather than the removal writing the entry.
    "CREATE TRIGGER IF NOT EXISTS audit_key_deleted_removes_the_key
        AFTER INSERT ON audit_log
        WHEN NEW.action = 'key.deleted'
        BEGIN
            DELETE FROM api_keys WHERE id = NEW.key_id;
        END",
];

/// Schema version 5: a trigram index of the folded names (FTS5's `trigram`
/// tokenizer), so the overview's substring filter finds its few matches
/// instead of reading every key (58 ms at 100,000 keys). It is keyed by
/// `api_keys`' rowid and kept in step by triggers; the query re-checks each
/// match with `instr`, so the index can only ever narrow the scan, never add
/// a key. (`VACUUM` may renumber the rowids of a table without an INTEGER
/// PRIMARY KEY: after one, `PRAGMA user_version = 4` makes the next call
/// re-index every key; entries left over can only point at rows `instr`
/// rejects.)
/// Triggers first, then the backfill of keys not yet indexed, as in v2.
pub const V5: &[&str] = &[
    "CREATE VIRTUAL TABLE IF NOT EXISTS api_keys_name_search
        USING fts5 (name_folded, tokenize = 'trigram case_sensitive 1')",
    "CREATE TRIGGER IF NOT EXISTS api_keys_name_search_on_insert
        AFTER INSERT ON api_keys
        BEGIN
            INSERT OR REPLACE INTO api_keys_name_search (rowid, name_folded)
            VALUES (NEW.rowid, NEW.name_folded);
        END",
    "CREATE TRIGGER IF NOT EXISTS api_keys_name_search_on_delete
        AFTER DELETE ON api_keys
        BEGIN
            DELETE FROM api_keys_name_search WHERE rowid = OLD.rowid;
        END",
    "CREATE TRIGGER IF NOT EXISTS api_keys_name_search_on_rename
        AFTER UPDATE OF name_folded ON api_keys
        BEGIN
            INSERT OR REPLACE INTO api_keys_name_search (rowid, name_folded)
            VALUES (NEW.rowid, NEW.name_folded);
        END",
    "INSERT OR REPLACE INTO api_keys_name_search (rowid, name_folded)
        SELECT rowid, name_folded FROM api_keys",
];

/// Schema version 6. The user-removed webhook counts the user's `key.revoked`
/// entries; SQLite served that from `audit_by_action`, i.e. every revocation
/// of every user, so each delivery grew slower as revocations accumulated
/// (webhook p99 7 → 31 ms over a 10-minute soak). A partial index holds only
/// revocations: verify's `key.used` inserts never touch it.
pub const V6: &[&str] = &["CREATE INDEX IF NOT EXISTS audit_revocations_by_user
        ON audit_log (user) WHERE action = 'key.revoked'"];

/// Schema version 7: a deletion is written to `key_deletions`, whose trigger
/// removes the key and writes `key.deleted`, all in the one statement as
/// before. Until v6 an `audit_log` trigger did the removal when a
/// `key.deleted` entry was inserted, so every insert into the trail — each
/// verify's `key.used` — was compiled with that `DELETE` and the triggers it
/// fires in turn (key counts, the name index's FTS5 table). Spin gives every
/// request a fresh connection, so verify compiled all of it on every call:
/// 70 µs of 250, and on real Spin at 16 connections 0.66× → 0.72× the
/// one-INSERT probe's throughput (docs/benchmarks.md, 17.).
///
/// The guard makes an instance still at v6 (a rolling upgrade) fail its
/// deletes with a storage error, instead of writing `key.deleted` for a key
/// that no trigger removes any more; `key_deletions` writes the entry after
/// the key is gone, so the guard never stops it.
pub const V7: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS key_deletions (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        deleted_by TEXT NOT NULL,
        key_id TEXT NOT NULL,
        key_name TEXT NOT NULL
    )",
    "CREATE TRIGGER IF NOT EXISTS key_deletion_removes_the_key_and_is_audited
        AFTER INSERT ON key_deletions
        BEGIN
            DELETE FROM api_keys WHERE id = NEW.key_id;
            INSERT INTO audit_log (at, user, action, key_id, key_name, details)
            VALUES (NEW.at, NEW.deleted_by, 'key.deleted', NEW.key_id, NEW.key_name, '{}');
        END",
    "CREATE TRIGGER IF NOT EXISTS audit_key_deleted_only_for_a_removed_key
        BEFORE INSERT ON audit_log
        WHEN NEW.action = 'key.deleted'
            AND EXISTS (SELECT 1 FROM api_keys WHERE id = NEW.key_id)
        BEGIN
            SELECT RAISE(ABORT, 'key.deleted is written through key_deletions (schema 7)');
        END",
    "DROP TRIGGER IF EXISTS audit_key_deleted_removes_the_key",
];

/// Schema version 8: the write-ahead log. Spin opens every connection with
/// SQLite's defaults, whose rollback journal costs each commit several
/// `fsync`s and makes readers and writers wait for each other; WAL is a
/// property of the database file, so once set here every later connection
/// (of any instance on this file) uses it. A database that does not let a
/// client choose its journal (libSQL's server answers `unsupported
/// statement`: it keeps its own log) is left as it is. The switch needs the
/// file to itself for a moment: while other connections are busy with it
/// SQLite answers `database is locked` at once, and the switch is left for
/// later without error: the versions after it are still applied (the code
/// needs their schema), but none from v8 on is recorded, so a later request
/// runs them again (every statement is idempotent) and tries the switch again.
pub const V8: &[&str] = &["PRAGMA journal_mode = WAL"];

/// Schema version 9: user ids match ASCII case-insensitively, and the audit
/// entries of management calls record how the actor signed in.
///
/// **User ids.** Every comparison of a user id is `COLLATE NOCASE` (SQLite's
/// NOCASE folds ASCII only, as the contract asks), served by an index of that
/// collation. On `api_keys` and `audit_log` each replaces the binary index it
/// was served by, so every write there maintains as many indexes as before:
/// verify's `key.used` insert writes the same B-trees (`docs/query-plans.md`
/// lists them) and compiles to one instruction more (the row its trigger
/// rewrites has one more column). `removed_users` and `key_counts` keep their
/// binary keys (`ON CONFLICT` needs them, and a v8 database may hold two
/// spellings of one user) and gain one small NOCASE index each, written when
/// a user is removed or first owns a key. `audit_user_removed_once` stays
/// binary: the removal writes `user.removed` under the spelling
/// `removed_users` holds first. Ids are stored as written; the overview sorts
/// `created_by` NOCASE too, so one user's keys stay together whatever the
/// spelling. The new indexes come first, so no query of this version ever
/// lacks one; an instance still at v8 during a rolling upgrade answers its
/// exact (binary) filters correctly, but without an index once the old ones
/// are gone. Building the user index of a trail of a million entries takes
/// about 0.7 s, during which writes wait (Spin's busy timeout is 5 s).
///
/// **Sign-in.** `api_keys.created_via` and `key_deletions.auth` hold `oidc`
/// or `admin_token`; new triggers write `key.created` and `key.deleted` with
/// `details = {"auth": …}`, or `'{}'` where the column is NULL (keys and
/// deletions written by a v8 instance). Triggers cannot be altered, and a
/// v8 instance may insert keys and deletions at any moment in between:
/// dropping the old trigger before the new one exists would let a creation
/// or deletion go unaudited, creating the new one first would audit it twice
/// until the old one is dropped. So, in order: the columns; a guard that
/// ignores a second `key.created` or `key.deleted` entry for the same key
/// (a `BEFORE INSERT` trigger on `audit_log` answering `RAISE(IGNORE)`,
/// which drops that one insert and lets the statement that caused it go on);
/// the new triggers; the old triggers dropped; the guard dropped. At every
/// point between two statements at least one trigger audits each creation
/// and deletion, and at most one entry is kept. The guard lives only while
/// the migration runs, so verify's insert is not compiled with it afterwards
/// (a migration cut short leaves it until the next run finishes the
/// version). An instance at v9 creates and deletes with the new columns only
/// after the whole version ran (it migrates first when the version is lower).
/// One window is left: two instances migrating a *fresh* database at once,
/// one a whole migration behind the other, re-create v4's and v7's triggers
/// (as they always re-created v4's, which v7 drops) until the slow one
/// reaches this version's guard; keys created in that window of first
/// start-up may be audited twice, never not at all. Run again while v8's
/// journal switch waits for a quiet moment (see [`V8`]), this version changes
/// nothing but creating and dropping the guard.
pub const V9: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS api_keys_by_owner_nocase
        ON api_keys (created_by COLLATE NOCASE, id)",
    "CREATE INDEX IF NOT EXISTS api_keys_by_owner_created_at_nocase
        ON api_keys (created_by COLLATE NOCASE, created_at, id)",
    "CREATE INDEX IF NOT EXISTS audit_by_user_nocase
        ON audit_log (user COLLATE NOCASE, at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS audit_revocations_by_user_nocase
        ON audit_log (user COLLATE NOCASE) WHERE action = 'key.revoked'",
    "CREATE INDEX IF NOT EXISTS removed_users_by_user_nocase
        ON removed_users (user_id COLLATE NOCASE)",
    "CREATE INDEX IF NOT EXISTS key_counts_by_owner_nocase
        ON key_counts (created_by COLLATE NOCASE)",
    "DROP INDEX IF EXISTS api_keys_by_owner",
    "DROP INDEX IF EXISTS api_keys_by_owner_created_at",
    "DROP INDEX IF EXISTS audit_by_user",
    "DROP INDEX IF EXISTS audit_revocations_by_user",
    "ALTER TABLE api_keys ADD COLUMN created_via TEXT",
    "ALTER TABLE key_deletions ADD COLUMN auth TEXT",
    "CREATE TRIGGER IF NOT EXISTS audit_key_created_or_deleted_once_while_migrating
        BEFORE INSERT ON audit_log
        WHEN NEW.action IN ('key.created', 'key.deleted')
            AND EXISTS (SELECT 1 FROM audit_log WHERE key_id = NEW.key_id AND action = NEW.action)
        BEGIN
            SELECT RAISE(IGNORE);
        END",
    "CREATE TRIGGER IF NOT EXISTS key_creation_is_audited_with_its_sign_in
        AFTER INSERT ON api_keys
        BEGIN
            INSERT INTO audit_log (at, user, action, key_id, key_name, details)
            VALUES (NEW.created_at, NEW.created_by, 'key.created', NEW.id, NEW.name,
                    CASE WHEN NEW.created_via IS NULL THEN '{}'
                         ELSE json_object('auth', NEW.created_via) END);
        END",
    "CREATE TRIGGER IF NOT EXISTS key_deletion_removes_the_key_and_is_audited_with_its_sign_in
        AFTER INSERT ON key_deletions
        BEGIN
            DELETE FROM api_keys WHERE id = NEW.key_id;
            INSERT INTO audit_log (at, user, action, key_id, key_name, details)
            VALUES (NEW.at, NEW.deleted_by, 'key.deleted', NEW.key_id, NEW.key_name,
                    CASE WHEN NEW.auth IS NULL THEN '{}'
                         ELSE json_object('auth', NEW.auth) END);
        END",
    "DROP TRIGGER IF EXISTS api_keys_creation_is_audited",
    "DROP TRIGGER IF EXISTS key_deletion_removes_the_key_and_is_audited",
    "DROP TRIGGER IF EXISTS audit_key_created_or_deleted_once_while_migrating",
];

/// Schema version 10: SCIM provisioning (`crate::scim`). `scim_users` holds
/// each User as the identity provider sent it (`attributes`, JSON), with
/// `user_name` (the keygate user id, unique case-insensitively by its NOCASE
/// index, which also serves the `userName eq` filter), `external_id` (the
/// `externalId eq` filter), the user ids it had before a rename
/// (`former_user_names`, JSON: deprovisioning removes them too), the version
/// behind the ETag, and its times.
/// A user set `active` again is readmitted by an insert into
/// `user_reactivations`, whose trigger writes `user.reactivated` and deletes
/// the `removed_users` row in the same statement, so the readmission and its
/// entry happen together or not at all. Only new tables, indexes and a
/// trigger on a new table: nothing an instance still at v9 reads or writes
/// changes.
pub const V10: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS scim_users (
        id TEXT PRIMARY KEY NOT NULL,
        user_name TEXT NOT NULL,
        external_id TEXT,
        attributes TEXT NOT NULL,
        former_user_names TEXT NOT NULL DEFAULT '[]',
        version INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        modified_at INTEGER NOT NULL
    )",
    "CREATE UNIQUE INDEX IF NOT EXISTS scim_users_by_user_name
        ON scim_users (user_name COLLATE NOCASE)",
    "CREATE INDEX IF NOT EXISTS scim_users_by_external_id ON scim_users (external_id)",
    // The list's order (oldest first, `id` breaking ties) from an index.
    "CREATE INDEX IF NOT EXISTS scim_users_by_created_at ON scim_users (created_at, id)",
    "CREATE TABLE IF NOT EXISTS user_reactivations (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        user_id TEXT NOT NULL,
        scim_id TEXT NOT NULL
    )",
    "CREATE TRIGGER IF NOT EXISTS user_reactivation_readmits_and_is_audited
        AFTER INSERT ON user_reactivations
        BEGIN
            INSERT INTO audit_log (at, user, action, key_id, key_name, details)
            SELECT NEW.at, user_id, 'user.reactivated', NULL, NULL,
                   json_object('scim_id', NEW.scim_id, 'removed_by', webhook_id)
            FROM removed_users WHERE user_id COLLATE NOCASE = NEW.user_id;
            DELETE FROM removed_users WHERE user_id COLLATE NOCASE = NEW.user_id;
        END",
];

/// Schema version 11: owners, service accounts, and the key lifecycle (v2).
///
/// - `api_keys.owner`: whom the key acts as. Existing keys are owned by
///   their creator (backfilled); an instance still at v10 inserts keys
///   without it during a rolling upgrade, and a trigger fills it in the same
///   statement. Verify takes the owner (and the name) from the row in its one
///   insert, so a transfer is one statement and a key never acts as two owners.
/// - `api_keys.previous_key_hash` / `previous_valid_until`: a rolled key's
///   one previous secret and when it stops verifying; verify's insert checks
///   the presented hash against these, so the grace ends in SQL exactly.
/// - `service_accounts`: owners no identity system removes; names unique
///   among live ones, case-insensitively. A deletion keeps the row
///   (`deleted_at`), so no key can be created for or moved to it afterwards.
/// - Journal tables `key_transfers`, `key_updates`, `key_rolls`: each change
///   is one insert whose trigger changes the key and writes its audit entry
///   in the same statement (as `key_deletions` does since v7), with the
///   acting user and how they signed in, which a trigger on `api_keys` could
///   not know.
/// - `key.revoked` entries name the owner. The trigger that wrote the creator
///   is replaced; a guard keeps one entry per revocation while both exist.
pub const V11: &[&str] = &[
    "ALTER TABLE api_keys ADD COLUMN owner TEXT",
    "ALTER TABLE api_keys ADD COLUMN previous_key_hash TEXT",
    "ALTER TABLE api_keys ADD COLUMN previous_valid_until INTEGER",
    "CREATE TRIGGER IF NOT EXISTS api_keys_owned_by_their_creator_by_default
        AFTER INSERT ON api_keys
        WHEN NEW.owner IS NULL
        BEGIN
            UPDATE api_keys SET owner = NEW.created_by WHERE id = NEW.id;
        END",
    "UPDATE api_keys SET owner = created_by WHERE owner IS NULL",
    "CREATE INDEX IF NOT EXISTS api_keys_by_key_owner
        ON api_keys (owner COLLATE NOCASE, id)",
    "CREATE INDEX IF NOT EXISTS api_keys_by_key_owner_created_at
        ON api_keys (owner COLLATE NOCASE, created_at, id)",
    "CREATE TRIGGER IF NOT EXISTS audit_key_revoked_once_while_migrating
        BEFORE INSERT ON audit_log
        WHEN NEW.action = 'key.revoked'
            AND EXISTS (SELECT 1 FROM audit_log WHERE key_id = NEW.key_id AND action = 'key.revoked')
        BEGIN
            SELECT RAISE(IGNORE);
        END",
    "CREATE TRIGGER IF NOT EXISTS key_revocation_is_audited_as_its_owner
        AFTER UPDATE OF revoked_at ON api_keys
        WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
        BEGIN
            INSERT INTO audit_log (at, user, action, key_id, key_name, details)
            VALUES (NEW.revoked_at, coalesce(NEW.owner, NEW.created_by), 'key.revoked', NEW.id,
                    NEW.name, json_object('reason', NEW.revoked_reason));
        END",
    "DROP TRIGGER IF EXISTS api_keys_revocation_is_audited",
    "DROP TRIGGER IF EXISTS audit_key_revoked_once_while_migrating",
    "CREATE TABLE IF NOT EXISTS service_accounts (
        id TEXT PRIMARY KEY NOT NULL,
        name TEXT NOT NULL,
        name_folded TEXT NOT NULL,
        description TEXT,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_via TEXT NOT NULL,
        deleted_at INTEGER,
        deleted_by TEXT,
        deleted_via TEXT
    )",
    "CREATE UNIQUE INDEX IF NOT EXISTS service_accounts_live_name
        ON service_accounts (name_folded) WHERE deleted_at IS NULL",
    "CREATE INDEX IF NOT EXISTS service_accounts_live_by_created_at
        ON service_accounts (created_at, id) WHERE deleted_at IS NULL",
    "CREATE TRIGGER IF NOT EXISTS service_account_creation_is_audited
        AFTER INSERT ON service_accounts
        BEGIN
            INSERT INTO audit_log (at, user, action, key_id, key_name, details)
            VALUES (NEW.created_at, NEW.created_by, 'service_account.created', NULL, NULL,
                    json_object('service_account_id', NEW.id, 'name', NEW.name,
                                'auth', NEW.created_via));
        END",
    "CREATE TRIGGER IF NOT EXISTS service_account_deletion_is_audited
        AFTER UPDATE OF deleted_at ON service_accounts
        WHEN OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL
        BEGIN
            INSERT INTO audit_log (at, user, action, key_id, key_name, details)
            VALUES (NEW.deleted_at, NEW.deleted_by, 'service_account.deleted', NULL, NULL,
                    json_object('service_account_id', NEW.id, 'name', NEW.name,
                                'auth', NEW.deleted_via));
        END",
    "CREATE TABLE IF NOT EXISTS key_transfers (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        transferred_by TEXT NOT NULL,
        auth TEXT NOT NULL,
        key_id TEXT NOT NULL,
        key_name TEXT NOT NULL,
        from_owner TEXT NOT NULL,
        to_owner TEXT NOT NULL
    )",
    "CREATE TRIGGER IF NOT EXISTS key_transfer_moves_the_key_and_is_audited
        AFTER INSERT ON key_transfers
        BEGIN
            UPDATE api_keys SET owner = NEW.to_owner WHERE id = NEW.key_id;
            INSERT INTO audit_log (at, user, action, key_id, key_name, details)
            VALUES (NEW.at, NEW.transferred_by, 'key.transferred', NEW.key_id, NEW.key_name,
                    json_object('from', NEW.from_owner, 'to', NEW.to_owner, 'auth', NEW.auth));
        END",
    "CREATE TABLE IF NOT EXISTS key_updates (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        updated_by TEXT NOT NULL,
        auth TEXT NOT NULL,
        key_id TEXT NOT NULL,
        key_name TEXT NOT NULL,
        sets_name INTEGER NOT NULL,
        name TEXT,
        name_folded TEXT,
        sets_description INTEGER NOT NULL,
        description TEXT,
        sets_expires_at INTEGER NOT NULL,
        expires_at INTEGER,
        fields TEXT NOT NULL
    )",
    // Only the fields the patch names are set, from the row as it is when
    // the statement runs: two patches of different fields both hold.
    "CREATE TRIGGER IF NOT EXISTS key_update_changes_the_key_and_is_audited
        AFTER INSERT ON key_updates
        BEGIN
            UPDATE api_keys SET
                name = CASE WHEN NEW.sets_name THEN NEW.name ELSE name END,
                name_folded = CASE WHEN NEW.sets_name THEN NEW.name_folded ELSE name_folded END,
                description = CASE WHEN NEW.sets_description THEN NEW.description
                                   ELSE description END,
                expires_at = CASE WHEN NEW.sets_expires_at THEN NEW.expires_at
                                  ELSE expires_at END
            WHERE id = NEW.key_id;
            INSERT INTO audit_log (at, user, action, key_id, key_name, details)
            SELECT NEW.at, NEW.updated_by, 'key.updated', NEW.key_id, name,
                   json_object('fields', json(NEW.fields), 'auth', NEW.auth)
            FROM api_keys WHERE id = NEW.key_id;
        END",
    "CREATE TABLE IF NOT EXISTS key_rolls (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        rolled_by TEXT NOT NULL,
        auth TEXT NOT NULL,
        key_id TEXT NOT NULL,
        key_name TEXT NOT NULL,
        new_hash TEXT NOT NULL,
        new_hint TEXT NOT NULL,
        previous_hash TEXT NOT NULL,
        previous_valid_until INTEGER NOT NULL
    )",
    "CREATE TRIGGER IF NOT EXISTS key_roll_replaces_the_secret_and_is_audited
        AFTER INSERT ON key_rolls
        BEGIN
            UPDATE api_keys SET
                previous_key_hash = NEW.previous_hash,
                previous_valid_until = NEW.previous_valid_until,
                key_hash = NEW.new_hash,
                hint = NEW.new_hint
            WHERE id = NEW.key_id;
            INSERT INTO audit_log (at, user, action, key_id, key_name, details)
            VALUES (NEW.at, NEW.rolled_by, 'key.rolled', NEW.key_id, NEW.key_name,
                    json_object('previous_secret_expires_at',
                                strftime('%Y-%m-%dT%H:%M:%SZ', NEW.previous_valid_until, 'unixepoch'),
                                'auth', NEW.auth));
        END",
];

/// What verify's connection sets before it records a use: `synchronous =
/// NORMAL`. In WAL mode a commit then appends to the log without an `fsync`;
/// the log is synced at each checkpoint (SQLite's automatic one every 1,000
/// pages, or when the last connection closes) and by any commit made with
/// SQLite's default `FULL`, which every other write of keygate keeps. A
/// crash of Spin or of the component loses nothing; a power loss or kernel
/// crash can lose the `key.used` entries (and `last_used_at`) since the last
/// sync, never a key's creation, deletion or revocation. See the README.
pub const RECORD_USES_WITHOUT_FSYNC: &str = "PRAGMA synchronous = NORMAL";

/// Each version's statements, in order.
const MIGRATIONS: &[(i64, &[&str])] = &[
    (1, V1),
    (2, V2),
    (3, V3),
    (4, V4),
    (5, V5),
    (6, V6),
    (7, V7),
    (8, V8),
    (9, V9),
    (10, V10),
    (11, V11),
];

pub fn user_version(sql: &dyn Sql) -> Result<i64, StoreError> {
    retry::execute(sql, "PRAGMA user_version", &[], Repeatable::IfReadOnly)?.scalar_int()
}

/// Brings this connection's copy of the schema up to date with the file: a
/// read of the schema table checks the file's schema cookie, and SQLite
/// reloads its copy when another connection changed it.
pub fn reload(sql: &dyn Sql) -> Result<(), StoreError> {
    sql.execute("SELECT count(*) FROM sqlite_master", &[])?;
    Ok(())
}

/// Brings the database to [`SCHEMA_VERSION`]; one read when it is already there.
pub fn migrate(sql: &dyn Sql) -> Result<(), StoreError> {
    migrate_from(sql, user_version(sql)?)
}

/// [`migrate`] when the version is known (read with another query). Every
/// statement is safe to run twice — by two instances starting together, or
/// again after a lost connection — so [`retry`] may repeat any of them.
pub fn migrate_from(sql: &dyn Sql, current: i64) -> Result<(), StoreError> {
    migrate_between(sql, current, SCHEMA_VERSION)
}

/// A database as an older keygate left it: migrated up to `target` only.
#[cfg(test)]
pub(crate) fn migrate_to(sql: &dyn Sql, target: i64) -> Result<(), StoreError> {
    migrate_between(sql, user_version(sql)?, target)
}

fn migrate_between(sql: &dyn Sql, current: i64, target: i64) -> Result<(), StoreError> {
    let due = MIGRATIONS
        .iter()
        .filter(|(v, _)| *v > current && *v <= target);
    // Once a statement is left for later (V8's journal switch on a busy
    // file), later versions are applied but not recorded.
    let mut left_for_later = false;
    for (version, statements) in due {
        for statement in *statements {
            if dropped_before(statement, *version, target) {
                continue;
            }
            if !apply(sql, statement)? {
                left_for_later = true;
            }
        }
        if !left_for_later {
            // PRAGMA takes no parameters; `version` is a constant of this crate.
            let record = format!("PRAGMA user_version = {version}");
            retry::execute(sql, &record, &[], Repeatable::Yes)?;
        }
    }
    Ok(())
}

/// Whether `statement` creates a trigger or an index that a later version,
/// up to `target`, drops: such an object is not created at all. On a fresh
/// database several instances migrate from 0 at once; one that is behind
/// would otherwise re-create, say, v4's `key.created` trigger after another
/// had replaced it (v9), and every key created until it caught up was
/// audited twice (seen on real Spin: 16 concurrent creates on an empty
/// database). A trigger created and dropped within one version (a guard for
/// instances still at the older version) is kept.
fn dropped_before(statement: &str, version: i64, target: i64) -> bool {
    let created = [
        "CREATE TRIGGER IF NOT EXISTS ",
        "CREATE INDEX IF NOT EXISTS ",
        "CREATE UNIQUE INDEX IF NOT EXISTS ",
    ]
    .iter()
    .find_map(|prefix| statement.strip_prefix(prefix))
    .and_then(|rest| rest.split_whitespace().next());
    let Some(name) = created else {
        return false;
    };
    let kind = if statement.contains(" TRIGGER ") {
        "TRIGGER"
    } else {
        "INDEX"
    };
    let drop = format!("DROP {kind} IF EXISTS {name}");
    MIGRATIONS
        .iter()
        .filter(|(v, _)| *v > version && *v <= target)
        .any(|(_, later)| later.iter().any(|s| s.trim() == drop))
}

/// Runs one migration statement; `false` when it is left for a later call.
fn apply(sql: &dyn Sql, statement: &str) -> Result<bool, StoreError> {
    let run = || retry::execute(sql, statement, &[], Repeatable::Yes);
    let outcome = if statement.starts_with("PRAGMA") {
        match sql.execute(statement, &[]) {
            // A setting the server keeps for itself (V8 on libSQL).
            Err(e) if e.is_unsupported_statement() => Ok(()),
            // The journal can only change while no one else uses the file
            // (V8): a later call tries again (no waiting here: the file
            // stays busy under load).
            Err(e) if e.is_locked() => return Ok(false),
            other => other.map(drop),
        }
    } else if statement.starts_with("ALTER TABLE") {
        match run() {
            // Added by an earlier run: another instance, or this statement
            // repeated after its answer was lost.
            Err(e) if e.message().contains("duplicate column name") => Ok(()),
            other => other.map(drop),
        }
    } else {
        run().map(drop)
    };
    outcome.map(|()| true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqlValue;
    use crate::testing::SqliteSql;

    fn names(sql: &SqliteSql, kind: &str) -> Vec<String> {
        sql.execute(
            "SELECT name FROM sqlite_master WHERE type = ? AND name NOT LIKE 'sqlite_%' ORDER BY name",
            &[SqlValue::text(kind)],
        )
        .unwrap()
        .rows
        .into_iter()
        .map(|r| match &r[0] {
            SqlValue::Text(s) => s.clone(),
            v => panic!("{v:?}"),
        })
        .collect()
    }

    #[test]
    fn a_fresh_database_is_migrated_and_migrating_again_changes_nothing() {
        let sql = SqliteSql::new();
        assert_eq!(user_version(&sql).unwrap(), 0);
        migrate(&sql).unwrap();
        assert_eq!(user_version(&sql).unwrap(), SCHEMA_VERSION);
        let tables = names(&sql, "table");
        assert_eq!(
            tables,
            [
                "api_keys",
                "api_keys_name_search",
                "api_keys_name_search_config",
                "api_keys_name_search_content",
                "api_keys_name_search_data",
                "api_keys_name_search_docsize",
                "api_keys_name_search_idx",
                "audit_log",
                "key_counts",
                "key_deletions",
                "key_rolls",
                "key_transfers",
                "key_updates",
                "removed_users",
                "scim_users",
                "service_accounts",
                "user_reactivations",
                "webhook_deliveries"
            ]
        );
        let indexes = names(&sql, "index");
        assert_eq!(
            indexes,
            [
                "api_keys_by_created_at",
                "api_keys_by_key_owner",
                "api_keys_by_key_owner_created_at",
                "api_keys_by_last_used_at",
                "api_keys_by_name",
                "api_keys_by_owner_created_at_nocase",
                "api_keys_by_owner_nocase",
                "api_keys_live_by_expiry",
                "api_keys_live_name",
                "audit_by_action",
                "audit_by_key",
                "audit_by_time",
                "audit_by_user_nocase",
                "audit_revocations_by_user_nocase",
                "audit_user_removed_once",
                "key_counts_by_owner_nocase",
                "removed_users_by_user_nocase",
                "scim_users_by_created_at",
                "scim_users_by_external_id",
                "scim_users_by_user_name",
                "service_accounts_live_by_created_at",
                "service_accounts_live_name",
            ]
        );
        let triggers = names(&sql, "trigger");
        assert_eq!(
            triggers,
            [
                "api_keys_name_search_on_delete",
                "api_keys_name_search_on_insert",
                "api_keys_name_search_on_rename",
                "api_keys_owned_by_their_creator_by_default",
                "audit_key_deleted_only_for_a_removed_key",
                "audit_key_used_sets_last_used_at",
                "key_counts_on_delete",
                "key_counts_on_insert",
                "key_counts_on_revocation",
                "key_creation_is_audited_with_its_sign_in",
                "key_deletion_removes_the_key_and_is_audited_with_its_sign_in",
                "key_revocation_is_audited_as_its_owner",
                "key_roll_replaces_the_secret_and_is_audited",
                "key_transfer_moves_the_key_and_is_audited",
                "key_update_changes_the_key_and_is_audited",
                "service_account_creation_is_audited",
                "service_account_deletion_is_audited",
                "user_reactivation_readmits_and_is_audited",
            ]
        );
        migrate(&sql).unwrap();
        assert_eq!(user_version(&sql).unwrap(), SCHEMA_VERSION);
        assert_eq!(names(&sql, "index"), indexes);
        assert_eq!(names(&sql, "trigger"), triggers);
        // A migration cut short (version not yet written) is finished by the next run.
        sql.execute("PRAGMA user_version = 0", &[]).unwrap();
        migrate(&sql).unwrap();
        assert_eq!(user_version(&sql).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn migrating_a_database_file_turns_on_its_write_ahead_log_for_every_later_connection() {
        let path = std::env::temp_dir().join(format!(
            "keygate-schema-wal-{}-{:?}.db",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&path);
        migrate(&SqliteSql::open(&path)).unwrap();
        let later = SqliteSql::open(&path);
        let mode = later.execute("PRAGMA journal_mode", &[]).unwrap();
        assert_eq!(mode.rows, [[SqlValue::text("wal")]]);
        drop(later);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    /// A database server that keeps its journal to itself, as libSQL's does.
    struct RefusesJournalMode(SqliteSql);

    impl Sql for RefusesJournalMode {
        fn execute(
            &self,
            sql: &str,
            params: &[SqlValue],
        ) -> Result<crate::store::Rows, StoreError> {
            if sql.starts_with("PRAGMA journal_mode") {
                return Err(StoreError::new(format!("unsupported statement: {sql}")));
            }
            self.0.execute(sql, params)
        }
    }

    #[test]
    fn a_server_that_keeps_its_own_journal_is_still_migrated_but_other_failures_stop_it() {
        let server = RefusesJournalMode(SqliteSql::new());
        migrate(&server).unwrap();
        assert_eq!(user_version(&server).unwrap(), SCHEMA_VERSION);

        let failing = crate::testing::FailingSql::new(SqliteSql::new());
        failing.fail_nth_matching("PRAGMA journal_mode", 1);
        assert!(migrate(&failing).is_err());
        assert_eq!(user_version(&failing).unwrap(), 7, "stopped before v8");
        migrate(&failing).unwrap();
        assert_eq!(user_version(&failing).unwrap(), SCHEMA_VERSION);
    }

    /// SQLite refusing the journal switch while the file is busy, `left` times.
    struct BusyJournal {
        inner: SqliteSql,
        left: std::cell::Cell<usize>,
    }

    impl Sql for BusyJournal {
        fn execute(
            &self,
            sql: &str,
            params: &[SqlValue],
        ) -> Result<crate::store::Rows, StoreError> {
            if sql.starts_with("PRAGMA journal_mode") && self.left.get() > 0 {
                self.left.set(self.left.get() - 1);
                return Err(StoreError::new("sqlite: database is locked"));
            }
            self.inner.execute(sql, params)
        }
    }

    /// The code of v9 needs v9's schema even while the journal switch of v8
    /// waits for a quiet moment: later versions are applied, not recorded.
    #[test]
    fn a_busy_journal_switch_is_tried_again_later_without_holding_back_later_versions() {
        let sql = BusyJournal {
            inner: SqliteSql::new(),
            left: std::cell::Cell::new(2),
        };
        for _ in 0..2 {
            migrate(&sql).unwrap();
            assert_eq!(
                user_version(&sql).unwrap(),
                7,
                "v8 not done, so not recorded"
            );
            sql.execute("SELECT created_via FROM api_keys", &[])
                .expect("v9's column is there");
            sql.execute("SELECT auth FROM key_deletions", &[])
                .expect("v9's column is there");
            assert!(names(&sql.inner, "index").contains(&"audit_by_user_nocase".to_owned()));
        }
        let triggers = names(&sql.inner, "trigger");
        migrate(&sql).unwrap();
        assert_eq!(user_version(&sql).unwrap(), SCHEMA_VERSION);
        assert_eq!(names(&sql.inner, "trigger"), triggers);
    }

    /// Writes of a keygate at v8, as it sends them.
    fn v8_create(sql: &dyn Sql, id: &str) {
        let inserted = sql
            .execute(
                "INSERT INTO api_keys (id, name, name_folded, description, key_hash, hint, \
                 created_by, created_at, expires_at) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? \
                 WHERE NOT EXISTS (SELECT 1 FROM removed_users WHERE user_id = ?) RETURNING id",
                &[
                    SqlValue::text(id),
                    SqlValue::text(id),
                    SqlValue::text(id),
                    SqlValue::Null,
                    SqlValue::text(format!("hash-{id}")),
                    SqlValue::text("kg_…abcd"),
                    SqlValue::text("old@example.com"),
                    SqlValue::Integer(1),
                    SqlValue::Null,
                    SqlValue::text("old@example.com"),
                ],
            )
            .unwrap();
        assert_eq!(inserted.rows.len(), 1);
    }

    fn v8_delete(sql: &dyn Sql, id: &str) {
        let deleted = sql
            .execute(
                "INSERT INTO key_deletions (at, deleted_by, key_id, key_name) \
                 SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = ?) RETURNING id",
                &[
                    SqlValue::Integer(2),
                    SqlValue::text("old@example.com"),
                    SqlValue::text(id),
                    SqlValue::text(id),
                    SqlValue::text(id),
                ],
            )
            .unwrap();
        assert_eq!(deleted.rows.len(), 1);
    }

    /// Writes of a keygate at v9 (only once v9 is recorded).
    fn v9_create(sql: &dyn Sql, id: &str) {
        sql.execute(
            "INSERT INTO api_keys (id, name, name_folded, key_hash, hint, created_by, \
             created_at, created_via) VALUES (?, ?, ?, ?, 'kg_…abcd', 'new@example.com', 3, 'oidc')",
            &[
                SqlValue::text(id),
                SqlValue::text(id),
                SqlValue::text(id),
                SqlValue::text(format!("hash-{id}")),
            ],
        )
        .unwrap();
    }

    fn v9_delete(sql: &dyn Sql, id: &str) {
        sql.execute(
            "INSERT INTO key_deletions (at, deleted_by, key_id, key_name, auth) \
             VALUES (4, 'new@example.com', ?, ?, 'admin_token')",
            &[SqlValue::text(id), SqlValue::text(id)],
        )
        .unwrap();
    }

    /// Every key created has exactly one `key.created`, every key deleted
    /// exactly one `key.deleted`; v8's writes with `{}`, v9's with `auth`.
    #[track_caller]
    fn assert_audited_once(sql: &SqliteSql, created: &[String], deleted: &[String], at: &str) {
        let entries = sql
            .execute(
                "SELECT action, key_id, details FROM audit_log \
                 WHERE action IN ('key.created', 'key.deleted') ORDER BY id",
                &[],
            )
            .unwrap();
        let mut seen: Vec<(String, String)> = Vec::new();
        for row in entries.iter() {
            let (action, key, details) = (
                row.text(0).unwrap(),
                row.text(1).unwrap(),
                row.text(2).unwrap(),
            );
            let expected = match (action.as_str(), key.starts_with("new")) {
                (_, false) => "{}",
                ("key.created", true) => r#"{"auth":"oidc"}"#,
                _ => r#"{"auth":"admin_token"}"#,
            };
            assert_eq!(details, expected, "{at}: {action} {key}");
            seen.push((action, key));
        }
        let mut expected: Vec<(String, String)> = created
            .iter()
            .map(|k| ("key.created".to_owned(), k.clone()))
            .chain(
                deleted
                    .iter()
                    .map(|k| ("key.deleted".to_owned(), k.clone())),
            )
            .collect();
        seen.sort();
        expected.sort();
        assert_eq!(seen, expected, "{at}");
    }

    /// The v9 migration interrupted after each of its statements (a v8
    /// instance creating and deleting keys between any two), a second
    /// instance then running all of v9 and writing the v9 way, and the
    /// first finishing its run: no creation or deletion is ever left without
    /// its entry, and none gets two.
    #[test]
    fn during_the_v9_migration_every_creation_and_deletion_is_audited_exactly_once() {
        for interrupted_after in 0..=V9.len() {
            let sql = SqliteSql::new();
            migrate_between(&sql, 0, 8).unwrap();
            let (mut created, mut deleted) = (Vec::new(), Vec::new());
            let mut n = 0;
            let mut write = |sql: &SqliteSql, v9: bool, at: &str| {
                n += 1;
                let (keep, doomed) = if v9 {
                    (format!("new-{n}-kept"), format!("new-{n}-deleted"))
                } else {
                    (format!("old-{n}-kept"), format!("old-{n}-deleted"))
                };
                for id in [&keep, &doomed] {
                    if v9 {
                        v9_create(sql, id)
                    } else {
                        v8_create(sql, id)
                    }
                    created.push(id.clone());
                }
                if v9 {
                    v9_delete(sql, &doomed)
                } else {
                    v8_delete(sql, &doomed)
                }
                deleted.push(doomed);
                assert_audited_once(sql, &created, &deleted, at);
            };
            write(&sql, false, "at v8");
            for (i, statement) in V9[..interrupted_after].iter().enumerate() {
                assert!(apply(&sql, statement).unwrap());
                write(&sql, false, &format!("first instance, after statement {i}"));
            }
            // A second instance finds v8 recorded and runs all of v9.
            for (i, statement) in V9.iter().enumerate() {
                assert!(apply(&sql, statement).unwrap());
                write(
                    &sql,
                    false,
                    &format!("second instance, after statement {i}"),
                );
            }
            migrate_between(&sql, 8, 9).unwrap();
            assert_eq!(user_version(&sql).unwrap(), 9);
            write(&sql, true, "v9 recorded");
            // The first instance carries on where it was interrupted.
            for (i, statement) in V9.iter().enumerate().skip(interrupted_after) {
                assert!(apply(&sql, statement).unwrap());
                let at = format!("first instance again, after statement {i}");
                write(&sql, false, &at);
                write(&sql, true, &at);
            }
            let mut after = names(&sql, "trigger");
            after.sort();
            let fresh = SqliteSql::new();
            migrate_between(&fresh, 0, 9).unwrap();
            assert_eq!(after, names(&fresh, "trigger"), "after {interrupted_after}");
            assert_eq!(names(&sql, "index"), names(&fresh, "index"));
        }
    }

    /// The v11 migration interrupted after each of its statements, an
    /// instance still at v10 creating keys (without an owner) and revoking
    /// them between any two, a second instance then running all of v11, and
    /// the first finishing: every revocation has exactly one `key.revoked`
    /// entry, every key ends up owned by its creator, and the schema is a
    /// fresh v11's.
    #[test]
    fn during_the_v11_migration_every_revocation_is_audited_once_and_every_key_gets_its_owner() {
        let revocations = |sql: &SqliteSql| -> Vec<String> {
            sql.execute(
                "SELECT key_id FROM audit_log WHERE action = 'key.revoked' ORDER BY key_id",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.text(0).unwrap())
            .collect()
        };
        for interrupted_after in 0..=V11.len() {
            let sql = SqliteSql::new();
            migrate_between(&sql, 0, 10).unwrap();
            let mut revoked = Vec::new();
            let mut n = 0;
            let mut write = |sql: &SqliteSql, at: &str| {
                n += 1;
                let (kept, doomed) = (format!("k-{n}-kept"), format!("k-{n}-revoked"));
                v9_create(sql, &kept);
                v9_create(sql, &doomed);
                sql.execute(
                    "UPDATE api_keys SET revoked_at = 5, revoked_reason = 'owner_removed' \
                     WHERE id = ? AND revoked_at IS NULL",
                    &[SqlValue::text(&doomed)],
                )
                .unwrap();
                revoked.push(doomed);
                revoked.sort();
                assert_eq!(revocations(sql), revoked, "{at}");
                let created = sql
                    .execute(
                        "SELECT count(DISTINCT key_id), count(*) FROM audit_log \
                         WHERE action = 'key.created'",
                        &[],
                    )
                    .unwrap();
                let row = created.first().unwrap();
                assert_eq!(row.int(0).unwrap(), 2 * n, "{at}: every creation audited");
                assert_eq!(row.int(1).unwrap(), 2 * n, "{at}: and once");
            };
            write(&sql, "at v10");
            for (i, statement) in V11[..interrupted_after].iter().enumerate() {
                assert!(apply(&sql, statement).unwrap());
                write(&sql, &format!("first instance, after statement {i}"));
            }
            for (i, statement) in V11.iter().enumerate() {
                assert!(apply(&sql, statement).unwrap());
                write(&sql, &format!("second instance, after statement {i}"));
            }
            migrate_between(&sql, 10, 11).unwrap();
            for (i, statement) in V11.iter().enumerate().skip(interrupted_after) {
                assert!(apply(&sql, statement).unwrap());
                write(&sql, &format!("first instance again, after statement {i}"));
            }
            let unowned = sql
                .execute(
                    "SELECT count(*) FROM api_keys WHERE owner IS NOT created_by",
                    &[],
                )
                .unwrap()
                .scalar_int()
                .unwrap();
            assert_eq!(unowned, 0, "after {interrupted_after}");
            let fresh = SqliteSql::new();
            migrate_between(&fresh, 0, 11).unwrap();
            assert_eq!(names(&sql, "trigger"), names(&fresh, "trigger"));
            assert_eq!(names(&sql, "index"), names(&fresh, "index"));
        }
    }

    /// Records every statement it runs.
    struct Recorded<'a>(&'a SqliteSql, std::cell::RefCell<Vec<String>>);

    impl Sql for Recorded<'_> {
        fn execute(
            &self,
            sql: &str,
            params: &[SqlValue],
        ) -> Result<crate::store::Rows, StoreError> {
            self.1.borrow_mut().push(sql.to_owned());
            self.0.execute(sql, params)
        }
    }

    /// An instance that read version 0 while another migrated the fresh
    /// database all the way: running everything again creates no trigger or
    /// index that the current schema does not have, so no moment exists with
    /// an old `key.created`/`key.revoked` trigger beside its replacement
    /// (except within one version's own guard).
    #[test]
    fn migrating_a_fresh_database_never_creates_what_a_later_version_drops() {
        let sql = SqliteSql::new();
        migrate(&sql).unwrap();
        let (triggers, indexes) = (names(&sql, "trigger"), names(&sql, "index"));
        let behind = Recorded(&sql, Default::default());
        migrate_between(&behind, 0, SCHEMA_VERSION).unwrap();
        let guards = [
            "audit_key_created_or_deleted_once_while_migrating",
            "audit_key_revoked_once_while_migrating",
        ];
        for statement in behind.1.borrow().iter() {
            let Some(name) = statement
                .strip_prefix("CREATE TRIGGER IF NOT EXISTS ")
                .or_else(|| statement.strip_prefix("CREATE INDEX IF NOT EXISTS "))
                .or_else(|| statement.strip_prefix("CREATE UNIQUE INDEX IF NOT EXISTS "))
                .and_then(|rest| rest.split_whitespace().next())
            else {
                continue;
            };
            let kept = triggers.iter().chain(&indexes).any(|n| n == name);
            assert!(
                kept || guards.contains(&name),
                "{name} is created, then dropped later"
            );
        }
        assert_eq!(names(&sql, "trigger"), triggers);
        assert_eq!(names(&sql, "index"), indexes);
    }

    /// An instance still at schema v6 during a rolling upgrade deletes by
    /// inserting `key.deleted` into the trail and counts on a trigger v7
    /// dropped: its delete must fail, not answer as if the key were gone.
    #[test]
    fn a_delete_the_way_schema_6_did_it_fails_instead_of_leaving_the_key() {
        let sql = SqliteSql::new();
        migrate(&sql).unwrap();
        sql.execute(
            "INSERT INTO api_keys (id, name, name_folded, key_hash, hint, created_by, created_at) \
             VALUES ('key_a', 'a', 'a', 'h', 'kg_…', 'u', 1)",
            &[],
        )
        .unwrap();
        let old_delete = sql.execute(
            "INSERT INTO audit_log (at, user, action, key_id, key_name, details) \
             SELECT 2, 'u', 'key.deleted', 'key_a', 'a', '{}' \
             WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = 'key_a') RETURNING id",
            &[],
        );
        assert!(old_delete.is_err());
        let left = sql
            .execute("SELECT count(*) FROM api_keys", &[])
            .unwrap()
            .scalar_int()
            .unwrap();
        assert_eq!(left, 1);
        let entries = sql
            .execute(
                "SELECT count(*) FROM audit_log WHERE action = 'key.deleted'",
                &[],
            )
            .unwrap()
            .scalar_int()
            .unwrap();
        assert_eq!(entries, 0);
    }

    #[test]
    fn every_overview_sort_and_audit_filter_uses_an_index() {
        let sql = SqliteSql::new();
        migrate(&sql).unwrap();
        let plan = |q: &str| -> String {
            let rows = sql
                .execute(&format!("EXPLAIN QUERY PLAN {q}"), &[])
                .unwrap();
            rows.rows
                .iter()
                .map(|r| format!("{:?}", r.last().unwrap()))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        for (query, index) in [
            (
                "SELECT id FROM api_keys ORDER BY name_folded DESC, id DESC LIMIT 25",
                "api_keys_by_name",
            ),
            (
                "SELECT id FROM api_keys ORDER BY created_by COLLATE NOCASE ASC, id ASC LIMIT 25",
                "api_keys_by_owner_nocase",
            ),
            (
                "SELECT id FROM api_keys ORDER BY created_at DESC, id DESC LIMIT 25",
                "api_keys_by_created_at",
            ),
            (
                "SELECT id FROM api_keys ORDER BY last_used_at ASC, id ASC LIMIT 25",
                "api_keys_by_last_used_at",
            ),
            (
                "SELECT id FROM api_keys WHERE created_by COLLATE NOCASE = 'U' ORDER BY id",
                "api_keys_by_owner_nocase",
            ),
            (
                "SELECT id FROM api_keys WHERE created_by COLLATE NOCASE = 'U' \
                 ORDER BY created_at DESC, id DESC LIMIT 25",
                "api_keys_by_owner_created_at_nocase",
            ),
            (
                "SELECT id FROM audit_log ORDER BY at DESC, id DESC LIMIT 25",
                "audit_by_time",
            ),
            (
                "SELECT id FROM audit_log WHERE user COLLATE NOCASE = 'U' \
                 ORDER BY at DESC, id DESC LIMIT 25",
                "audit_by_user_nocase",
            ),
            (
                "SELECT id FROM audit_log WHERE key_id = 'k' ORDER BY at DESC, id DESC LIMIT 25",
                "audit_by_key",
            ),
            (
                "SELECT id FROM audit_log WHERE action = 'key.used' ORDER BY at DESC, id DESC LIMIT 25",
                "audit_by_action",
            ),
            (
                "SELECT count(*) FROM audit_log \
                 WHERE user COLLATE NOCASE = 'U' AND action = 'key.revoked'",
                "audit_revocations_by_user_nocase",
            ),
            (
                "SELECT user_id FROM removed_users WHERE user_id COLLATE NOCASE = 'U' \
                 ORDER BY rowid LIMIT 1",
                "removed_users_by_user_nocase",
            ),
            (
                "SELECT sum(total) FROM key_counts WHERE created_by COLLATE NOCASE = 'U'",
                "key_counts_by_owner_nocase",
            ),
        ] {
            let plan = plan(query);
            assert!(plan.contains(index), "{query}: {plan}");
            assert!(
                !plan.contains("TEMP B-TREE"),
                "{query} sorts without the index: {plan}"
            );
        }
    }
}
