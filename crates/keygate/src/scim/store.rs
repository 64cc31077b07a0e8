//! Users in SQLite (`scim_users`, schema v10) and what their `active` means
//! for keygate: removal through [`KeyService::remove_user`], readmission
//! through `user_reactivations` (schema v10), whose trigger deletes the
//! `removed_users` row and writes `user.reactivated` in the same statement.

use serde_json::{Map, Value};

use super::filter::ListFilter;
use super::resource::{StoredUser, is_active};
use crate::retry::{self, Repeatable};
use crate::schema;
use crate::service::KeyService;
use crate::store::{KeyValue, Row, Rows, Sql, SqlValue, StoreError};

/// Delivery ids of this channel: `scim:<resource id>:<version>`.
pub const DELIVERY_PREFIX: &str = crate::model::RemovalChannel::Scim.delivery_prefix();

const COLUMNS: &str = "id, attributes, version, created_at, modified_at, former_user_names";

#[derive(Clone, Copy)]
pub struct Users<'a> {
    kv: &'a dyn KeyValue,
    sql: &'a dyn Sql,
}

impl<'a> Users<'a> {
    pub fn new(kv: &'a dyn KeyValue, sql: &'a dyn Sql) -> Self {
        Users { kv, sql }
    }

    pub fn migrate(&self) -> Result<(), StoreError> {
        schema::migrate(self.sql)
    }

    /// One statement; "no such table" (a connection that has not seen the
    /// migration another request just ran) reloads the schema and runs it once more.
    fn exec(&self, statement: &str, params: &[SqlValue]) -> Result<Rows, StoreError> {
        let run = || retry::execute(self.sql, statement, params, Repeatable::IfReadOnly);
        match run() {
            Err(e) if e.is_missing_schema() => {
                schema::migrate(self.sql)?;
                schema::reload(self.sql)?;
                run()
            }
            other => other,
        }
    }

    pub fn get(&self, id: &str) -> Result<Option<StoredUser>, StoreError> {
        let rows = self.exec(
            &format!("SELECT {COLUMNS} FROM scim_users WHERE id = ?"),
            &[SqlValue::text(id)],
        )?;
        rows.first().map(|r| stored(&r)).transpose()
    }

    pub fn by_user_name(&self, user_name: &str) -> Result<Option<StoredUser>, StoreError> {
        let rows = self.exec(
            &format!("SELECT {COLUMNS} FROM scim_users WHERE user_name COLLATE NOCASE = ?"),
            &[SqlValue::text(user_name)],
        )?;
        rows.first().map(|r| stored(&r)).transpose()
    }

    /// The total matching, and the page from `start` (0-based), oldest first.
    pub fn list(
        &self,
        filter: Option<&ListFilter>,
        start: usize,
        count: usize,
    ) -> Result<(u64, Vec<StoredUser>), StoreError> {
        let (clause, params) = match filter {
            None => ("", vec![]),
            Some(ListFilter::UserName(v)) => (
                " WHERE user_name COLLATE NOCASE = ?",
                vec![SqlValue::text(v)],
            ),
            Some(ListFilter::ExternalId(v)) => (" WHERE external_id = ?", vec![SqlValue::text(v)]),
            Some(ListFilter::Id(v)) => (" WHERE id = ?", vec![SqlValue::text(v)]),
        };
        let total = self
            .exec(&format!("SELECT count(*) FROM scim_users{clause}"), &params)?
            .scalar_int()?
            .max(0) as u64;
        if count == 0 {
            return Ok((total, Vec::new()));
        }
        let mut page = params.clone();
        page.push(SqlValue::Integer(count as i64));
        page.push(SqlValue::Integer(start as i64));
        let rows = self.exec(
            &format!(
                "SELECT {COLUMNS} FROM scim_users{clause} ORDER BY created_at, id LIMIT ? OFFSET ?"
            ),
            &page,
        )?;
        let users = rows.iter().map(|r| stored(&r)).collect::<Result<_, _>>()?;
        Ok((total, users))
    }

    /// Inserts a new user; `false` when the id or (case-insensitively) the
    /// userName is taken.
    pub fn insert(&self, user: &StoredUser) -> Result<bool, StoreError> {
        let rows = self.exec(
            "INSERT INTO scim_users (id, user_name, external_id, attributes, former_user_names, \
             version, created_at, modified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT DO NOTHING RETURNING id",
            &[
                SqlValue::text(&user.id),
                SqlValue::text(user.user_name()),
                SqlValue::opt_text(external_id(&user.attributes)),
                SqlValue::text(Value::Object(user.attributes.clone()).to_string()),
                SqlValue::text(former(user)),
                SqlValue::Integer(user.version),
                SqlValue::Integer(user.created_at),
                SqlValue::Integer(user.modified_at),
            ],
        )?;
        Ok(!rows.rows.is_empty())
    }

