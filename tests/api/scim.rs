//! `/scim/v2`: SCIM 2.0 provisioning as Entra ID and Okta drive it, and what
//! the deprovisioned user's automations see. Grouped by status; Entra ID's
//! and Okta's documented request sequences are replayed byte for byte.

use std::time::Instant;

use keygate_tests::api::*;
use keygate_tests::{Json, Reply, json};

const TOKEN: &str = "kgtest-scim-9Lw2Xq7Rm4Tz8Kp3Vn6Bc1Hd5Fy0Gs";
const SCIM: &str = "/scim/v2";
const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const DAVE: &str = "dave@example.com";

fn scim_app() -> App {
    App::start_with(|c| c.env("SPIN_VARIABLE_SCIM_TOKEN", TOKEN))
}

/// A SCIM request with the token (and, with a body, `application/scim+json`).
fn scim<'a>(app: &'a App, method: &str, path: &str) -> Call<'a> {
    app.call(method, &format!("{SCIM}{path}")).bearer(TOKEN)
}

fn scim_json<'a>(app: &'a App, method: &str, path: &str, body: &Json) -> Call<'a> {
    scim(app, method, path).body("application/scim+json", body.to_string())
}

/// Asserts the status and a SCIM JSON answer; returns the body.
#[track_caller]
fn expect_scim(reply: &Reply, status: u16) -> Json {
    assert_eq!(
        reply.status,
        status,
        "expected {status}, got {}: {}",
        reply.status,
        reply.text()
    );
    assert_eq!(
        media_type(reply.header("content-type").unwrap_or_default()),
        "application/scim+json"
    );
    reply.json()
}

/// Asserts SCIM's error format with this status and scimType (if any).
#[track_caller]
fn expect_scim_error(reply: &Reply, status: u16, scim_type: Option<&str>) -> Json {
    let body = expect_scim(reply, status);
    assert_eq!(body["schemas"], json!([ERROR_URN]), "{body}");
    assert_eq!(body["status"], status.to_string(), "{body}");
    assert_eq!(body["scimType"].as_str(), scim_type, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}

fn create_user(app: &App, user_name: &str) -> Json {
    expect_scim(
        &scim_json(
            app,
            "POST",
            "/Users",
            &json!({"schemas": [USER_URN], "userName": user_name, "active": true,
                    "name": {"givenName": "Test", "familyName": "User"},
                    "emails": [{"value": user_name, "type": "work", "primary": true}]}),
        )
        .send(),
        201,
    )
}

fn id_of(user: &Json) -> String {
    user["id"].as_str().expect("id").to_owned()
}

fn patch_active(app: &App, id: &str, value: Json) -> Reply {
    scim_json(
        app,
        "PATCH",
        &format!("/Users/{id}"),
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Replace", "path": "active", "value": value}]}),
    )
    .send()
}

#[track_caller]
fn assert_all_revoked(app: &App, secrets: &[String]) {
    for secret in secrets {
        assert_key_rejected(&app.verify(secret), "revoked_key");
    }
}

#[track_caller]
fn assert_all_verify(app: &App, secrets: &[String]) {
    for secret in secrets {
        expect_json(&app.verify(secret), 200);
    }
}

fn keys_of(app: &App, user: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| app.create_key_as(user, &format!("{user}-{i}")).1)
        .collect()
}

#[track_caller]
fn assert_can_act(app: &App, user: &str) {
    expect_json(&app.mgmt("GET", "/api/keys").acting(user).send(), 200);
}

#[track_caller]
fn assert_removed(app: &App, user: &str) {
    assert_problem(
        &app.mgmt("GET", "/api/keys").acting(user).send(),
        403,
        "user_removed",
    );
}

fn audit_total(app: &App, query: &str) -> u64 {
    app.audit(query)["total"].as_u64().unwrap()
}

// ---- Entra ID and Okta, as documented --------------------------------------

