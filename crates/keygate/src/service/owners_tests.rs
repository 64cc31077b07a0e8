//! Owners (v2) against real SQLite and an in-memory key-value store:
//! service accounts, the transfer of a key, and the user summary, with a
//! failure at each storage call and with other requests interleaved.

use std::cell::RefCell;

use serde_json::json;

use super::owners::OWNER_DELETED;
use super::tests::{Interleave, NOW, World, assert_err, new_key, user};
use super::*;
use crate::model::{NewServiceAccount, ServiceAccount};
use crate::testing::KvOp;

const DAY: i64 = 86_400;

fn account(w: &World, name: &str) -> ServiceAccount {
    w.service()
        .create_service_account(
            &user("ops"),
            NewServiceAccount {
                name: name.to_owned(),
                description: None,
            },
            NOW,
        )
        .unwrap()
}

fn owner(id: &str) -> Owner {
    Owner::parse(id).unwrap()
}

/// A key `creator` makes for `owner`.
fn create_for(w: &World, creator: &str, owner_id: &str, name: &str) -> CreatedKey {
    w.service()
        .create_key(
            &user(creator),
            NewKey {
                owner: Some(owner(owner_id)),
                ..new_key(name)
            },
            NOW,
        )
        .unwrap()
}

fn transfer(w: &World, id: &str, to: &str) -> Result<KeyView, Error> {
    w.service().transfer_key(&user("ops"), id, owner(to), NOW)
}

/// Whom the key acts as, as verify says (the use is recorded as theirs).
fn acts_as(w: &World, key: &CreatedKey) -> String {
    let verified = w.verify(key).unwrap();
    let used = w.audit(&format!("action=key.used&key_id={}", key.key.id));
    assert_eq!(used[0].user, verified.user_id, "the use is the owner's");
    verified.user_id
}

// ---- service accounts -------------------------------------------------------

#[test]
fn service_account_names_are_unique_case_insensitively_among_live_ones() {
    let w = World::new();
    let etl = account(&w, "Nightly ETL");
    assert!(crate::key::is_service_account_id(&etl.id));
    let again = w.service().create_service_account(
        &user("ops"),
        NewServiceAccount {
            name: "nightly etl".into(),
            description: None,
        },
        NOW,
    );
    assert_err(again, "name_taken");
    w.service()
        .delete_service_account(&user("ops"), &etl.id, NOW)
        .unwrap();
    let reused = account(&w, "nightly etl");
    assert_ne!(reused.id, etl.id);
    let listed = w
        .service()
        .list_service_accounts(&user("ops"), 1, 25)
        .unwrap();
    assert_eq!(listed.items, [reused]);
    assert_eq!(
        w.actions(),
        [
            "service_account.created",
            "service_account.deleted",
            "service_account.created"
        ]
    );
}

#[test]
fn deleting_a_service_account_revokes_its_keys_and_nothing_else() {
    let w = World::new();
    let sa = account(&w, "etl");
    let keys = [
        create_for(&w, "ann", &sa.id, "etl-1"),
        create_for(&w, "bob", &sa.id, "etl-2"),
    ];
    let anns = w.create("ann", "anns");
    w.service()
        .delete_service_account(&user("ops"), &sa.id, NOW + 5)
        .unwrap();
    for k in &keys {
        assert_err(w.verify(k), "revoked_key");
        let view = w.get(&k.key.id).unwrap();
        assert_eq!(view.status, KeyStatus::Revoked);
        assert_eq!(view.revoked_reason.as_deref(), Some(OWNER_DELETED));
        assert_eq!(view.revoked_at, Some(NOW + 5));
    }
    assert_eq!(acts_as(&w, &anns), "ann");
    let revoked = w.audit("action=key.revoked");
    assert_eq!(revoked.len(), 2);
    assert!(
        revoked
            .iter()
            .all(|e| e.user == sa.id && e.details == json!({"reason": "owner_deleted"}))
    );
    let deleted = w.audit("action=service_account.deleted");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].user, "ops");
    assert_eq!(
        deleted[0].details,
        json!({"service_account_id": sa.id, "name": "etl", "auth": "admin_token"})
    );

    // It owns nothing from now on, and a second deletion changes nothing.
    let refused = w.service().create_key(
        &user("ann"),
        NewKey {
            owner: Some(owner(&sa.id)),
            ..new_key("late")
        },
        NOW,
    );
    assert_err(refused, "validation_failed");
    assert_err(transfer(&w, &anns.key.id, &sa.id), "validation_failed");
    let entries = w.count("audit_log");
    assert_err(
        w.service()
            .delete_service_account(&user("ops"), &sa.id, NOW + 9),
        "service_account_not_found",
    );
    assert_eq!(w.count("audit_log"), entries);
    assert_eq!(acts_as(&w, &anns), "ann");
}