    /// Writes `user` (its new version) if the row is still at `previous`.
    pub fn update(&self, user: &StoredUser, previous: i64) -> Result<bool, StoreError> {
        let rows = self.exec(
            "UPDATE scim_users SET user_name = ?, external_id = ?, attributes = ?, \
             former_user_names = ?, version = ?, modified_at = ? \
             WHERE id = ? AND version = ? RETURNING id",
            &[
                SqlValue::text(user.user_name()),
                SqlValue::opt_text(external_id(&user.attributes)),
                SqlValue::text(Value::Object(user.attributes.clone()).to_string()),
                SqlValue::text(former(user)),
                SqlValue::Integer(user.version),
                SqlValue::Integer(user.modified_at),
                SqlValue::text(&user.id),
                SqlValue::Integer(previous),
            ],
        )?;
        Ok(!rows.rows.is_empty())
    }

    pub fn delete(&self, id: &str, version: i64) -> Result<bool, StoreError> {
        let rows = self.exec(
            "DELETE FROM scim_users WHERE id = ? AND version = ? RETURNING id",
            &[SqlValue::text(id), SqlValue::Integer(version)],
        )?;
        Ok(!rows.rows.is_empty())
    }

    /// The delivery that removed this user (any spelling), if they are removed.
    pub fn removed_by(&self, user_name: &str) -> Result<Option<String>, StoreError> {
        let rows = self.exec(
            "SELECT webhook_id FROM removed_users WHERE user_id COLLATE NOCASE = ? \
             ORDER BY rowid LIMIT 1",
            &[SqlValue::text(user_name)],
        )?;
        rows.first().map(|r| r.text(0)).transpose()
    }

    /// Makes keygate agree with the resource's `active`, for every user id
    /// the resource has had (`user_names`: the current one first), before the
    /// row says so (a crash in between leaves the row as it was, so the
    /// identity provider's retry sees the same change to make and makes it).
    ///
    /// - Inactive: each user id is removed through
    ///   [`KeyService::remove_user`] under `scim:<id>:<next_version>` (the
    ///   current id; a former one adds `:<n>`), unless the row was already
    ///   inactive and that id is still removed (a repeat revokes nothing and
    ///   writes nothing). A retry after a failure part-way has the same next
    ///   version, so the same delivery id: finished if it was not, answered
    ///   from storage if it was.
    /// - Active: an id is readmitted if this resource went from inactive to
    ///   active, if its removal was this resource's own (a deactivation whose
    ///   row update never happened), or, for a new resource, if SCIM removed
    ///   it (provisioned again after a DELETE). A removal by another channel
    ///   (webhook, Okta Event Hook, Shared Signals) is not undone by a
    ///   resource that never said the user was inactive.
    ///
    /// Returns whether anything was done.
    pub fn settle(
        &self,
        id: &str,
        user_names: &[String],
        active: bool,
        previous: Option<bool>,
        next_version: i64,
        now: i64,
    ) -> Result<bool, crate::Error> {
        let mut acted = false;
        for (n, user_name) in user_names.iter().enumerate() {
            let removed_by = self.removed_by(user_name)?;
            if !active {
                if previous == Some(false) && removed_by.is_some() {
                    continue;
                }
                let delivery = match n {
                    0 => format!("{DELIVERY_PREFIX}{id}:{next_version}"),
                    n => format!("{DELIVERY_PREFIX}{id}:{next_version}:{n}"),
                };
                KeyService::new(self.kv, self.sql).remove_user(user_name, &delivery, now)?;
                acted = true;
                continue;
            }
            let Some(by) = removed_by else {
                continue;
            };
            let own = by.starts_with(&format!("{DELIVERY_PREFIX}{id}:"));
            if own
                || previous == Some(false)
                || (previous.is_none() && by.starts_with(DELIVERY_PREFIX))
            {
                self.reactivate(user_name, id, now)?;
                acted = true;
            }
        }
        Ok(acted)
    }

    /// One statement: `user_reactivations`' trigger deletes the user's
    /// `removed_users` row and writes `user.reactivated` (under the spelling
    /// removed), only while the user is removed.
    pub fn reactivate(&self, user_name: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        let rows = self.exec(
            "INSERT INTO user_reactivations (at, user_id, scim_id) SELECT ?, ?, ? \
             WHERE EXISTS (SELECT 1 FROM removed_users WHERE user_id COLLATE NOCASE = ?) \
             RETURNING id",
            &[
                SqlValue::Integer(now),
                SqlValue::text(user_name),
                SqlValue::text(id),
                SqlValue::text(user_name),
            ],
        )?;
        Ok(!rows.rows.is_empty())
    }
}

fn former(user: &StoredUser) -> String {
    serde_json::to_string(&user.former_user_names).expect("serialisable")
}

fn external_id(attributes: &Map<String, Value>) -> Option<&str> {
    attributes.get("externalId").and_then(Value::as_str)
}

fn stored(row: &Row<'_>) -> Result<StoredUser, StoreError> {
    let attributes: Map<String, Value> = serde_json::from_str(&row.text(1)?)
        .map_err(|_| StoreError::new("unreadable scim_users.attributes"))?;
    let former_user_names: Vec<String> = serde_json::from_str(&row.text(5)?)
        .map_err(|_| StoreError::new("unreadable scim_users.former_user_names"))?;
    Ok(StoredUser {
        id: row.text(0)?,
        attributes,
        former_user_names,
        version: row.int(2)?,
        created_at: row.int(3)?,
        modified_at: row.int(4)?,
    })
}

/// Whether `attributes` make the user active (absent `active` does).
pub fn active(attributes: &Map<String, Value>) -> bool {
    is_active(attributes)
}
