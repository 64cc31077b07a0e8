//! Micro-benchmarks of verify's pure steps: what a request costs before any
//! storage is touched (`bench/suite.sh` prints these beside the load numbers).

use criterion::{Criterion, criterion_group, criterion_main};
use keygate::ApiKey;
use keygate::webhook::{WebhookHeaders, WebhookSecret, verify_signature};
use std::hint::black_box;

fn key(c: &mut Criterion) {
    let valid = ApiKey::generate().expect("OS randomness");
    let secret = valid.expose_secret().to_owned();
    // The same key with its last checksum character changed.
    let mut mistyped = secret.clone();
    let last = mistyped.pop().expect("non-empty");
    mistyped.push(if last == 'A' { 'B' } else { 'A' });

    c.bench_function("key/parse_valid", |b| {
        b.iter(|| ApiKey::parse(black_box(&secret)))
    });
    c.bench_function("key/parse_bad_checksum", |b| {
        b.iter(|| ApiKey::parse(black_box(&mistyped)))
    });
    c.bench_function("key/hash_sha256", |b| b.iter(|| black_box(&valid).hash()));
    c.bench_function("key/generate", |b| b.iter(ApiKey::generate));
}

fn webhook(c: &mut Criterion) {
    let secret = WebhookSecret::parse(Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        .expect("a valid secret");
    let body = br#"{"type":"user.removed","timestamp":"2026-11-27T00:00:00Z","data":{"user_id":"floris@example.com"}}"#;
    let now = 1_795_000_000;
    let signature = secret.sign("msg_1", now, body);
    let timestamp = now.to_string();
    let headers = WebhookHeaders {
        id: Some("msg_1"),
        timestamp: Some(&timestamp),
        signature: Some(&signature),
    };
    c.bench_function("webhook/verify_signature", |b| {
        b.iter(|| verify_signature(&secret, black_box(&headers), black_box(body), now))
    });
}

criterion_group!(benches, key, webhook);
criterion_main!(benches);
