//! The operations behind the HTTP routes. See the crate documentation for
//! the order of writes and why.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::Error;
use crate::key::{ApiKey, KeyHash, is_key_id, new_key_id};
use crate::model::{
    ActingUser, AuditAction, AuditEntry, AuditQuery, CreatedKey, KeyStatus, KeyView, ListQuery,
    NewKey, Owner, Page, SortField, Verified, VerifyContext,
};
use crate::retry::{self, Repeatable};
use crate::schema;
use crate::store::{KeyValue, Row, Rows, Sql, SqlValue, StoreError};
use crate::validate::fold_name;

/// The verify index entry, stored as JSON under `key:<sha256 hex>`:
/// everything verify decides on; the only SQL it touches is its `key.used` insert.
#[derive(Debug, Serialize, Deserialize)]
struct IndexEntry {
    key_id: String,
    owner: String,
    name: String,
    expires_at: Option<i64>,
    revoked: bool,
    /// A rolled key's previous secret: verifies until then (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    valid_until: Option<i64>,
}

/// The revocation reason when the identity system removes the owner.
pub const OWNER_REMOVED: &str = "owner_removed";

const KEY_COLUMNS: &str = "id, name, description, created_by, created_at, last_used_at, \
                           expires_at, revoked_at, revoked_reason, hint, \
                           coalesce(owner, created_by)";

const INSERT_AUDIT: &str = "INSERT INTO audit_log (at, user, action, key_id, key_name, details) \
                            VALUES (?, ?, ?, ?, ?, ?)";

/// Verify's one statement: `key.used` as the key's owner, only while the
/// key's row exists, is not revoked or expired, and the presented secret is
/// its secret or its previous one within the grace (schema v11). Parameters:
/// now, details, key id, now, hash, hash, now.
const INSERT_KEY_USED: &str = "INSERT INTO audit_log (at, user, action, key_id, key_name, details) \
     SELECT ?, coalesce(owner, created_by), 'key.used', id, name, ? FROM api_keys \
     WHERE id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) \
     AND (key_hash = ? OR (previous_key_hash = ? AND previous_valid_until > ?)) \
     RETURNING user, key_name";

/// How often a statement that meets a schema older than its own is run
/// again after migrating. Once was enough at schema v10; with v11's longer
/// migration, real Spin still answered "no such table" to 1–3 of 16 creates
/// racing on an empty database after one try.
const MISSING_SCHEMA_TRIES: usize = 3;

/// keygate's operations over a key-value store and a SQLite database.
/// `now` (Unix seconds) is a parameter everywhere so tests own the clock.
#[derive(Clone, Copy)]
pub struct KeyService<'a> {
    kv: &'a dyn KeyValue,
    sql: &'a dyn Sql,
}

impl<'a> KeyService<'a> {
    pub fn new(kv: &'a dyn KeyValue, sql: &'a dyn Sql) -> Self {
        Self { kv, sql }
    }

    /// Brings the database schema up to date. Every operation does this
    /// itself (verify only when its insert finds no table); exposed for tools.
    pub fn migrate(&self) -> Result<(), Error> {
        Ok(schema::migrate(self.sql)?)
    }

