//! Bodies a hostile caller sends: far over the contract's 64 KiB, with and
//! without `Content-Length`, many at once. Each is refused with `413
//! payload_too_large` as soon as it is known to be too large — a declared
//! length before a byte of the body is read, a chunked body once it passes
//! the limit — and the runner's memory stays bounded. Raw sockets: a client
//! that writes the whole body before reading (as most do) would only see
//! the connection closed under it, which HTTP allows.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use keygate_tests::api::*;
use keygate_tests::json;

const MIB: u64 = 1 << 20;
/// What a caller claims or tries to send.
const HOSTILE_BYTES: u64 = 200 * MIB;
/// How much the runner's peak resident memory may grow while it refuses
/// 64 such bodies at once (documented in docs/reliability.md).
const RSS_GROWTH_BOUND: u64 = 64 * MIB;

fn connect(app: &App) -> TcpStream {
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

fn head(method: &str, path: &str, extra: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nhost: keygate\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
         x-acting-user: {OPERATOR}\r\ncontent-type: application/json\r\n{extra}\r\n"
    )
}

/// The status, the headers and the body of the answer (by its
/// `content-length`, or chunked).
fn read_answer(stream: &TcpStream) -> (u16, String, String) {
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status_line:?}"));
    let mut headers = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        headers.push_str(&line);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).expect("chunk size");
            let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).expect("chunk");
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn assert_payload_too_large((status, headers, body): &(u16, String, String)) {
    assert_eq!(*status, 413, "{headers}{body}");
    assert!(headers.contains("application/problem+json"), "{headers}");
    assert!(body.contains("\"payload_too_large\""), "{body}");
}

/// The runner's peak resident memory so far (`VmHWM`), in bytes.
fn peak_rss(app: &App) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", app.pid())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib * 1024
}

/// Sends a chunked body of up to [`HOSTILE_BYTES`] in 1 MiB chunks while the
/// answer is read; returns the answer and how much the server let through
/// before it stopped reading.
fn send_chunked(app: &App, method: &str, path: &str) -> ((u16, String, String), u64) {
    let stream = connect(app);
    let mut writer = stream.try_clone().unwrap();
    writer
        .write_all(head(method, path, "transfer-encoding: chunked\r\n").as_bytes())
        .unwrap();
    let sent = AtomicU64::new(0);
    let answer = thread::scope(|s| {
        s.spawn(|| {
            let chunk = vec![b' '; MIB as usize];
            while sent.load(Ordering::SeqCst) < HOSTILE_BYTES {
                let framed =
                    [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                if writer.write_all(&framed).is_err() {
                    return;
                }
                sent.fetch_add(MIB, Ordering::SeqCst);
            }
            let _ = writer.write_all(b"0\r\n\r\n");
        });
        let answer = read_answer(&stream);
        // Closing our side ends the writer if the server has not.
        let _ = stream.shutdown(std::net::Shutdown::Both);
        answer
    });
    (answer, sent.load(Ordering::SeqCst))
}

/// Over the contract's 64 KiB, under the runner's own cap: the component
/// refuses it.
const DECLARED_BYTES: u64 = MIB / 2;

#[test]
fn a_declared_length_over_64_kib_is_refused_before_a_byte_of_the_body_is_sent() {
    let app = App::start();
    for (method, path) in [
        ("POST", "/api/keys"),
        ("POST", "/api/verify"),
        ("GET", "/api/verify"),
        ("POST", "/webhooks/user-removed"),
        ("GET", "/api/keys"),
    ] {
        let stream = connect(&app);
        let mut writer = stream.try_clone().unwrap();
        let extra = format!("content-length: {DECLARED_BYTES}\r\n");
        writer
            .write_all(head(method, path, &extra).as_bytes())
            .unwrap();
        // Not one byte of the body: the answer must come anyway.
        let answer = read_answer(&stream);
        assert_payload_too_large(&answer);
        assert!(
            answer.2.contains("64 KiB"),
            "the component's answer: {}",
            answer.2
        );
    }
    let (_, secret) = app.create_key("after-the-flood");
    expect_json(&app.verify(&secret), 200);
}

/// Past the runner's `--max-request-body` (1 MiB by default) the runner
/// answers before any component runs, in the contract's words.
#[test]
fn a_declared_length_past_the_runners_cap_is_refused_by_the_runner() {
    let app = App::start();
    let stream = connect(&app);
    let mut writer = stream.try_clone().unwrap();
    let extra = format!("content-length: {HOSTILE_BYTES}\r\n");
    writer
        .write_all(head("POST", "/api/keys", &extra).as_bytes())
        .unwrap();
    let answer = read_answer(&stream);
    assert_payload_too_large(&answer);
    assert!(answer.2.contains("--max-request-body"), "{}", answer.2);
    assert!(
        answer.1.to_ascii_lowercase().contains("connection: close"),
        "{}",
        answer.1
    );
    let (_, secret) = app.create_key("after-the-flood");
    expect_json(&app.verify(&secret), 200);
}

#[test]
fn a_chunked_body_is_read_only_up_to_the_limit() {
    let app = App::start();
    for (method, path) in [
        ("POST", "/api/keys"),
        ("POST", "/api/verify"),
        ("POST", "/webhooks/user-removed"),
    ] {
        let (answer, sent) = send_chunked(&app, method, path);
        assert_payload_too_large(&answer);
        assert!(
            sent < HOSTILE_BYTES / 4,
            "{method} {path}: the server read on to {} MiB",
            sent / MIB
        );
    }
    let (_, secret) = app.create_key("after-the-flood");
    expect_json(&app.verify(&secret), 200);
}

#[test]
fn sixty_four_large_bodies_at_once_leave_memory_bounded_and_the_service_up() {
    let app = App::start();
    let (_, secret) = app.create_key("steady");
    let before = peak_rss(&app);
    thread::scope(|s| {
        for n in 0..64 {
            let app = &app;
            s.spawn(move || {
                let path = ["/api/verify", "/api/keys"][n % 2];
                let (answer, _) = send_chunked(app, "POST", path);
                assert_payload_too_large(&answer);
            });
        }
    });
    let growth = peak_rss(&app).saturating_sub(before);
    assert!(
        growth < RSS_GROWTH_BOUND,
        "peak RSS grew by {} MiB",
        growth / MIB
    );
    expect_json(&app.verify(&secret), 200);
    let created = app.create(ALICE, &json!({ "name": "after" }));
    assert_eq!(created.status, 201, "{}", created.text());
}
