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
//! The two stores cannot share a transaction (and Spin hands SQLite one
//! statement per call), so each operation changes what callers can see in
//! ONE SQL statement, with its audit entry in the same statement (by a
//! trigger), and keeps the KV index around it such that a failure or a crash
//! between any two calls leaves nothing a caller could exploit or see half
//! done, and a retry finishes the job. `docs/reliability.md` shows this
//! holding with a failure and a crash injected at every storage call.
//!
//! - **Verify** reads the KV entry (unknown, revoked and expired keys, and a
//!   rolled key's previous secret past its grace, are refused there) and then
//!   writes `key.used` only while the key's SQL row exists, is not revoked or
//!   expired, and names the presented secret as its own (or as its previous
//!   one, within the grace); the entry's user and key name come from the row
//!   (its owner now), and a trigger sets `last_used_at` in the same
//!   statement. So a key verifies only while the overview shows it as active,
//!   whatever the KV index says, and no `key.used` follows `key.deleted` or
//!   `key.revoked`. No other SQL, and no SQL read, on the success path.
//! - **Create**: KV entry first (it verifies nothing until the row exists),
//!   then the row, inserted only if the user is not in `removed_users`, its
//!   unique index deciding `name_taken` race-free and a trigger writing
//!   `key.created`. If the insert fails or inserts nothing, the entry is
//!   removed again (best effort: a leftover verifies nothing, and its secret
//!   was never shown). A crash after the insert loses only the response: the
//!   key exists and is audited, its secret is gone, and a retry hears
//!   `name_taken` (the contract has no idempotency key for create).
//! - **Delete**: one statement records the deletion if the row still exists,
//!   and its trigger removes the row and writes `key.deleted`: the key leaves the overview and stops
//!   verifying at once, with exactly one entry (of two racing deletes the
//!   second hears `key_not_found`). Then the KV entry is removed; if that
//!   fails the deletion still happened and the leftover verifies nothing.
//! - **User removed**: `removed_users` first (the user can no longer act or
//!   create keys), then per key `revoked_at` in SQL, whose trigger writes
//!   `key.revoked` in the same statement (the key is refused from then on),
//!   then the KV entry marked revoked (refused without SQL). Keys already
//!   revoked are not revoked again on a retry, only marked in KV again, so no
//!   entry is written twice; `user.removed` is unique per user; the response
//!   is stored per `webhook-id` last, so a delivery that failed part-way is
//!   redone, never answered from a half state.
//! - **Transfer, edit, roll** (schema v11) are each one insert into a journal
//!   table (`key_transfers`, `key_updates`, `key_rolls`) guarded by the key's
//!   state, whose trigger changes the key and writes its audit entry. Since
//!   verify takes the owner from the row, a transfer is that one statement: a
//!   key never acts as two owners. A removal's revocation of each key checks
//!   the owner again, so a key moved away since the removal's scan is left to
//!   its new owner. A roll writes the new secret's KV entry
//!   first (it verifies nothing until the row names its hash), then the
//!   statement, compare-and-swap on the current hash (of two rolls one wins),
//!   then the old entries; an edit writes SQL, then the entries. The KV
//!   writes after the statement can only be behind in refusing, which SQL
//!   does anyway.
//! - **Service account deleted**: as a user's removal — the account marked
//!   deleted first (no key can be created for or moved to it afterwards: the
//!   inserts read it), then its keys revoked (`owner_deleted`) and marked in
//!   KV; a retry finishes the revocations.
//! - **A create racing the removal of its user**: after the webhook's `200`
//!   no key of that user verifies, including keys whose create raced it.
//!   The create's insert reads `removed_users` in the same statement, so
//!   either the removal committed first (nothing is inserted: `403
//!   user_removed`) or the insert did (the removal's scan, which comes after
//!   its own `removed_users` write, finds the row and revokes it).

//! # Choices where the contract is silent
//!
//! - Unknown, repeated or empty query parameters are `invalid_query`, naming
//!   the parameter; a typo must not silently widen a list.
//! - Names are unique case-insensitively with full Unicode lower-casing.
//! - Verify records paths without their query string.
//! - Missing webhook signature headers are `invalid_signature` ([`webhook`]);
//!   its body is as strict as every other (unknown fields: `invalid_request`).

pub mod auth;
pub mod channels;
pub mod error;
pub mod key;
pub mod model;
pub mod oidc;
pub mod okta;
pub mod retry;
pub mod schema;
pub mod scim;
pub mod service;
pub mod ssf;
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
    NewKey, Page, RemovalChannel, SignIn, SortField, SortOrder, UserRemovedResponse, Verified,
    VerifyContext,
};
pub use service::KeyService;
pub use store::{KeyValue, Rows, Sql, SqlValue, StoreError};