    /// `POST /api/keys`. Write order: the KV index entry, then one SQL
    /// statement that inserts the row only if the user is not removed (the
    /// unique index decides `name_taken`, also under races) and, by a
    /// trigger, writes `key.created`. The key exists from that statement on,
    /// all at once; before it, the entry verifies nothing (verify needs the
    /// row). If the statement does not insert, the entry is removed again.
    /// The row records how the user signed in (`created_via`), which the
    /// trigger writes as the entry's `details.auth`.
    pub fn create_key(
        &self,
        user: &ActingUser,
        new: NewKey,
        now: i64,
    ) -> Result<CreatedKey, Error> {
        self.authorize(user)?;
        let owner = new
            .owner
            .unwrap_or_else(|| Owner::User(user.as_str().to_owned()));
        let secret = ApiKey::generate()?;
        let hash = secret.hash();
        let key = KeyView {
            id: new_key_id()?,
            name: new.name,
            description: new.description,
            created_by: user.as_str().to_owned(),
            owner: owner.as_str().to_owned(),
            created_at: now,
            last_used_at: None,
            expires_at: new.expires_at,
            status: KeyStatus::at(None, new.expires_at, now),
            revoked_at: None,
            revoked_reason: None,
            hint: secret.hint(),
        };
        self.put_entry(
            &hash,
            &IndexEntry {
                key_id: key.id.clone(),
                owner: key.owner.clone(),
                name: key.name.clone(),
                expires_at: key.expires_at,
                revoked: false,
                valid_until: None,
            },
        )?;
        // `removed_users` (and for a service account, `service_accounts`) is
        // read in the insert itself: a removal of the acting user or the
        // owner (in any spelling) since `authorize` either committed first
        // (nothing is inserted) or scans for the owner's keys after this row
        // exists.
        let inserted = self.execute(
            &format!(
                "INSERT INTO api_keys (id, name, name_folded, description, key_hash, hint, \
                 created_by, created_at, expires_at, created_via, owner) \
                 SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS \
                 (SELECT 1 FROM removed_users WHERE user_id COLLATE NOCASE = ?) AND {} \
                 RETURNING id",
                owner_may_own(&owner)
            ),
            &[
                SqlValue::text(&key.id),
                SqlValue::text(&key.name),
                SqlValue::text(fold_name(&key.name)),
                SqlValue::opt_text(key.description.as_deref()),
                SqlValue::text(hash.to_hex()),
                SqlValue::text(&key.hint),
                SqlValue::text(&key.created_by),
                SqlValue::Integer(now),
                SqlValue::opt_int(key.expires_at),
                SqlValue::text(user.signed_in_with().as_str()),
                SqlValue::text(&key.owner),
                SqlValue::text(&key.created_by),
                SqlValue::text(&key.owner),
            ],
        );
        let error = match inserted {
            Ok(rows) if !rows.rows.is_empty() => {
                if !key.owner.eq_ignore_ascii_case(&key.created_by) {
                    // For whom, in the entry that outlives the key. Best
                    // effort after the fact: the key exists and is audited,
                    // and a 503 now would only make the retry hear `name_taken`.
                    let _ = self.execute(
                        "UPDATE audit_log SET details = json_set(details, '$.owner', ?) \
                         WHERE key_id = ? AND action = 'key.created'",
                        &[SqlValue::text(&key.owner), SqlValue::text(&key.id)],
                    );
                }
                return Ok(CreatedKey { key, secret });
            }
            Ok(_) => match self.authorize(user) {
                Err(e) => e,
                Ok(()) => owner_refused(&owner),
            },
            Err(e) if e.is_name_taken() => Error::NameTaken,
            Err(e) => Error::Storage(e),
        };
        // Best effort: without its row the entry verifies nothing, and the
        // secret was never shown.
        let _ = self.kv.delete(&hash.kv_key());
        Err(error)
    }

    /// `GET /api/keys/{id}`.
    pub fn get_key(&self, user: &ActingUser, id: &str, now: i64) -> Result<KeyView, Error> {
        self.authorize(user)?;
        self.read_key(id, now)
    }

    /// The key as it is, for an operation that has authorized its caller
    /// already (each `authorize` is a statement, a round trip on libSQL).
    fn read_key(&self, id: &str, now: i64) -> Result<KeyView, Error> {
        if !is_key_id(id) {
            return Err(Error::KeyNotFound);
        }
        let rows = self.execute(
            &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?"),
            &[SqlValue::text(id)],
        )?;
        let row = rows.first().ok_or(Error::KeyNotFound)?;
        Ok(key_view(&row, now)?)
    }

    /// `GET /api/keys`.
    pub fn list_keys(
        &self,
        user: &ActingUser,
        query: &ListQuery,
        now: i64,
    ) -> Result<Page<KeyView>, Error> {
        self.authorize(user)?;
        let name_index = match &query.name {
            Some(name) => self.name_index_narrows(&fold_name(name))?,
            None => false,
        };
        let (filter, mut params) = list_filter(query, now, name_index);
        let total = match counted_total(query, now) {
            Some((sql, count_params)) => self.execute(&sql, &count_params)?,
            None => self.execute(&format!("SELECT count(*) FROM api_keys{filter}"), &params)?,
        }
        .scalar_int()?;
        let order = query.order.sql();
        params.extend(page_params(query.page, query.per_page));
        let rows = self.execute(
            &format!(
                "SELECT {KEY_COLUMNS} FROM api_keys{filter} ORDER BY {col} {order}, id {order} \
                 LIMIT ? OFFSET ?",
                col = sort_column(query.sort)
            ),
            &params,
        )?;
        let items = rows
            .iter()
            .map(|r| key_view(&r, now))
            .collect::<Result<_, _>>()?;
        Ok(Page::new(
            items,
            query.page,
            query.per_page,
            total.max(0) as u64,
        ))
    }