/// learn.microsoft.com, "Tutorial: Develop and plan provisioning for a SCIM
/// endpoint in Microsoft Entra ID", User operations: the bodies as shown.
const ENTRA_CREATE: &str = r#"{
    "schemas": [
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
    "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    "userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
    "active": true,
    "emails": [{
        "primary": true,
        "type": "work",
        "value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"
    }],
    "meta": {
        "resourceType": "User"
    },
    "name": {
        "formatted": "givenName familyName",
        "familyName": "familyName",
        "givenName": "givenName"
    },
    "roles": []
}"#;
const ENTRA_USER: &str = "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee";
const ENTRA_MULTI: &str = r#"{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [
            {
            "op": "Replace",
            "path": "emails[type eq \"work\"].value",
            "value": "updatedEmail@microsoft.com"
            },
            {
            "op": "Replace",
            "path": "name.familyName",
            "value": "updatedFamilyName"
            }
    ]
}"#;
const ENTRA_SINGLE: &str = r#"{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Replace",
        "path": "userName",
        "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    }]
}"#;
const ENTRA_RENAMED: &str = "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com";
const ENTRA_DISABLE: &str = r#"{
    "Operations": [
        {
            "op": "Replace",
            "path": "active",
            "value": false
        }
    ],
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ]
}"#;
/// What Entra ID's provisioning service sends on the wire (the value a string).
const ENTRA_DISABLE_STRING: &str = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}"#;

fn entra<'a>(app: &'a App, method: &str, path: &str, body: &str) -> Call<'a> {
    scim(app, method, path).body("application/scim+json", body)
}

#[test]
fn entra_ids_documented_requests_provision_update_rename_disable_and_delete() {
    let app = scim_app();
    // "Get User by query - Zero results".
    let none = expect_scim(
        &scim(
            &app,
            "GET",
            "/Users?filter=userName+eq+%22non-existent+user%22",
        )
        .send(),
        200,
    );
    assert_eq!(none["totalResults"], 0);
    assert_eq!(none["Resources"], json!([]));

    let created = expect_scim(&entra(&app, "POST", "/Users", ENTRA_CREATE).send(), 201);
    let id = id_of(&created);
    assert_eq!(created["userName"], ENTRA_USER);
    assert_eq!(
        created["externalId"],
        "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"
    );
    assert_eq!(created["active"], true);
    assert_eq!(created["meta"]["resourceType"], "User");
    let old_keys = keys_of(&app, ENTRA_USER, 2);

    // "Get User by query", the user id in another case.
    let found = expect_scim(
        &scim(
            &app,
            "GET",
            &format!(
                "/Users?filter={}",
                percent_encode(&format!("userName eq \"{}\"", ENTRA_USER.to_lowercase()))
            ),
        )
        .send(),
        200,
    );
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["id"], id.as_str());

    let updated = expect_scim(
        &entra(&app, "PATCH", &format!("/Users/{id}"), ENTRA_MULTI).send(),
        200,
    );
    assert_eq!(updated["emails"][0]["value"], "updatedEmail@microsoft.com");
    assert_eq!(updated["name"]["familyName"], "updatedFamilyName");

    // "Update User [Single-valued properties]": a rename. Keys of both ids
    // are this person's.
    let renamed = expect_scim(
        &entra(&app, "PATCH", &format!("/Users/{id}"), ENTRA_SINGLE).send(),
        200,
    );
    assert_eq!(renamed["userName"], ENTRA_RENAMED);
    let new_keys = keys_of(&app, ENTRA_RENAMED, 1);
    assert_all_verify(&app, &old_keys);

    // "Disable User".
    let disabled = expect_scim(
        &entra(&app, "PATCH", &format!("/Users/{id}"), ENTRA_DISABLE).send(),
        200,
    );
    assert_eq!(disabled["active"], false);
    assert_all_revoked(&app, &old_keys);
    assert_all_revoked(&app, &new_keys);
    assert_removed(&app, ENTRA_USER);
    assert_removed(&app, ENTRA_RENAMED);
    let revoked = audit_total(&app, "action=key.revoked");
    assert_eq!(revoked, 3);
    // Entra ID's own wire form, again: the same answer, nothing more revoked.
    let again = expect_scim(
        &entra(&app, "PATCH", &format!("/Users/{id}"), ENTRA_DISABLE_STRING).send(),
        200,
    );
    assert_eq!(again, disabled);
    assert_eq!(audit_total(&app, "action=key.revoked"), revoked);

    // "Delete User".
    let deleted = scim(&app, "DELETE", &format!("/Users/{id}")).send();
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    assert!(deleted.body.is_empty());
    expect_scim_error(
        &scim(&app, "GET", &format!("/Users/{id}")).send(),
        404,
        None,
    );
    assert_removed(&app, ENTRA_RENAMED);
    assert_eq!(audit_total(&app, "action=key.revoked"), revoked);
}