/// Runs `act` against a fresh world once per storage call it makes, failing
/// that call (SQL statements, then KV writes); `check` looks at what the
/// failure left and retries.
fn at_every_call(
    setup: impl Fn(&World) -> Vec<CreatedKey>,
    act: impl Fn(&World, &[CreatedKey]) -> Result<(), Error>,
    check: impl Fn(&World, &[CreatedKey], &str),
) -> usize {
    let clean = World::new();
    let keys = setup(&clean);
    clean.sql.clear_statements();
    clean.kv.clear_calls();
    act(&clean, &keys).unwrap();
    let statements = clean.sql.statements().len();
    let sets = clean
        .kv
        .calls()
        .iter()
        .filter(|(op, _)| *op == KvOp::Set)
        .count();
    assert!(statements > 0);
    for n in 1..=statements {
        let w = World::new();
        let keys = setup(&w);
        w.sql.fail_nth_matching("", n);
        assert_err(act(&w, &keys), "storage_unavailable");
        check(&w, &keys, &format!("statement {n} failed"));
    }
    for n in 1..=sets {
        let w = World::new();
        let keys = setup(&w);
        w.kv.fail_nth(KvOp::Set, n);
        assert_err(act(&w, &keys), "storage_unavailable");
        check(&w, &keys, &format!("KV write {n} failed"));
    }
    statements + sets
}

#[test]
fn a_service_account_deletion_failing_part_way_is_finished_by_the_retry() {
    let calls = at_every_call(
        |w| {
            let sa = account(w, "etl");
            (0..3)
                .map(|i| create_for(w, "ann", &sa.id, &format!("etl-{i}")))
                .collect()
        },
        |w, keys| {
            let sa = &keys[0].key.owner;
            w.service().delete_service_account(&user("ops"), sa, NOW)
        },
        |w, keys, when| {
            let sa = &keys[0].key.owner;
            // Each key is revoked and refused, or active and verifying.
            for k in keys {
                match w.verify(k) {
                    Ok(_) => assert_eq!(w.get(&k.key.id).unwrap().status, KeyStatus::Active),
                    Err(e) => {
                        assert_eq!(e.code(), "revoked_key", "{when}");
                        assert_eq!(w.get(&k.key.id).unwrap().status, KeyStatus::Revoked);
                    }
                }
            }
            let deleted_already = !w.audit("action=service_account.deleted").is_empty();
            let retry = w
                .service()
                .delete_service_account(&user("ops"), sa, NOW + 60);
            if deleted_already {
                assert_err(retry, "service_account_not_found");
            } else {
                retry.unwrap();
            }
            for k in keys {
                assert_err(w.verify(k), "revoked_key");
                let view = w.get(&k.key.id).unwrap();
                assert_eq!(
                    view.revoked_reason.as_deref(),
                    Some(OWNER_DELETED),
                    "{when}"
                );
            }
            assert_eq!(w.audit("action=key.revoked").len(), 3, "{when}");
            assert_eq!(w.audit("action=service_account.deleted").len(), 1, "{when}");
        },
    );
    assert!(calls >= 8, "{calls}");
}

// ---- transfer ---------------------------------------------------------------

#[test]
fn a_transfer_moves_the_key_and_its_uses_to_the_new_owner() {
    let w = World::new();
    let k = w.create("ann", "orders-sync");
    assert_eq!(acts_as(&w, &k), "ann");
    let moved = transfer(&w, &k.key.id, "  bob ").unwrap();
    assert_eq!(moved.owner, "bob", "trimmed");
    assert_eq!(moved.created_by, "ann");
    assert_eq!(moved.hint, k.key.hint);
    assert_eq!(acts_as(&w, &k), "bob");
    let entries = w.audit("action=key.transferred");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].user, "ops");
    assert_eq!(entries[0].key_id.as_deref(), Some(k.key.id.as_str()));
    assert_eq!(entries[0].key_name.as_deref(), Some("orders-sync"));
    assert_eq!(
        entries[0].details,
        json!({"from": "ann", "to": "bob", "auth": "admin_token"})
    );

    // The old owner's removal leaves it working, the new owner's revokes it.
    assert_eq!(
        w.service()
            .remove_user("ann", "msg_1", NOW)
            .unwrap()
            .revoked_keys,
        0
    );
    assert_eq!(acts_as(&w, &k), "bob");
    assert_eq!(
        w.service()
            .remove_user("BOB", "msg_2", NOW)
            .unwrap()
            .revoked_keys,
        1
    );
    assert_err(w.verify(&k), "revoked_key");
    assert_err(transfer(&w, &k.key.id, "carl"), "key_revoked");
}