    /// Whether the trigram index narrows a name filter: only for needles of
    /// three or more characters (shorter ones have no trigram), and only when
    /// it finds fewer than [`NAME_INDEX_MAX_CANDIDATES`] keys. A needle most
    /// names contain is cheaper to check name by name than to look up key by
    /// key (100,000 matches: 10 ms against 70 ms).
    fn name_index_narrows(&self, needle: &str) -> Result<bool, Error> {
        if needle.chars().count() < 3 {
            return Ok(false);
        }
        let candidates = self
            .execute(
                "SELECT count(*) FROM (SELECT 1 FROM api_keys_name_search \
                 WHERE api_keys_name_search MATCH ? LIMIT ?)",
                &[
                    SqlValue::text(fts_phrase(needle)),
                    SqlValue::Integer(NAME_INDEX_MAX_CANDIDATES),
                ],
            )?
            .scalar_int()?;
        Ok(candidates < NAME_INDEX_MAX_CANDIDATES)
    }

    /// `DELETE /api/keys/{id}`. One SQL statement records the deletion in
    /// `key_deletions` if the row still exists, and its trigger removes the
    /// row and writes `key.deleted` with how the user signed in as
    /// `details.auth` (schemas v7, v9): from then
    /// on the key is gone from the overview and no longer verifies (verify
    /// needs the row), all at once, with exactly one audit entry. Then the
    /// KV entry is removed; if that fails the deletion still happened, and
    /// the leftover entry verifies nothing.
    pub fn delete_key(&self, user: &ActingUser, id: &str, now: i64) -> Result<(), Error> {
        self.authorize(user)?;
        if !is_key_id(id) {
            return Err(Error::KeyNotFound);
        }
        let rows = self.execute(
            "SELECT name, key_hash, previous_key_hash FROM api_keys WHERE id = ?",
            &[SqlValue::text(id)],
        )?;
        let row = rows.first().ok_or(Error::KeyNotFound)?;
        let (name, hash, previous) = (row.text(0)?, row.text(1)?, row.opt_text(2)?);
        let deleted = self.execute(
            "INSERT INTO key_deletions (at, deleted_by, key_id, key_name, auth) \
             SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = ?) RETURNING id",
            &[
                SqlValue::Integer(now),
                SqlValue::text(user.as_str()),
                SqlValue::text(id),
                SqlValue::text(name),
                SqlValue::text(user.signed_in_with().as_str()),
                SqlValue::text(id),
            ],
        )?;
        if deleted.rows.is_empty() {
            // Another request deleted it in between, and audited it.
            return Err(Error::KeyNotFound);
        }
        for hash in std::iter::once(hash).chain(previous) {
            let _ = self.kv.delete(&format!("key:{hash}"));
        }
        Ok(())
    }