/// developer.okta.com, "SCIM 2.0 Protocol Reference": the requests as shown
/// (no Content-Type, Okta's User-Agent).
const OKTA_CREATE: &str = r#"{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "userName": "test.user@okta.local",
    "name": {
        "givenName": "Test",
        "familyName": "User"
    },
    "emails": [{
        "primary": true,
        "value": "test.user@okta.local",
        "type": "work"
    }],
    "displayName": "Test User",
    "locale": "en-US",
    "externalId": "00ujl29u0le5T6Aj10h7",
    "groups": [],
    "password": "1mz050nq",
    "active": true
}"#;
const OKTA_PUT: &str = r#"{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "id": "23a35c27-23d3-4c03-b4c5-6443c09e7173",
    "userName": "test.user@okta.local",
    "name": {
        "givenName": "Another",
        "middleName": "Excited",
        "familyName": "User"
    },
    "emails": [{
        "primary": true,
        "value": "test.user@okta.local",
        "type": "work",
        "display": "test.user@okta.local"
    }],
    "active": true,
    "groups": [],
    "meta": {
        "resourceType": "User"
    }
}"#;
const OKTA_DEACTIVATE: &str = r#"{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "replace",
        "value": {
            "active": false
        }
    }]
}"#;
const OKTA_USER: &str = "test.user@okta.local";

fn okta<'a>(app: &'a App, method: &str, path: &str) -> Call<'a> {
    scim(app, method, path).header("user-agent", "Okta SCIM Client 1.0.0")
}

#[test]
fn oktas_documented_requests_provision_update_and_deactivate() {
    let app = scim_app();
    let query = "/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100";
    let none = expect_scim(&okta(&app, "GET", query).send(), 200);
    assert_eq!(
        (
            &none["totalResults"],
            &none["startIndex"],
            &none["Resources"]
        ),
        (&json!(0), &json!(1), &json!([]))
    );
    let created = expect_scim(
        &okta(&app, "POST", "/Users").raw_body(OKTA_CREATE).send(),
        201,
    );
    let id = id_of(&created);
    assert!(created.get("password").is_none() && created.get("groups").is_none());
    assert_eq!(created["displayName"], "Test User");
    let keys = keys_of(&app, OKTA_USER, 3);
    let others = keys_of(&app, ALICE, 1);

    let found = expect_scim(&okta(&app, "GET", query).send(), 200);
    assert_eq!(found["Resources"][0]["id"], id.as_str());
    let listed = expect_scim(
        &okta(&app, "GET", "/Users?startIndex=1&count=100").send(),
        200,
    );
    assert_eq!(listed["totalResults"], 1);
    expect_scim(&okta(&app, "GET", &format!("/Users/{id}")).send(), 200);

    let put = OKTA_PUT.replace("23a35c27-23d3-4c03-b4c5-6443c09e7173", &id);
    let replaced = expect_scim(
        &okta(&app, "PUT", &format!("/Users/{id}"))
            .raw_body(put)
            .send(),
        200,
    );
    assert_eq!(replaced["name"]["middleName"], "Excited");
    assert!(replaced.get("displayName").is_none(), "PUT replaces");
    assert_all_verify(&app, &keys);

    let deactivated = expect_scim(
        &okta(&app, "PATCH", &format!("/Users/{id}"))
            .raw_body(OKTA_DEACTIVATE)
            .send(),
        200,
    );
    assert_eq!(deactivated["active"], false);
    assert_all_revoked(&app, &keys);
    assert_all_verify(&app, &others);
    assert_removed(&app, OKTA_USER);
    assert_eq!(
        app.audit("action=user.removed")["items"][0]["details"]["channel"],
        "scim"
    );
    // Okta's retry of the same request: the same answer, nothing more.
    let before = app.snapshot();
    let again = expect_scim(
        &okta(&app, "PATCH", &format!("/Users/{id}"))
            .raw_body(OKTA_DEACTIVATE)
            .send(),
        200,
    );
    assert_eq!(again, deactivated);
    assert_eq!(app.snapshot(), before);
    assert_eq!(audit_total(&app, "action=user.removed"), 1);
    assert_eq!(audit_total(&app, "action=key.revoked"), 3);
}

