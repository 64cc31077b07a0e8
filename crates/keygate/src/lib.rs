//! keygate's domain: everything about API keys that is not Spin.
//!
//! The three Spin components (key management, verify, the user-removed
//! webhook) are thin wrappers: they read the HTTP request, call into this
//! crate, and write the response or the [`Problem`]. Storage is reached
//! through two small traits, [`KeyValue`] and [`Sql`], shaped like Spin's
//! key-value store and `sqlite3` connection, so this crate is tested natively
//! and the components' implementations are one-line mappings.
//!
//! # Where things live
//!
//! - The key-value store holds the verify path's index: one entry per key
//!   under `key:<sha256 hex of the key>`, with the key id, owner, name,
//!   expiry and revoked flag. Verify reads this and nothing else.
//! - SQLite holds the overview (`api_keys`), the audit trail (`audit_log`),
//!   removed users and webhook deliveries ([`schema`]). The schema is created
//!   on first use.
//! - Only SHA-256 of a key is stored; the key itself exists once, in the
//!   create response ([`CreatedKey`]). [`ApiKey`]'s `Debug`/`Display` show
//!   the hint only, and no error or audit entry contains a secret.
//!
//! # Write order, and why
//!
//! The two stores cannot share a transaction, so each operation orders its
//! writes such that a failure between any two of them leaves nothing a
//! caller could exploit, and a retry finishes the job:
//!
//! - **Create**: SQL row first — its unique index on the folded name decides
//!   `name_taken`, race-free. Then the KV entry (the key verifies from here).
//!   Then `key.created`. If anything after the row fails, the KV entry and
//!   the row are removed again and the caller gets the error; the secret was
//!   never shown, so a leftover from a failed undo is unusable. After the KV
//!   write `removed_users` is read once more, closing the race with a
//!   webhook that removed the user meanwhile.
//! - **Delete**: KV entry first, so the key stops verifying before anything
//!   else (a failure later leaves a key that is still listed but never
//!   verifies). Then `key.deleted` (at most one per key id), then the SQL
//!   row. Repeating the call completes a deletion that failed part-way.
//! - **Verify**: no write but the `key.used` audit insert; a trigger sets
//!   `last_used_at` in the same statement. No SQL read at all.
//! - **User removed**: `removed_users` first (the user can no longer act),
//!   then per key the KV entry marked revoked FIRST — from that moment the
//!   key fails verify — and then `revoked_at` in SQL, whose trigger writes
//!   `key.revoked` in the same statement. Keys already revoked in SQL are
//!   skipped on a retry, so no entry is written twice; `user.removed` is
//!   unique per user; the response is stored per `webhook-id` last, so a
//!   delivery that failed part-way is redone, never answered from a half
//!   state.
//!
//! # Choices where the contract is silent
//!
//! - Unknown, repeated or empty query parameters are `invalid_query`, naming
//!   the parameter; a typo must not silently widen a list.
//! - Names are unique case-insensitively with full Unicode lower-casing.
//! - Verify records paths without their query string.
//! - Missing webhook signature headers are `invalid_signature` ([`webhook`]);
//!   its body is as strict as every other (unknown fields: `invalid_request`).

pub mod auth;
pub mod error;
pub mod key;
pub mod model;
pub mod schema;
pub mod service;
pub mod store;
pub mod timestamp;
pub mod validate;
pub mod verify;
pub mod webhook;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{Error, FieldError, Problem};
pub use key::{ApiKey, KeyHash, MalformedKey};
pub use model::{
    ActingUser, AuditAction, AuditEntry, AuditQuery, CreatedKey, KeyStatus, KeyView, ListQuery,
    NewKey, Page, SortField, SortOrder, UserRemovedResponse, Verified, VerifyContext,
};
pub use service::KeyService;
pub use store::{KeyValue, Rows, Sql, SqlValue, StoreError};
