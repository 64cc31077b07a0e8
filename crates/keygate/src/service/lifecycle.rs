//! The key lifecycle (v2): edit (`PATCH`) and roll.

use super::{IndexEntry, KEY_COLUMNS, KeyService, entry_bytes, key_view};
use crate::error::Error;
use crate::key::{ApiKey, is_key_id};
use crate::model::{ActingUser, CreatedKey, KeyChanges, KeyView};
use crate::store::SqlValue;
use crate::validate::fold_name;

impl KeyService<'_> {
    /// `PATCH /api/keys/{id}`. The fields that differ from the key as it is
    /// are written by one insert into `key_updates`, whose trigger changes
    /// only those fields and writes `key.updated` naming them (schema v11);
    /// the unique index decides `name_taken` as on create. A patch that
    /// changes nothing writes no entry. Then the KV entries follow the row
    /// (name, expiry): verify checks the expiry in SQL too, so an entry not
    /// yet updated can only refuse a key SQL would accept, and a retry of the
    /// patch (after a 503) updates it.
    pub fn update_key(
        &self,
        user: &ActingUser,
        id: &str,
        changes: KeyChanges,
        now: i64,
    ) -> Result<KeyView, Error> {
        self.authorize(user)?;
        if !is_key_id(id) {
            return Err(Error::KeyNotFound);
        }
        let key = self.read_key(id, now)?;
        if key.revoked_at.is_some() {
            return Err(Error::KeyRevoked);
        }
        let name = changes.name.filter(|n| *n != key.name);
        let description = changes.description.filter(|d| *d != key.description);
        let expires_at = changes.expires_at.filter(|e| *e != key.expires_at);
        if name.is_some() || description.is_some() || expires_at.is_some() {
            // Which fields still differ is decided again in the statement:
            // a retry racing its first attempt, or another patch of the
            // same field to the same value, writes no entry or names only
            // what it changed.
            let updated = self.execute(
                "INSERT INTO key_updates (at, updated_by, auth, key_id, key_name, \
                 sets_name, name, name_folded, sets_description, description, \
                 sets_expires_at, expires_at, fields) \
                 SELECT ?, ?, ?, id, old_name, n, ?, ?, d, ?, e, ?, \
                 '[' || rtrim(CASE WHEN n THEN '\"name\",' ELSE '' END \
                 || CASE WHEN d THEN '\"description\",' ELSE '' END \
                 || CASE WHEN e THEN '\"expires_at\",' ELSE '' END, ',') || ']' \
                 FROM (SELECT id, name AS old_name, ? AND name IS NOT ? AS n, \
                 ? AND description IS NOT ? AS d, ? AND expires_at IS NOT ? AS e \
                 FROM api_keys WHERE id = ? AND revoked_at IS NULL) \
                 WHERE n OR d OR e RETURNING id",
                &[
                    SqlValue::Integer(now),
                    SqlValue::text(user.as_str()),
                    SqlValue::text(user.signed_in_with().as_str()),
                    SqlValue::opt_text(name.as_deref()),
                    SqlValue::opt_text(name.as_deref().map(fold_name).as_deref()),
                    SqlValue::opt_text(description.clone().flatten().as_deref()),
                    SqlValue::opt_int(expires_at.flatten()),
                    SqlValue::Integer(i64::from(name.is_some())),
                    SqlValue::opt_text(name.as_deref()),
                    SqlValue::Integer(i64::from(description.is_some())),
                    SqlValue::opt_text(description.clone().flatten().as_deref()),
                    SqlValue::Integer(i64::from(expires_at.is_some())),
                    SqlValue::opt_int(expires_at.flatten()),
                    SqlValue::text(id),
                ],
            );
            match updated {
                Ok(rows) if rows.rows.is_empty() => {
                    // Deleted or revoked since it was read, or another
                    // request made these changes first.
                    let key = self.read_key(id, now)?;
                    if key.revoked_at.is_some() {
                        return Err(Error::KeyRevoked);
                    }
                }
                Ok(_) => {}
                Err(e) if e.is_name_taken() => return Err(Error::NameTaken),
                Err(e) => return Err(Error::Storage(e)),
            }
        }
        self.refresh_entries(id)?;
        self.read_key(id, now)
    }

    /// `POST /api/keys/{id}/roll`: a new secret for the same key; the
    /// previous one verifies for `grace` more seconds (0: not at all).
    ///
    /// Write order: the new secret's KV entry (it verifies nothing until the
    /// row names its hash); then one insert into `key_rolls`, only if the
    /// key is not revoked and its secret is still the one read here, whose
    /// trigger makes the new hash the key's and the old one its previous
    /// (until `now + grace`), and writes `key.rolled`. Of two rolls at once
    /// exactly one wins; the other hears 409 `roll_conflict` and its secret
    /// never verifies. An error from that insert is checked against the row
    /// (a libSQL server may commit and lose the answer): if the new hash is
    /// the key's, the roll happened.
    ///
    /// Once the insert has committed, nothing can turn the answer into a
    /// 503: the old secret may already be dead (no grace), so the new one
    /// must reach the caller. The KV entries follow the row on a best-effort
    /// basis (a patch that committed meanwhile included); the previous
    /// secret's entry goes without a grace, and the one before it goes.
    /// Verify checks the presented hash against the row, so a KV write lost
    /// here can never let an old secret in.
    pub fn roll_key(
        &self,
        user: &ActingUser,
        id: &str,
        grace: i64,
        now: i64,
    ) -> Result<CreatedKey, Error> {
        self.authorize(user)?;
        if !is_key_id(id) {
            return Err(Error::KeyNotFound);
        }
        let rows = self.execute(
            &format!(
                "SELECT {KEY_COLUMNS}, key_hash, previous_key_hash FROM api_keys WHERE id = ?"
            ),
            &[SqlValue::text(id)],
        )?;
        let row = rows.first().ok_or(Error::KeyNotFound)?;
        let read = key_view(&row, now)?;
        let (current, before) = (row.text(11)?, row.opt_text(12)?);
        if read.revoked_at.is_some() {
            return Err(Error::KeyRevoked);
        }
        let entry = IndexEntry {
            key_id: id.to_owned(),
            owner: read.owner.clone(),
            name: read.name.clone(),
            expires_at: read.expires_at,
            revoked: false,
            valid_until: None,
        };
        let secret = ApiKey::generate()?;
        let hash = secret.hash();
        self.kv.set(&hash.kv_key(), &entry_bytes(&entry))?;
        let rolled = self.execute(
            "INSERT INTO key_rolls (at, rolled_by, auth, key_id, key_name, new_hash, new_hint, \
             previous_hash, previous_valid_until) \
             SELECT ?, ?, ?, id, name, ?, ?, key_hash, ? FROM api_keys \
             WHERE id = ? AND revoked_at IS NULL AND key_hash = ? RETURNING id",
            &[
                SqlValue::Integer(now),
                SqlValue::text(user.as_str()),
                SqlValue::text(user.signed_in_with().as_str()),
                SqlValue::text(hash.to_hex()),
                SqlValue::text(secret.hint()),
                SqlValue::Integer(now + grace),
                SqlValue::text(id),
                SqlValue::text(&current),
            ],
        );
        let refused = match rolled {
            Ok(rows) if !rows.rows.is_empty() => None,
            Ok(_) => Some(match self.read_key(id, now) {
                Ok(key) if key.revoked_at.is_some() => Error::KeyRevoked,
                Ok(_) => Error::RollConflict,
                Err(e) => e,
            }),
            Err(_) if self.holds_hash(id, &hash.to_hex()) => None,
            Err(e) => Some(Error::Storage(e)),
        };
        if let Some(error) = refused {
            // Best effort: without the row naming it, the entry verifies nothing.
            let _ = self.kv.delete(&hash.kv_key());
            return Err(error);
        }
        // Best effort from here (see above): the row decides what verifies.
        let _ = self.refresh_entries(id);
        if grace == 0 {
            let _ = self.kv.delete(&format!("key:{current}"));
        }
        if let Some(before) = before.filter(|b| *b != current) {
            let _ = self.kv.delete(&format!("key:{before}"));
        }
        // The key as it is now (a patch may have committed since it was
        // read), else as it was read; with this roll's hint either way.
        let mut key = self.read_key(id, now).unwrap_or(read);
        key.hint = secret.hint();
        Ok(CreatedKey { key, secret })
    }

    /// Whether the key's secret is now `hash`: after an error from a
    /// roll's insert, whether it committed all the same. `false` when that
    /// cannot be read either.
    fn holds_hash(&self, id: &str, hash: &str) -> bool {
        self.execute(
            "SELECT 1 FROM api_keys WHERE id = ? AND key_hash = ?",
            &[SqlValue::text(id), SqlValue::text(hash)],
        )
        .is_ok_and(|rows| !rows.rows.is_empty())
    }
}