// ---- 200 -------------------------------------------------------------------

#[test]
fn discovery_describes_the_user_resource() {
    let app = scim_app();
    let spc = expect_scim(&scim(&app, "GET", "/ServiceProviderConfig").send(), 200);
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["filter"], json!({"supported": true, "maxResults": 100}));
    assert_eq!(spc["etag"]["supported"], true);
    for unsupported in ["bulk", "sort", "changePassword"] {
        assert_eq!(spc[unsupported]["supported"], false, "{unsupported}");
    }
    let types = expect_scim(&scim(&app, "GET", "/ResourceTypes").send(), 200);
    assert_eq!(types["totalResults"], 1);
    assert_eq!(types["Resources"][0]["endpoint"], "/Users");
    let schemas = expect_scim(&scim(&app, "GET", "/Schemas").send(), 200);
    assert_eq!(schemas["Resources"][0]["id"], USER_URN);
    let user = expect_scim(
        &scim(&app, "GET", &format!("/Schemas/{USER_URN}")).send(),
        200,
    );
    let names: Vec<&str> = user["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for name in ["userName", "name", "displayName", "active", "emails"] {
        assert!(names.contains(&name), "{name}: {names:?}");
    }
}

#[test]
fn reactivation_lets_the_user_act_again_and_old_keys_stay_revoked() {
    let app = scim_app();
    let id = id_of(&create_user(&app, "Rea@example.com"));
    let old = keys_of(&app, "rea@example.com", 2);
    expect_scim(&patch_active(&app, &id, json!("False")), 200);
    assert_all_revoked(&app, &old);
    assert_removed(&app, "REA@example.com");

    let back = expect_scim(&patch_active(&app, &id, json!(true)), 200);
    assert_eq!(back["active"], true);
    assert_can_act(&app, "rea@example.com");
    assert_all_revoked(&app, &old);
    assert_eq!(audit_total(&app, "user=rea@example.com&per_page=1"), 6);
    let trail = app.audit_all("user=rea@example.com");
    assert_eq!(trail[0]["action"], "user.reactivated", "{trail:#?}");
    let reactivated = app.audit_all("action=user.reactivated");
    assert_eq!(reactivated.len(), 1, "{reactivated:#?}");
    assert_eq!(reactivated[0]["user"], "Rea@example.com");
    assert_eq!(reactivated[0]["details"]["scim_id"], id.as_str());
    let new = keys_of(&app, "rea@example.com", 1);
    assert_all_verify(&app, &new);

    // Removed a second time (PATCH again): the key made in between goes too;
    // `user.removed` stays the one entry a user can have.
    expect_scim(&patch_active(&app, &id, json!(false)), 200);
    assert_all_revoked(&app, &new);
    assert_removed(&app, "rea@example.com");
    assert_eq!(audit_total(&app, "action=user.removed"), 1);
    assert_eq!(audit_total(&app, "action=key.revoked"), 3);
}

#[test]
fn a_removal_by_the_webhook_is_not_undone_by_an_attribute_update() {
    let app = scim_app();
    let id = id_of(&create_user(&app, CAROL));
    app.remove_user(CAROL);
    expect_scim(
        &scim_json(
            &app,
            "PATCH",
            &format!("/Users/{id}"),
            &json!({"Operations": [{"op": "replace", "path": "displayName", "value": "C"}]}),
        )
        .send(),
        200,
    );
    assert_removed(&app, CAROL);
}

#[test]
fn lists_page_with_start_index_and_count() {
    let app = scim_app();
    for i in 0..5 {
        create_user(&app, &format!("page{i}@example.com"));
    }
    let all = expect_scim(&scim(&app, "GET", "/Users").send(), 200);
    assert_eq!(all["totalResults"], 5);
    let page = expect_scim(
        &scim(&app, "GET", "/Users?startIndex=3&count=2").send(),
        200,
    );
    assert_eq!(
        (&page["startIndex"], &page["itemsPerPage"]),
        (&json!(3), &json!(2))
    );
    assert_eq!(page["Resources"][0]["id"], all["Resources"][2]["id"]);
    let counted = expect_scim(&scim(&app, "GET", "/Users?count=0").send(), 200);
    assert_eq!(counted["totalResults"], 5);
    assert_eq!(counted["Resources"], json!([]));
    let ext = expect_scim(
        &scim(&app, "GET", "/Users?filter=externalId+eq+%22nope%22").send(),
        200,
    );
    assert_eq!(ext["totalResults"], 0);
}