    /// `GET /api/audit`: newest first.
    pub fn list_audit(
        &self,
        user: &ActingUser,
        query: &AuditQuery,
    ) -> Result<Page<AuditEntry>, Error> {
        self.authorize(user)?;
        let (filter, mut params) = audit_filter(query);
        let total = self
            .execute(&format!("SELECT count(*) FROM audit_log{filter}"), &params)?
            .scalar_int()?;
        params.extend(page_params(query.page, query.per_page));
        let rows = self.execute(
            &format!(
                "SELECT id, at, user, action, key_id, key_name, details FROM audit_log{filter} \
                 ORDER BY at DESC, id DESC LIMIT ? OFFSET ?"
            ),
            &params,
        )?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.int(0)?,
                    at: r.int(1)?,
                    user: r.text(2)?,
                    action: r.text(3)?,
                    key_id: r.opt_text(4)?,
                    key_name: r.opt_text(5)?,
                    details: serde_json::from_str(&r.text(6)?).unwrap_or_else(|_| json!({})),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Page::new(
            items,
            query.page,
            query.per_page,
            total.max(0) as u64,
        ))
    }

    /// `/api/verify`. A malformed key is refused without touching storage;
    /// otherwise one KV read finds the key and refuses unknown, revoked and
    /// expired ones, and a valid key costs one SQL write: the `key.used`
    /// insert, whose trigger sets `last_used_at`, after the connection
    /// setting [`schema::RECORD_USES_WITHOUT_FSYNC`]. That insert
    /// happens only while the key's row exists and is not revoked, so a
    /// verify racing a delete or a revocation (or finding an index entry a
    /// failed create or delete left behind) answers 401, and no `key.used`
    /// ever follows `key.deleted` or `key.revoked`. If the use cannot be
    /// recorded the key is not reported valid: every use must be audited.
    pub fn verify(
        &self,
        presented: Option<&str>,
        context: &VerifyContext,
        now: i64,
    ) -> Result<Verified, Error> {
        let presented = presented
            .filter(|k| !k.is_empty())
            .ok_or(Error::MissingKey)?;
        let key = ApiKey::parse(presented).map_err(Error::MalformedKey)?;
        let entry = self.get_entry(&key.hash())?.ok_or(Error::UnknownKey)?;
        if entry.revoked {
            return Err(Error::RevokedKey);
        }
        if KeyStatus::at(None, entry.expires_at, now) == KeyStatus::Expired {
            return Err(Error::ExpiredKey);
        }
        if entry.valid_until.is_some_and(|until| until <= now) {
            // A rolled key's previous secret past its grace.
            return Err(Error::UnknownKey);
        }
        let details = json!({
            "method": context.method,
            "path": context.path,
            "source_ip": context.source_ip,
        });
        let hash = key.hash().to_hex();
        let params = [
            SqlValue::Integer(now),
            SqlValue::text(details.to_string()),
            SqlValue::text(&entry.key_id),
            SqlValue::Integer(now),
            SqlValue::text(&hash),
            SqlValue::text(&hash),
            SqlValue::Integer(now),
        ];
        // Best effort: where the setting is refused (a libSQL server; Spin's
        // client refuses it itself, without a round trip) the connection
        // keeps SQLite's stricter default.
        let _ = self.sql.execute(schema::RECORD_USES_WITHOUT_FSYNC, &[]);
        let recorded = self.execute(INSERT_KEY_USED, &params)?;
        let Some(used) = recorded.first() else {
            // Deleted, revoked, expired or rolled since the entry was read
            // (or the entry is a leftover of a failed create, delete or
            // roll): say which.
            let row = self.execute(
                "SELECT revoked_at IS NOT NULL, expires_at IS NOT NULL AND expires_at <= ? \
                 FROM api_keys WHERE id = ?",
                &[SqlValue::Integer(now), SqlValue::text(&entry.key_id)],
            )?;
            return Err(match row.first() {
                Some(row) if row.int(0)? != 0 => Error::RevokedKey,
                Some(row) if row.int(1)? != 0 => Error::ExpiredKey,
                _ => Error::UnknownKey,
            });
        };
        let (owner, name) = (used.text(0)?, used.text(1)?);
        Ok(Verified {
            key_id: entry.key_id,
            key_name: name,
            user_id: owner,
            expires_at: entry.expires_at,
        })
    }
    /// Every management call: schema in place, acting user not removed.
    /// Every management call starts here: one statement reads the schema
    /// version (migrating when it is behind) and whether the acting user was
    /// removed, in any spelling. On a libSQL server each statement is a
    /// network round trip.
    fn authorize(&self, user: &ActingUser) -> Result<(), Error> {
        let row = self.execute(
            "SELECT (SELECT user_version FROM pragma_user_version), \
             EXISTS (SELECT 1 FROM removed_users WHERE user_id COLLATE NOCASE = ?)",
            &[SqlValue::text(user.as_str())],
        )?;
        let row = row.first().ok_or_else(|| StoreError::new("no row"))?;
        let version = row.int(0)?;
        if version < schema::SCHEMA_VERSION {
            schema::migrate_from(self.sql, version)?;
        }
        if row.int(1)? != 0 {
            return Err(Error::UserRemoved);
        }
        Ok(())
    }

    /// Runs one statement. "No such table" means this connection sees an
    /// older schema than the file has: a database nobody migrated yet, or
    /// one another request is migrating right now (on Spin, 5 of 96 creates
    /// racing on a fresh database failed so before this): migrate, bring the
    /// connection's copy of the schema up to date, and run it once more.
    ///
    /// A statement the database was too busy for, or lost the connection
    /// during, is run again as [`retry`] decides (writes only when busy).
    fn execute(&self, statement: &str, params: &[SqlValue]) -> Result<Rows, StoreError> {
        let run = || retry::execute(self.sql, statement, params, Repeatable::IfReadOnly);
        let mut result = run();
        for _ in 0..MISSING_SCHEMA_TRIES {
            match result {
                Err(e) if e.is_missing_schema() => {
                    schema::migrate(self.sql)?;
                    schema::reload(self.sql)?;
                    result = run();
                }
                other => return other,
            }
        }
        result
    }

    fn put_entry(&self, hash: &KeyHash, entry: &IndexEntry) -> Result<(), StoreError> {
        self.kv.set(&hash.kv_key(), &entry_bytes(entry))
    }

    fn get_entry(&self, hash: &KeyHash) -> Result<Option<IndexEntry>, StoreError> {
        self.kv
            .get(&hash.kv_key())?
            .map(|bytes| {
                // Fail closed: an entry that cannot be read verifies nothing.
                serde_json::from_slice(&bytes)
                    .map_err(|_| StoreError::new("unreadable key index entry"))
            })
            .transpose()
    }
}