#[test]
fn a_transfer_to_the_owner_moves_nothing_and_writes_nothing() {
    let w = World::new();
    let k = w.create("Ann", "orders-sync");
    let entries = w.count("audit_log");
    for spelling in ["Ann", "ann", " ANN "] {
        let view = transfer(&w, &k.key.id, spelling).unwrap();
        assert_eq!(view.owner, "Ann", "as first written");
    }
    assert_eq!(w.count("audit_log"), entries);
    assert_eq!(w.count("key_transfers"), 0);
}

#[test]
fn a_transfer_is_refused_for_an_owner_who_cannot_own_keys() {
    let w = World::new();
    let k = w.create("ann", "orders-sync");
    w.service().remove_user("Bob", "msg_1", NOW).unwrap();
    let sa = account(&w, "gone");
    w.service()
        .delete_service_account(&user("ops"), &sa.id, NOW)
        .unwrap();
    let entries = w.count("audit_log");
    for to in ["bob", "BOB", &sa.id, "sa_0123456789abcdefghijkl"] {
        match transfer(&w, &k.key.id, to) {
            Err(Error::ValidationFailed(errors)) => {
                assert_eq!(errors.len(), 1);
                assert_eq!(errors[0].field, "owner", "{to}");
            }
            other => panic!("{to}: {other:?}"),
        }
    }
    assert_err(
        transfer(&w, "key_0000000000000000000000", "carl"),
        "key_not_found",
    );
    assert_err(transfer(&w, "nope", "carl"), "key_not_found");
    assert_eq!(w.count("audit_log"), entries);
    assert_eq!(acts_as(&w, &k), "ann");
}

#[test]
fn a_transfer_failing_at_any_call_leaves_one_owner_and_the_retry_finishes_it() {
    let calls = at_every_call(
        |w| vec![w.create("ann", "orders-sync")],
        |w, keys| transfer(w, &keys[0].key.id, "bob").map(drop),
        |w, keys, when| {
            let k = &keys[0];
            let owner = acts_as(w, k);
            assert!(owner == "ann" || owner == "bob", "{when}: {owner}");
            assert_eq!(w.get(&k.key.id).unwrap().owner, owner, "{when}");
            let moved = transfer(w, &k.key.id, "bob").unwrap();
            assert_eq!(moved.owner, "bob", "{when}");
            assert_eq!(acts_as(w, k), "bob", "{when}");
            let entries = w.audit("action=key.transferred");
            assert_eq!(entries.len(), 1, "{when}: {entries:?}");
            assert_eq!(entries[0].details["from"], "ann", "{when}");
        },
    );
    assert!(calls >= 5, "{calls}");
}

/// `w`'s stores, with `hook` run just before the first call containing `at`.
fn interleaved<'w>(w: &'w World, at: &'static str, hook: impl FnOnce() + 'w) -> Interleave<'w> {
    Interleave {
        world: w,
        matches: Box::new(move |call| call.contains(at)),
        remaining: RefCell::new(1),
        hook: RefCell::new(Some(Box::new(hook))),
    }
}

#[test]
fn a_transfer_racing_the_old_owners_removal_keeps_the_moved_key_working() {
    // The transfer lands between the removal's scan of the leaver's keys and
    // its revocation of this one.
    let w = World::new();
    let sa = account(&w, "etl");
    let moved = w.create("leaver", "orders-sync");
    let stays = w.create("leaver", "scratch");
    // The removal revokes by id: move the first just before its revocation.
    let (first, other) = if moved.key.id < stays.key.id {
        (&moved, &stays)
    } else {
        (&stays, &moved)
    };
    let id = first.key.id.clone();
    let both = interleaved(&w, "UPDATE api_keys SET revoked_at", || {
        transfer(&w, &id, &sa.id).unwrap();
    });
    let removed = KeyService::new(&both, &both)
        .remove_user("leaver", "msg_1", NOW)
        .unwrap();
    assert!(both.hook.borrow().is_none(), "the transfer ran");
    assert_eq!(removed.revoked_keys, 1);
    assert_eq!(acts_as(&w, first), sa.id);
    assert_eq!(w.get(&first.key.id).unwrap().status, KeyStatus::Active);
    assert_err(w.verify(other), "revoked_key");
    // The retry of the delivery changes nothing.
    KeyService::new(&w.kv, &w.sql)
        .remove_user("leaver", "msg_1", NOW)
        .unwrap();
    assert_eq!(acts_as(&w, first), sa.id);
    let revoked = w.audit("action=key.revoked");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].user, "leaver");
}