// ---- 201 -------------------------------------------------------------------

#[test]
fn create_answers_the_resource_with_location_and_etag() {
    let app = scim_app();
    let reply = scim_json(
        &app,
        "POST",
        "/Users",
        &json!({"schemas": [USER_URN], "userName": "new@example.com"}),
    )
    .send();
    let user = expect_scim(&reply, 201);
    let id = id_of(&user);
    assert_eq!(user["schemas"], json!([USER_URN]));
    assert_eq!(user["meta"]["resourceType"], "User");
    assert_eq!(user["meta"]["version"], "W/\"1\"");
    assert_utc_timestamp(&user["meta"]["created"]);
    assert_utc_timestamp(&user["meta"]["lastModified"]);
    let location = reply.header("location").unwrap();
    assert!(
        location.ends_with(&format!("/scim/v2/Users/{id}")),
        "{location}"
    );
    assert_eq!(user["meta"]["location"], location);
    assert_eq!(reply.header("etag"), Some("W/\"1\""));
    // Plain JSON is accepted too.
    let plain = app
        .call("POST", "/scim/v2/Users")
        .bearer(TOKEN)
        .json(&json!({"userName": "plain@example.com"}))
        .send();
    expect_scim(&plain, 201);
}

// ---- 204 -------------------------------------------------------------------

#[test]
fn delete_removes_the_user_and_a_second_delete_is_404() {
    let app = scim_app();
    let id = id_of(&create_user(&app, BOB));
    let keys = keys_of(&app, BOB, 2);
    let reply = scim(&app, "DELETE", &format!("/Users/{id}")).send();
    assert_eq!(reply.status, 204);
    assert_all_revoked(&app, &keys);
    assert_removed(&app, BOB);
    expect_scim_error(
        &scim(&app, "DELETE", &format!("/Users/{id}")).send(),
        404,
        None,
    );
    assert_eq!(audit_total(&app, "action=key.revoked"), 2);
}

// ---- 304 -------------------------------------------------------------------

#[test]
fn a_get_with_the_current_etag_is_not_modified() {
    let app = scim_app();
    let id = id_of(&create_user(&app, "etag@example.com"));
    let reply = scim(&app, "GET", &format!("/Users/{id}"))
        .header("if-none-match", "W/\"1\"")
        .send();
    assert_eq!(reply.status, 304);
    assert!(reply.body.is_empty());
    assert_eq!(reply.header("etag"), Some("W/\"1\""));
    let changed = scim(&app, "GET", &format!("/Users/{id}"))
        .header("if-none-match", "W/\"0\"")
        .send();
    expect_scim(&changed, 200);
}

// ---- 400 -------------------------------------------------------------------

