//! Owners (v2): service accounts, hand-over of a key, and what removing a
//! user would break.

use super::{KeyService, entry_bytes, owner_may_own, owner_refused};
use crate::error::Error;
use crate::key::{is_key_id, is_service_account_id, new_service_account_id};
use crate::model::{
    ActingUser, KeyCounts, KeyView, NewServiceAccount, Owner, Page, ServiceAccount, UserSummary,
};
use crate::store::SqlValue;
use crate::validate::fold_name;

/// The revocation reason when a key's service account is deleted.
pub const OWNER_DELETED: &str = "owner_deleted";

/// "Used in the last 30 days", in seconds.
const RECENT_USE_SECONDS: i64 = 30 * 86_400;

impl KeyService<'_> {
    /// `POST /api/service-accounts`. One insert; its trigger writes
    /// `service_account.created`; the unique index on live names decides
    /// `name_taken`, also under races.
    pub fn create_service_account(
        &self,
        user: &ActingUser,
        new: NewServiceAccount,
        now: i64,
    ) -> Result<ServiceAccount, Error> {
        self.authorize(user)?;
        let account = ServiceAccount {
            id: new_service_account_id()?,
            name: new.name,
            description: new.description,
            created_by: user.as_str().to_owned(),
            created_at: now,
        };
        let inserted = self.execute(
            "INSERT INTO service_accounts (id, name, name_folded, description, created_by, \
             created_at, created_via) VALUES (?, ?, ?, ?, ?, ?, ?)",
            &[
                SqlValue::text(&account.id),
                SqlValue::text(&account.name),
                SqlValue::text(fold_name(&account.name)),
                SqlValue::opt_text(account.description.as_deref()),
                SqlValue::text(&account.created_by),
                SqlValue::Integer(now),
                SqlValue::text(user.signed_in_with().as_str()),
            ],
        );
        match inserted {
            Ok(_) => Ok(account),
            Err(e) if e.is_service_account_name_taken() => Err(Error::ServiceAccountNameTaken),
            Err(e) => Err(Error::Storage(e)),
        }
    }

    /// `GET /api/service-accounts`: live ones, newest first, paged like the
    /// overview.
    pub fn list_service_accounts(
        &self,
        user: &ActingUser,
        page: u32,
        per_page: u32,
    ) -> Result<Page<ServiceAccount>, Error> {
        self.authorize(user)?;
        let total = self
            .execute(
                "SELECT count(*) FROM service_accounts WHERE deleted_at IS NULL",
                &[],
            )?
            .scalar_int()?;
        let [limit, offset] = super::page_params(page, per_page);
        let rows = self.execute(
            "SELECT id, name, description, created_by, created_at FROM service_accounts \
             WHERE deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            &[limit, offset],
        )?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(ServiceAccount {
                    id: r.text(0)?,
                    name: r.text(1)?,
                    description: r.opt_text(2)?,
                    created_by: r.text(3)?,
                    created_at: r.int(4)?,
                })
            })
            .collect::<Result<_, crate::store::StoreError>>()?;
        Ok(Page::new(items, page, per_page, total.max(0) as u64))
    }

    /// `DELETE /api/service-accounts/{id}`. Write order as a user's removal:
    /// the account is marked deleted first (from then on no key can be
    /// created for or moved to it; its trigger writes
    /// `service_account.deleted`), then each of its keys is revoked
    /// (`owner_deleted`) and marked in KV. A retry after a failure part-way
    /// finishes the revocations, then answers 404: the account is gone.
    pub fn delete_service_account(
        &self,
        user: &ActingUser,
        id: &str,
        now: i64,
    ) -> Result<(), Error> {
        self.authorize(user)?;
        if !is_service_account_id(id) {
            return Err(Error::ServiceAccountNotFound);
        }
        let deleted = self.execute(
            "UPDATE service_accounts SET deleted_at = ?, deleted_by = ?, deleted_via = ? \
             WHERE id = ? AND deleted_at IS NULL RETURNING id",
            &[
                SqlValue::Integer(now),
                SqlValue::text(user.as_str()),
                SqlValue::text(user.signed_in_with().as_str()),
                SqlValue::text(id),
            ],
        )?;
        let existed = !deleted.rows.is_empty()
            || !self
                .execute(
                    "SELECT 1 FROM service_accounts WHERE id = ?",
                    &[SqlValue::text(id)],
                )?
                .rows
                .is_empty();
        if existed {
            self.revoke_keys_of("owner = ?", id, OWNER_DELETED, now)?;
        }
        if deleted.rows.is_empty() {
            return Err(Error::ServiceAccountNotFound);
        }
        Ok(())
    }

    /// `POST /api/keys/{id}/transfer`. The secret stays; from the one
    /// statement on, every use is the new owner's (verify takes the owner
    /// from the row). That statement inserts into `key_transfers` only if the
    /// key exists, is not revoked, and the new owner may own keys, and its
    /// trigger moves the key and writes `key.transferred`. A removal of the
    /// new owner racing it either committed first (nothing moves: 422) or
    /// scans for the owner's keys after the move. The KV entries are brought
    /// in line afterwards; only an instance still at v10 reads their owner.
    ///
    /// A transfer to the key's owner (in any spelling) moves nothing and
    /// writes no entry, so the retry of a transfer whose answer was lost
    /// (after a crash or a 503 past its statement) answers 200 and leaves one
    /// `key.transferred`.
    pub fn transfer_key(
        &self,
        user: &ActingUser,
        id: &str,
        to: Owner,
        now: i64,
    ) -> Result<KeyView, Error> {
        self.authorize(user)?;
        if !is_key_id(id) {
            return Err(Error::KeyNotFound);
        }
        let moved = self.execute(
            &format!(
                "INSERT INTO key_transfers (at, transferred_by, auth, key_id, key_name, \
                 from_owner, to_owner) \
                 SELECT ?, ?, ?, id, name, coalesce(owner, created_by), ? FROM api_keys \
                 WHERE id = ? AND revoked_at IS NULL \
                 AND coalesce(owner, created_by) COLLATE NOCASE <> ? AND {} RETURNING id",
                owner_may_own(&to)
            ),
            &[
                SqlValue::Integer(now),
                SqlValue::text(user.as_str()),
                SqlValue::text(user.signed_in_with().as_str()),
                SqlValue::text(to.as_str()),
                SqlValue::text(id),
                SqlValue::text(to.as_str()),
                SqlValue::text(to.as_str()),
            ],
        )?;
        if moved.rows.is_empty() {
            let key = self.read_key(id, now)?;
            if key.revoked_at.is_some() {
                return Err(Error::KeyRevoked);
            }
            if !key.owner.eq_ignore_ascii_case(to.as_str()) {
                return Err(owner_refused(&to));
            }
            // Already the owner's: nothing to move, nothing to audit.
        }
        self.refresh_entries(id)?;
        self.read_key(id, now)
    }

    /// `GET /api/users/{user_id}`: the user's keys by status, and how many
    /// of the active ones were used in the last 30 days.
    pub fn user_summary(
        &self,
        user: &ActingUser,
        user_id: &str,
        now: i64,
    ) -> Result<UserSummary, Error> {
        self.authorize(user)?;
        let rows = self.execute(
            "SELECT (SELECT removed_at FROM removed_users WHERE user_id COLLATE NOCASE = ? \
                     ORDER BY removed_at LIMIT 1), \
             coalesce(sum(revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)), 0), \
             coalesce(sum(revoked_at IS NULL AND expires_at <= ?), 0), \
             coalesce(sum(revoked_at IS NOT NULL), 0), \
             coalesce(sum(revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) \
                          AND last_used_at >= ?), 0) \
             FROM api_keys WHERE owner COLLATE NOCASE = ?",
            &[
                SqlValue::text(user_id),
                SqlValue::Integer(now),
                SqlValue::Integer(now),
                SqlValue::Integer(now),
                SqlValue::Integer(now - RECENT_USE_SECONDS),
                SqlValue::text(user_id),
            ],
        )?;
        let row = rows
            .first()
            .ok_or_else(|| crate::store::StoreError::new("no row"))?;
        let count = |i| row.int(i).map(|n| n.max(0) as u64);
        Ok(UserSummary {
            user_id: user_id.to_owned(),
            removed_at: row.opt_int(0)?,
            keys: KeyCounts {
                active: count(1)?,
                expired: count(2)?,
                revoked: count(3)?,
            },
            used_last_30_days: count(4)?,
        })
    }

    /// Rewrites the KV entries of a key (its secret and a previous one still
    /// in its grace) from its row: owner, name, expiry, revoked state.
    /// Entries only narrow what SQL allows, so this runs after the SQL
    /// change; a failure is answered 503 and the caller's retry repeats it.
    pub(super) fn refresh_entries(&self, id: &str) -> Result<(), Error> {
        let rows = self.execute(
            "SELECT key_hash, coalesce(owner, created_by), name, expires_at, \
             revoked_at IS NOT NULL, previous_key_hash, previous_valid_until \
             FROM api_keys WHERE id = ?",
            &[SqlValue::text(id)],
        )?;
        let Some(row) = rows.first() else {
            return Ok(());
        };
        let mut entry = super::IndexEntry {
            key_id: id.to_owned(),
            owner: row.text(1)?,
            name: row.text(2)?,
            expires_at: row.opt_int(3)?,
            revoked: row.int(4)? != 0,
            valid_until: None,
        };
        self.kv
            .set(&format!("key:{}", row.text(0)?), &entry_bytes(&entry))?;
        if let (Some(previous), Some(until)) = (row.opt_text(5)?, row.opt_int(6)?) {
            entry.valid_until = Some(until);
            self.kv
                .set(&format!("key:{previous}"), &entry_bytes(&entry))?;
        }
        Ok(())
    }
}