#[test]
fn a_transfer_racing_the_new_owners_removal_never_leaves_them_a_working_key() {
    // The removal of the new owner just before the transfer's statement: 422.
    let w = World::new();
    let k = w.create("ann", "orders-sync");
    let both = interleaved(&w, "INSERT INTO key_transfers", || {
        w.service().remove_user("bob", "msg_1", NOW).unwrap();
    });
    let refused =
        KeyService::new(&both, &both).transfer_key(&user("ops"), &k.key.id, owner("bob"), NOW);
    assert_err(refused, "validation_failed");
    assert_eq!(acts_as(&w, &k), "ann");

    // Just after it: the removal finds the moved key and revokes it.
    let w = World::new();
    let k = w.create("ann", "orders-sync");
    let both = interleaved(&w, "SELECT key_hash", || {
        w.service().remove_user("bob", "msg_1", NOW).unwrap();
    });
    let moved = KeyService::new(&both, &both)
        .transfer_key(&user("ops"), &k.key.id, owner("bob"), NOW)
        .unwrap();
    assert!(both.hook.borrow().is_none(), "the removal ran");
    assert_eq!(moved.owner, "bob");
    assert_eq!(moved.status, KeyStatus::Revoked);
    assert_err(w.verify(&k), "revoked_key");
}

// ---- the user summary -------------------------------------------------------

#[test]
fn the_user_summary_counts_the_keys_the_user_owns_by_status_and_recent_use() {
    let w = World::new();
    let s = w.service();
    let summary = |now| s.user_summary(&user("ops"), "ANN", now).unwrap();
    assert_eq!(
        serde_json::to_value(summary(NOW)).unwrap(),
        json!({"user_id": "ANN", "removed_at": null,
               "keys": {"active": 0, "expired": 0, "revoked": 0}, "used_last_30_days": 0})
    );
    let used_today = w.create_at("ann", "today", NOW - 40 * DAY);
    let used_long_ago = w.create_at("Ann", "long-ago", NOW - 40 * DAY);
    w.create("ann", "never-used");
    let expiring = s
        .create_key(
            &user("ann"),
            NewKey {
                expires_at: Some(NOW + 10),
                ..new_key("expiring")
            },
            NOW - DAY,
        )
        .unwrap();
    w.verify_at(&used_long_ago, NOW - 31 * DAY).unwrap();
    w.verify_at(&used_today, NOW).unwrap();
    w.verify_at(&expiring, NOW).unwrap();
    // Made by ann for bob: bob's. Made by bob for ann: ann's.
    create_for(&w, "ann", "bob", "for-bob");
    create_for(&w, "bob", "ann", "from-bob");

    let now = summary(NOW);
    assert_eq!(
        (now.keys.active, now.keys.expired, now.keys.revoked),
        (5, 0, 0)
    );
    assert_eq!(now.used_last_30_days, 2, "today's and the expiring one");
    let later = summary(NOW + 20);
    assert_eq!(
        (later.keys.active, later.keys.expired, later.keys.revoked),
        (4, 1, 0)
    );
    assert_eq!(later.used_last_30_days, 1, "expired keys break nothing");
    assert_eq!(
        s.user_summary(&user("ops"), "bob", NOW)
            .unwrap()
            .keys
            .active,
        1
    );

    s.remove_user("aNN", "msg_1", NOW + 30).unwrap();
    let removed = summary(NOW + 40);
    assert_eq!(removed.removed_at, Some(NOW + 30));
    assert_eq!(
        (
            removed.keys.active,
            removed.keys.expired,
            removed.keys.revoked
        ),
        (0, 0, 5)
    );
    assert_eq!(removed.used_last_30_days, 0);
}