#[test]
fn bad_requests_are_scim_errors_and_change_nothing() {
    let app = scim_app();
    let id = id_of(&create_user(&app, DAVE));
    let keys = keys_of(&app, DAVE, 1);
    let before = app.snapshot();
    let path = format!("/Users/{id}");
    for (reply, scim_type) in [
        (
            scim(&app, "GET", "/Users?filter=displayName+eq+%22x%22").send(),
            "invalidFilter",
        ),
        (
            scim(&app, "GET", "/Users?filter=userName+gt+%22x%22").send(),
            "invalidFilter",
        ),
        (
            scim(&app, "GET", "/Users?count=many").send(),
            "invalidValue",
        ),
        (
            scim(&app, "POST", "/Users")
                .body("application/scim+json", "{\"userName\": ")
                .send(),
            "invalidSyntax",
        ),
        (
            scim_json(
                &app,
                "POST",
                "/Users",
                &json!({"displayName": "no userName"}),
            )
            .send(),
            "invalidValue",
        ),
        (
            scim_json(
                &app,
                "POST",
                "/Users",
                &json!({"userName": "x", "active": "perhaps"}),
            )
            .send(),
            "invalidValue",
        ),
        (
            scim_json(
                &app,
                "PATCH",
                &path,
                &json!({"Operations": [{"op": "move", "path": "active"}]}),
            )
            .send(),
            "invalidValue",
        ),
        (
            scim_json(
                &app,
                "PATCH",
                &path,
                &json!({"Operations": [{"op": "remove"}]}),
            )
            .send(),
            "noTarget",
        ),
        (
            scim_json(
                &app,
                "PATCH",
                &path,
                &json!({"Operations": [{"op": "replace", "path": "id", "value": "x"}]}),
            )
            .send(),
            "mutability",
        ),
        (
            scim_json(
                &app,
                "PATCH",
                &path,
                &json!({"Operations": [{"op": "replace", "path": "emails[", "value": "x"}]}),
            )
            .send(),
            "invalidPath",
        ),
    ] {
        expect_scim_error(&reply, 400, Some(scim_type));
    }
    expect_scim_error(
        &scim(&app, "POST", "/Users")
            .body("text/plain", "userName=x")
            .send(),
        415,
        None,
    );
    assert_eq!(app.snapshot(), before);
    assert_all_verify(&app, &keys);
    assert_can_act(&app, DAVE);
}

// ---- 401 -------------------------------------------------------------------

#[test]
fn a_wrong_or_missing_token_is_401_in_scims_format_and_changes_nothing() {
    let app = scim_app();
    let id = id_of(&create_user(&app, ALICE));
    let keys = keys_of(&app, ALICE, 1);
    let before = app.snapshot();
    let body = json!({"Operations": [{"op": "replace", "value": {"active": false}}]});
    let path = format!("{SCIM}/Users/{id}");
    for reply in [
        app.call("PATCH", &path).json(&body).send(),
        app.call("PATCH", &path)
            .bearer("kgtest-scim-wrong-token-0000000000")
            .json(&body)
            .send(),
        app.call("PATCH", &path)
            .bearer(ADMIN_TOKEN)
            .json(&body)
            .send(),
        app.call("DELETE", &path)
            .header("authorization", TOKEN)
            .send(),
        app.call("GET", "/scim/v2/Users").bearer(&keys[0]).send(),
        app.call("GET", "/scim/v2/ServiceProviderConfig").send(),
    ] {
        expect_scim_error(&reply, 401, None);
        assert!(
            reply
                .header("www-authenticate")
                .is_some_and(|h| h.starts_with("Bearer"))
        );
    }
    assert_eq!(app.snapshot(), before);
    assert_all_verify(&app, &keys);
    let user = expect_scim(&scim(&app, "GET", &format!("/Users/{id}")).send(), 200);
    assert_eq!(
        (&user["active"], &user["meta"]["version"]),
        (&json!(true), &json!("W/\"1\""))
    );
}

// ---- 404 -------------------------------------------------------------------

#[test]
fn without_a_scim_token_every_route_is_404() {
    let app = App::start();
    for (method, path) in [
        ("GET", "/scim/v2/ServiceProviderConfig"),
        ("GET", "/scim/v2/Users"),
        ("POST", "/scim/v2/Users"),
        ("DELETE", "/scim/v2/Users/x"),
    ] {
        let reply = app.call(method, path).bearer(TOKEN).send();
        expect_scim_error(&reply, 404, None);
    }
    let short = App::start_with(|c| c.env("SPIN_VARIABLE_SCIM_TOKEN", "short"));
    expect_scim_error(
        &short.call("GET", "/scim/v2/Users").bearer("short").send(),
        404,
        None,
    );
}

#[test]
fn unknown_users_and_endpoints_are_404() {
    let app = scim_app();
    for path in [
        "/Users/00000000-0000-4000-8000-000000000000",
        "/Groups",
        "/Nope",
    ] {
        expect_scim_error(&scim(&app, "GET", path).send(), 404, None);
    }
    let reply = scim_json(
        &app,
        "PATCH",
        "/Users/missing",
        &json!({"Operations": [{"op": "replace", "value": {"active": false}}]}),
    )
    .send();
    expect_scim_error(&reply, 404, None);
}

// ---- 409 -------------------------------------------------------------------