fn entry_bytes(entry: &IndexEntry) -> Vec<u8> {
    serde_json::to_vec(entry).expect("serialisable")
}

fn audit_params(
    at: i64,
    user: &str,
    action: AuditAction,
    key: Option<(&str, &str)>,
    details: &serde_json::Value,
) -> [SqlValue; 6] {
    [
        SqlValue::Integer(at),
        SqlValue::text(user),
        SqlValue::text(action.as_str()),
        SqlValue::opt_text(key.map(|(id, _)| id)),
        SqlValue::opt_text(key.map(|(_, name)| name)),
        SqlValue::text(details.to_string()),
    ]
}

fn key_view(row: &Row<'_>, now: i64) -> Result<KeyView, StoreError> {
    let expires_at = row.opt_int(6)?;
    let revoked_at = row.opt_int(7)?;
    Ok(KeyView {
        id: row.text(0)?,
        name: row.text(1)?,
        description: row.opt_text(2)?,
        created_by: row.text(3)?,
        created_at: row.int(4)?,
        last_used_at: row.opt_int(5)?,
        expires_at,
        status: KeyStatus::at(revoked_at, expires_at, now),
        revoked_at,
        revoked_reason: row.opt_text(8)?,
        hint: row.text(9)?,
        owner: row.text(10)?,
    })
}

fn page_params(page: u32, per_page: u32) -> [SqlValue; 2] {
    let offset = i64::from(page.saturating_sub(1)) * i64::from(per_page);
    [
        SqlValue::Integer(i64::from(per_page)),
        SqlValue::Integer(offset),
    ]
}

/// ` WHERE …` (or nothing) and its parameters. Only fixed SQL fragments are
/// joined; every user-supplied value is a bound parameter.
/// With `name_index`, the name filter takes its candidates from the trigram
/// index; either way `instr` decides, so the answer is the same.
pub(crate) fn list_filter(q: &ListQuery, now: i64, name_index: bool) -> (String, Vec<SqlValue>) {
    let mut clauses: Vec<&str> = Vec::new();
    let mut params = Vec::new();
    if let Some(name) = &q.name {
        let needle = fold_name(name);
        if name_index {
            clauses.push(
                "rowid IN (SELECT rowid FROM api_keys_name_search \
                 WHERE api_keys_name_search MATCH ?)",
            );
            params.push(SqlValue::text(fts_phrase(&needle)));
        }
        clauses.push("instr(name_folded, ?) > 0");
        params.push(SqlValue::text(needle));
    }
    if let Some(user) = &q.created_by {
        clauses.push("created_by COLLATE NOCASE = ?");
        params.push(SqlValue::text(user));
    }
    if let Some(owner) = &q.owner {
        clauses.push("owner COLLATE NOCASE = ?");
        params.push(SqlValue::text(owner));
    }
    if let Some(from) = q.created_from {
        clauses.push("created_at >= ?");
        params.push(SqlValue::Integer(from));
    }
    if let Some(to) = q.created_to {
        clauses.push("created_at <= ?");
        params.push(SqlValue::Integer(to));
    }
    match q.status {
        Some(KeyStatus::Active) => {
            clauses.push("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)");
            params.push(SqlValue::Integer(now));
        }
        Some(KeyStatus::Expired) => {
            clauses.push("revoked_at IS NULL AND expires_at <= ?");
            params.push(SqlValue::Integer(now));
        }
        Some(KeyStatus::Revoked) => clauses.push("revoked_at IS NOT NULL"),
        None => {}
    }
    if let Some(since) = q.unused_since {
        clauses.push("(last_used_at IS NULL OR last_used_at < ?)");
        params.push(SqlValue::Integer(since));
    }
    (where_clause(&clauses), params)
}

