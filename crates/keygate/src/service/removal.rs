//! Revoking every key of an owner: a user removed by any identity channel,
//! or a deleted service account. One operation, so every channel has the
//! v1 webhook's write order, idempotency and crash guarantees.

use serde_json::json;

use super::{INSERT_AUDIT, IndexEntry, KeyService, OWNER_REMOVED, audit_params, entry_bytes};
use crate::error::Error;
use crate::model::{AuditAction, RemovalChannel, UserRemovedResponse};
use crate::schema;
use crate::store::{SqlValue, StoreError};

impl KeyService<'_> {
    /// The `user.removed` webhook, after its signature was checked.
    ///
    /// Write order: `removed_users` first (from then on the user cannot act
    /// or create keys); per key, `revoked_at` in SQL, whose trigger writes
    /// `key.revoked` in the same statement (verify refuses the key from that
    /// moment, as it records a use only of a key not revoked), then the KV
    /// entry marked revoked (so verify refuses it without SQL); then
    /// `user.removed` (at most once per user, by a unique index); then the
    /// stored response for this `webhook-id`. A retry after a failure
    /// anywhere revokes the keys not yet revoked and marks every key of the
    /// user in KV again, without duplicate entries.
    ///
    /// `revoked_keys` counts the keys the removal revoked: for the delivery
    /// that removed the user (and its retries) all of them; for a later,
    /// different delivery only what it revoked itself (normally 0).
    ///
    /// User ids match ASCII case-insensitively: a removal finds the user's
    /// keys in any spelling, and a removal of `Floris@Example.com` after one
    /// of `floris@example.com` is the same user's (nothing more is revoked,
    /// and `user.removed` stays one entry, under the spelling removed first).
    /// The response names the user as this delivery did; KV entries keep
    /// each key's own owner.
    pub fn remove_user(
        &self,
        user_id: &str,
        webhook_id: &str,
        now: i64,
    ) -> Result<UserRemovedResponse, Error> {
        schema::migrate(self.sql)?;
        let stored = self.execute(
            "SELECT response FROM webhook_deliveries WHERE webhook_id = ?",
            &[SqlValue::text(webhook_id)],
        )?;
        if let Some(row) = stored.first() {
            return serde_json::from_str(&row.text(0)?).map_err(|_| {
                Error::Storage(StoreError::new("unreadable stored webhook response"))
            });
        }
        self.execute(
            "INSERT INTO removed_users (user_id, removed_at, webhook_id) SELECT ?, ?, ? \
             WHERE NOT EXISTS (SELECT 1 FROM removed_users WHERE user_id COLLATE NOCASE = ?) \
             ON CONFLICT (user_id) DO NOTHING",
            &[
                SqlValue::text(user_id),
                SqlValue::Integer(now),
                SqlValue::text(webhook_id),
                SqlValue::text(user_id),
            ],
        )?;
        // The first removal of this user, in whatever spelling it came.
        let removed = self.execute(
            "SELECT user_id, webhook_id FROM removed_users WHERE user_id COLLATE NOCASE = ? \
             ORDER BY rowid LIMIT 1",
            &[SqlValue::text(user_id)],
        )?;
        let removed = removed
            .first()
            .ok_or_else(|| StoreError::new("removed user row vanished"))?;
        let (removed_as, removed_by) = (removed.text(0)?, removed.text(1)?);

        // Every key the user owns (never a service account's), revoked ones
        // included: a retry marks in KV what a failed attempt revoked in SQL only.
        let revoked_now = self.revoke_keys_of(
            "owner COLLATE NOCASE = ? AND owner NOT IN (SELECT id FROM service_accounts)",
            user_id,
            OWNER_REMOVED,
            now,
        )?;

        let revoked_keys = if removed_by == webhook_id {
            self.sql
                .execute(
                    "SELECT count(*) FROM audit_log \
                     WHERE user COLLATE NOCASE = ? AND action = 'key.revoked'",
                    &[SqlValue::text(user_id)],
                )?
                .scalar_int()?
                .max(0) as u64
        } else {
            revoked_now
        };
        self.execute(
            &format!("{INSERT_AUDIT} ON CONFLICT DO NOTHING"),
            &audit_params(
                now,
                &removed_as,
                AuditAction::UserRemoved,
                None,
                &json!({
                    "webhook_id": webhook_id,
                    "channel": RemovalChannel::of_delivery(webhook_id).as_str(),
                    "revoked_keys": revoked_keys,
                }),
            ),
        )?;
        let response = UserRemovedResponse {
            user_id: user_id.to_owned(),
            revoked_keys,
        };
        self.execute(
            "INSERT INTO webhook_deliveries (webhook_id, response, received_at) VALUES (?, ?, ?) \
             ON CONFLICT (webhook_id) DO NOTHING",
            &[
                SqlValue::text(webhook_id),
                SqlValue::text(serde_json::to_string(&response).expect("serialisable")),
                SqlValue::Integer(now),
            ],
        )?;
        Ok(response)
    }

    /// Revokes (with `reason`) every key matching `owner_condition` (one
    /// parameter, `owner`), then marks each key's KV entries revoked, both
    /// secrets of a rolled key included. Keys revoked already are only
    /// marked again. A key transferred to another owner since the scan is
    /// left alone (its revocation checks the condition again): the move
    /// answered 200, and the new owner was not removed. Returns how many
    /// this call revoked.
    pub(super) fn revoke_keys_of(
        &self,
        owner_condition: &str,
        owner: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64, Error> {
        let keys = self.execute(
            &format!(
                "SELECT id, name, key_hash, expires_at, revoked_at IS NULL, \
                 coalesce(owner, created_by), previous_key_hash FROM api_keys \
                 WHERE {owner_condition} ORDER BY id"
            ),
            &[SqlValue::text(owner)],
        )?;
        let mut revoked_now = 0;
        for row in keys.iter() {
            let (id, name, hash, expires_at, key_owner, previous) = (
                row.text(0)?,
                row.text(1)?,
                row.text(2)?,
                row.opt_int(3)?,
                row.text(5)?,
                row.opt_text(6)?,
            );
            if row.int(4)? != 0 {
                let updated = self.execute(
                    &format!(
                        "UPDATE api_keys SET revoked_at = ?, revoked_reason = ? \
                         WHERE id = ? AND revoked_at IS NULL AND {owner_condition} RETURNING id"
                    ),
                    &[
                        SqlValue::Integer(now),
                        SqlValue::text(reason),
                        SqlValue::text(&id),
                        SqlValue::text(owner),
                    ],
                )?;
                revoked_now += updated.rows.len() as u64;
                if updated.rows.is_empty()
                    && self
                        .execute(
                            "SELECT 1 FROM api_keys WHERE id = ? AND revoked_at IS NOT NULL",
                            &[SqlValue::text(&id)],
                        )?
                        .rows
                        .is_empty()
                {
                    // Moved to another owner (or deleted) since the scan.
                    continue;
                }
            }
            let entry = IndexEntry {
                key_id: id,
                owner: key_owner,
                name,
                expires_at,
                revoked: true,
                valid_until: None,
            };
            for hash in std::iter::once(hash).chain(previous) {
                self.kv.set(&format!("key:{hash}"), &entry_bytes(&entry))?;
            }
        }
        Ok(revoked_now)
    }
}