#[test]
fn a_taken_user_name_is_409_uniqueness_in_any_case() {
    let app = scim_app();
    create_user(&app, "Taken@Example.com");
    for name in [
        "Taken@Example.com",
        "taken@example.com",
        "TAKEN@EXAMPLE.COM",
    ] {
        let reply = scim_json(&app, "POST", "/Users", &json!({"userName": name})).send();
        expect_scim_error(&reply, 409, Some("uniqueness"));
    }
    let other = id_of(&create_user(&app, "other@example.com"));
    let reply = scim_json(
        &app,
        "PATCH",
        &format!("/Users/{other}"),
        &json!({"Operations": [{"op": "replace", "path": "userName", "value": "taken@EXAMPLE.com"}]}),
    )
    .send();
    expect_scim_error(&reply, 409, Some("uniqueness"));
    let list = expect_scim(&scim(&app, "GET", "/Users").send(), 200);
    assert_eq!(list["totalResults"], 2);
}

// ---- 412 -------------------------------------------------------------------

#[test]
fn a_stale_if_match_is_412_and_changes_nothing() {
    let app = scim_app();
    let id = id_of(&create_user(&app, CAROL));
    let keys = keys_of(&app, CAROL, 1);
    let path = format!("/Users/{id}");
    let deactivate = json!({"Operations": [{"op": "replace", "value": {"active": false}}]});
    for reply in [
        scim_json(&app, "PATCH", &path, &deactivate)
            .header("if-match", "W/\"9\"")
            .send(),
        scim_json(
            &app,
            "PUT",
            &path,
            &json!({"userName": CAROL, "active": false}),
        )
        .header("if-match", "\"2\"")
        .send(),
        scim(&app, "DELETE", &path)
            .header("if-match", "W/\"0\"")
            .send(),
    ] {
        expect_scim_error(&reply, 412, None);
    }
    assert_all_verify(&app, &keys);
    assert_can_act(&app, CAROL);
    let ok = scim_json(&app, "PATCH", &path, &deactivate)
        .header("if-match", "W/\"1\"")
        .send();
    assert_eq!(expect_scim(&ok, 200)["meta"]["version"], "W/\"2\"");
    assert_all_revoked(&app, &keys);
}

// ---- 413 -------------------------------------------------------------------

#[test]
fn a_body_over_64_kib_is_413_and_changes_nothing() {
    let app = scim_app();
    let before = app.snapshot();
    let big = json!({"userName": "big@example.com", "displayName": "x".repeat(70 * 1024)});
    for call in [
        scim_json(&app, "POST", "/Users", &big),
        scim_json(&app, "POST", "/Users", &big).chunked(),
    ] {
        expect_scim_error(&call.send(), 413, None);
    }
    assert_eq!(app.snapshot(), before);
    let list = expect_scim(&scim(&app, "GET", "/Users").send(), 200);
    assert_eq!(list["totalResults"], 0);
}

// ---- 503 / a crash, then the identity provider's retry ---------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Fail,
    Crash,
}

/// Entra ID's disable with a fault on the 1st, 2nd, … storage call (until a
/// run in which it never fires); after each, the retry of the same request
/// must finish the removal. Returns the storage calls the request made.
fn sweep(fault: Fault) -> usize {
    let flag = match fault {
        Fault::Fail => "--fail",
        Fault::Crash => "--crash-after",
    };
    for step in 1.. {
        let app = scim_app();
        let id = id_of(&create_user(&app, "leaver@example.com"));
        let keys = keys_of(&app, "leaver@example.com", 3);
        let others = keys_of(&app, ALICE, 1);
        let app = app.restart_with(|c| {
            c.env("SPIN_VARIABLE_SCIM_TOKEN", TOKEN)
                .arg(flag)
                .arg(&format!("*:{step}"))
        });
        let path = format!("/Users/{id}");
        let reply = entra(&app, "PATCH", &path, ENTRA_DISABLE_STRING).send_any_status();
        let log = app.wait_for_log(&format!("PATCH {SCIM}{path} "));
        if !log.contains("fault injected") {
            expect_scim(&reply, 200);
            return step - 1;
        }
        let when = format!("{flag} at step {step}");
        match fault {
            Fault::Fail => {
                expect_scim_error(&reply, 503, None);
            }
            Fault::Crash => assert_eq!(reply.status, 500, "{when}: {}", reply.text()),
        }
        assert_all_verify(&app, &others);
        let retry = expect_scim(
            &entra(&app, "PATCH", &path, ENTRA_DISABLE_STRING).send(),
            200,
        );
        assert_eq!(retry["active"], false, "{when}");
        assert_all_revoked(&app, &keys);
        assert_all_verify(&app, &others);
        assert_removed(&app, "leaver@example.com");
        assert_eq!(audit_total(&app, "action=user.removed"), 1, "{when}");
        assert_eq!(audit_total(&app, "action=key.revoked"), 3, "{when}");
        // And a later retry changes nothing.
        let before = app.snapshot();
        assert_eq!(
            expect_scim(
                &entra(&app, "PATCH", &path, ENTRA_DISABLE_STRING).send(),
                200
            ),
            retry
        );
        assert_eq!(app.snapshot(), before, "{when}");
    }
    unreachable!()
}