pub(crate) const NAME_INDEX_MAX_CANDIDATES: i64 = 1_000;

/// `needle` as one FTS5 phrase: quoted, its own quotes doubled, so no
/// character of a name is read as query syntax.
fn fts_phrase(needle: &str) -> String {
    format!("\"{}\"", needle.replace('"', "\"\""))
}

/// The overview's `total` from `key_counts` (schema v2) when the query
/// filters at most by owner and status; `None` when it needs a `COUNT(*)`.
pub(crate) fn counted_total(q: &ListQuery, now: i64) -> Option<(String, Vec<SqlValue>)> {
    // `key_counts` counts by creator; an owner's keys are counted from the
    // NOCASE owner index instead.
    if q.name.is_some()
        || q.owner.is_some()
        || q.created_from.is_some()
        || q.created_to.is_some()
        || q.unused_since.is_some()
    {
        return None;
    }
    let (owner, mut params) = match &q.created_by {
        Some(user) => (
            " WHERE created_by COLLATE NOCASE = ?",
            vec![SqlValue::text(user)],
        ),
        None => ("", Vec::new()),
    };
    let sum = |column: &str| format!("SELECT coalesce(sum({column}), 0) FROM key_counts{owner}");
    let expired_owner = if q.created_by.is_some() {
        " AND created_by COLLATE NOCASE = ?"
    } else {
        ""
    };
    let expired = format!(
        "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL AND expires_at IS NOT NULL \
         AND expires_at <= ?{expired_owner}"
    );
    let sql = match q.status {
        None => sum("total"),
        Some(KeyStatus::Revoked) => sum("revoked"),
        Some(KeyStatus::Expired) => {
            params.insert(0, SqlValue::Integer(now));
            expired
        }
        Some(KeyStatus::Active) => {
            params.push(SqlValue::Integer(now));
            if let Some(user) = &q.created_by {
                params.push(SqlValue::text(user));
            }
            format!("SELECT ({}) - ({expired})", sum("total - revoked"))
        }
    };
    Some((sql, params))
}

pub(crate) fn audit_filter(q: &AuditQuery) -> (String, Vec<SqlValue>) {
    let mut clauses: Vec<&str> = Vec::new();
    let mut params = Vec::new();
    if let Some(user) = &q.user {
        clauses.push("user COLLATE NOCASE = ?");
        params.push(SqlValue::text(user));
    }
    if let Some(key_id) = &q.key_id {
        clauses.push("key_id = ?");
        params.push(SqlValue::text(key_id));
    }
    if let Some(action) = q.action {
        clauses.push("action = ?");
        params.push(SqlValue::text(action.as_str()));
    }
    if let Some(from) = q.from {
        clauses.push("at >= ?");
        params.push(SqlValue::Integer(from));
    }
    if let Some(to) = q.to {
        clauses.push("at <= ?");
        params.push(SqlValue::Integer(to));
    }
    (where_clause(&clauses), params)
}

/// The overview's sort column: owners in NOCASE order, as they are
/// matched, so one user's keys sort together whatever the spelling (and the
/// NOCASE owner index serves the sort).
fn sort_column(sort: SortField) -> &'static str {
    match sort {
        SortField::CreatedBy => "created_by COLLATE NOCASE",
        SortField::Owner => "owner COLLATE NOCASE",
        other => other.column(),
    }
}

fn where_clause(clauses: &[&str]) -> String {
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
}

/// The condition, in a statement that gives a key to `owner` (its one
/// parameter: the owner's id), that the owner may own keys: a live service
/// account, or a user who was not removed (in any spelling).
fn owner_may_own(owner: &Owner) -> &'static str {
    match owner {
        Owner::ServiceAccount(_) => {
            "EXISTS (SELECT 1 FROM service_accounts WHERE id = ? AND deleted_at IS NULL)"
        }
        Owner::User(_) => {
            "NOT EXISTS (SELECT 1 FROM removed_users WHERE user_id COLLATE NOCASE = ?)"
        }
    }
}

/// Why [`owner_may_own`] refused `owner`: a field problem of the request.
fn owner_refused(owner: &Owner) -> Error {
    let message = match owner {
        Owner::ServiceAccount(_) => "no such service account (it may have been deleted)",
        Owner::User(_) => "this user has been removed and cannot own keys",
    };
    Error::ValidationFailed(vec![crate::error::FieldError::new("owner", message)])
}

mod lifecycle;
mod owners;
mod removal;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod lifecycle_tests;

#[cfg(test)]
mod owners_tests;