#[test]
fn a_storage_failure_at_any_point_is_finished_by_the_retry() {
    if keygate_tests::no_fault_injection() {
        return;
    }
    let calls = sweep(Fault::Fail);
    eprintln!("a SCIM disable with 3 keys: {calls} storage calls, each failed in turn");
    assert!(calls >= 8, "{calls} storage calls?");
}

#[test]
fn a_crash_at_any_point_is_finished_by_the_retry() {
    if keygate_tests::no_fault_injection() {
        return;
    }
    let calls = sweep(Fault::Crash);
    eprintln!("a SCIM disable with 3 keys: {calls} storage calls, a crash after each in turn");
    assert!(calls >= 8, "{calls} storage calls?");
}

// ---- Measurements (not run by default) --------------------------------------

/// Creates `n` keys for `user` through the API (4 at a time); their secrets.
fn create_many(app: &App, user: &str, n: usize) -> Vec<String> {
    let threads = 4;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..n)
                        .step_by(threads)
                        .map(|i| app.create_key_as(user, &format!("bench-{i}")).1)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

/// How many of `secrets` verify and how many are refused as revoked (4 at a time).
fn verify_all(app: &App, secrets: &[String]) -> (usize, usize) {
    let chunk = secrets.len().div_ceil(4).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = secrets
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter().fold((0, 0), |(ok, revoked), secret| {
                        let reply = app.verify(secret);
                        match (reply.status, problem_code(&reply).as_deref()) {
                            (200, _) => (ok + 1, revoked),
                            (401, Some("revoked_key")) => (ok, revoked + 1),
                            other => panic!("verify: {other:?}"),
                        }
                    })
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    })
}

/// `cargo test --release -p keygate-tests --test api_scim -- --ignored --nocapture`
/// (SCIM_BENCH_SIZES, default `1,100,10000`).
#[test]
#[ignore = "a measurement: minutes, prints numbers"]
fn removal_time_through_scim() {
    let sizes: Vec<usize> = std::env::var("SCIM_BENCH_SIZES")
        .unwrap_or_else(|_| "1,100,10000".into())
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect();
    println!("| keys | via | create (s) | SCIM answer | all refused after (s) |");
    println!("|---:|---|---:|---:|---:|");
    for &n in &sizes {
        for via in ["PATCH active=false", "DELETE"] {
            let app = scim_app();
            let user = format!("bench-{n}@example.com");
            let id = id_of(&create_user(&app, &user));
            let started = Instant::now();
            let secrets = create_many(&app, &user, n);
            let created = started.elapsed();
            let started = Instant::now();
            let reply = if via == "DELETE" {
                scim(&app, "DELETE", &format!("/Users/{id}")).send()
            } else {
                patch_active(&app, &id, json!("False"))
            };
            let took = started.elapsed();
            assert!(
                reply.status == 200 || reply.status == 204,
                "{}",
                reply.text()
            );
            let started = Instant::now();
            assert_eq!(verify_all(&app, &secrets), (0, n));
            println!(
                "| {n} | {via} | {:.1} | {:.0} ms | {:.1} |",
                created.as_secs_f64(),
                took.as_secs_f64() * 1e3,
                started.elapsed().as_secs_f64()
            );
        }
    }
}
