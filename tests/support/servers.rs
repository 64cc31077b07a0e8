//! Real backing services for the scale-out tests: a `redis-server` and a
//! libSQL server (`sqld`), each on a free 127.0.0.1 port with its own data
//! folder, killed when dropped. A missing binary panics with where to get
//! it: a test that needs these servers never passes without them.
//!
//! - `redis-server`: `$REDIS_SERVER_BIN`, else Debian's `/usr/bin/redis-server`
//!   (`apt-get install redis-server`), else `redis-server` on `PATH`.
//! - `sqld`: `$SQLD_BIN`, else `$HOME/libsql/bin/sqld` (built from
//!   tursodatabase/libsql: `cargo build --release -p libsql-server --bin sqld`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Json, json};

/// How long a server may take to answer after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A port nothing listens on right now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `$var`, else the first of `candidates` that exists, else a panic naming
/// what to install.
fn binary(var: &str, candidates: &[PathBuf], what: &str) -> PathBuf {
    if let Some(bin) = std::env::var_os(var) {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "${var} = {} is not a file", bin.display());
        return bin;
    }
    candidates
        .iter()
        .find(|c| c.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{what} not found (looked at {candidates:?}); install it or set ${var} \
                 — the scale-out tests need the real server"
            )
        })
}

/// One server process, its log file and data folder.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(mut command: Command, log: &Path) -> Process {
        let out = std::fs::File::create(log).expect("create server log");
        let err = out.try_clone().expect("clone log handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Process {
            child,
            log: log.to_path_buf(),
        }
    }

    /// Waits until `ready()` is true; panics with the server's log if it
    /// exits or takes longer than [`READY_TIMEOUT`].
    fn wait_until(&mut self, what: &str, ready: impl Fn() -> bool) {
        let started = Instant::now();
        while !ready() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{what} exited ({status}):\n{}", self.log_text());
            }
            if started.elapsed() > READY_TIMEOUT {
                panic!(
                    "{what} not ready after {READY_TIMEOUT:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// Redis

/// A `redis-server` with nothing persisted (`--save '' --appendonly no`).
pub struct RedisServer {
    /// Killed when dropped.
    _process: Process,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let bin = binary(
            "REDIS_SERVER_BIN",
            &[
                "/usr/bin/redis-server".into(),
                "/usr/local/bin/redis-server".into(),
            ],
            "redis-server",
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut command = Command::new(bin);
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path());
        let mut process = Process::spawn(command, &dir.path().join("redis.log"));
        process.wait_until(
            &format!("redis-server on port {port}"),
            || matches!(try_command(port, &[b"PING"]), Ok(Resp::Simple(s)) if s == "PONG"),
        );
        RedisServer {
            _process: process,
            port,
            _dir: dir,
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs one command over a fresh connection; panics on a network error.
    pub fn command(&self, args: &[&[u8]]) -> Resp {
        try_command(self.port, args).unwrap_or_else(|e| panic!("Redis {args:?}: {e}"))
    }

    /// `GET key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.command(&[b"GET", key.as_bytes()]) {
            Resp::Bulk(value) => value,
            other => panic!("GET {key}: {other:?}"),
        }
    }

    /// `KEYS pattern`, sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        match self.command(&[b"KEYS", pattern.as_bytes()]) {
            Resp::Array(Some(items)) => {
                let mut keys: Vec<String> = items
                    .into_iter()
                    .map(|item| match item {
                        Resp::Bulk(Some(k)) => String::from_utf8(k).expect("UTF-8 key"),
                        other => panic!("KEYS item {other:?}"),
                    })
                    .collect();
                keys.sort();
                keys
            }
            other => panic!("KEYS {pattern}: {other:?}"),
        }
    }
}

/// A RESP reply.
#[derive(Debug, PartialEq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

fn try_command(port: u16, args: &[&[u8]]) -> std::io::Result<Resp> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg);
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request)?;
    read_resp(&mut BufReader::new(stream))
}

fn read_resp(reader: &mut impl BufRead) -> std::io::Result<Resp> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end_matches("\r\n");
    let bad = || std::io::Error::other(format!("bad RESP line {line:?}"));
    let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
    let number = || rest.parse::<i64>().map_err(|_| bad());
    Ok(match kind {
        "+" => Resp::Simple(rest.to_string()),
        "-" => Resp::Error(rest.to_string()),
        ":" => Resp::Integer(number()?),
        "$" if number()? < 0 => Resp::Bulk(None),
        "$" => {
            let mut value = vec![0; number()? as usize + 2];
            reader.read_exact(&mut value)?;
            value.truncate(value.len() - 2);
            Resp::Bulk(Some(value))
        }
        "*" if number()? < 0 => Resp::Array(None),
        "*" => Resp::Array(Some(
            (0..number()?)
                .map(|_| read_resp(reader))
                .collect::<std::io::Result<_>>()?,
        )),
        _ => return Err(bad()),
    })
}

// ---------------------------------------------------------------------------
// sqld

/// A libSQL server (`sqld`, standalone, no auth) answering Hrana over HTTP.
pub struct Sqld {
    process: Option<Process>,
    port: u16,
    dir: tempfile::TempDir,
    agent: ureq::Agent,
}

impl Sqld {
    pub fn start() -> Sqld {
        let mut sqld = Sqld {
            process: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
        };
        sqld.restart();
        sqld
    }

    /// `http://127.0.0.1:<port>`, what `[sqlite_database.x] url` takes.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server (an outage); [`Sqld::restart`] brings it back.
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Starts the server (again) on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let bin = binary("SQLD_BIN", &[home.join("libsql/bin/sqld")], "sqld");
        let mut command = Command::new(bin);
        command
            .arg("--db-path")
            .arg(self.dir.path().join("data.sqld"))
            .arg("--http-listen-addr")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--no-welcome")
            .current_dir(self.dir.path());
        let mut process = Process::spawn(command, &self.dir.path().join("sqld.log"));
        let health = format!("{}/health", self.url());
        let agent = self.agent.clone();
        process.wait_until(&format!("sqld at {}", self.url()), || {
            agent
                .get(&health)
                .call()
                .is_ok_and(|r| r.status().is_success())
        });
        self.process = Some(process);
    }

    /// Runs one statement on a fresh stream (closed in the same request):
    /// the `result` object, or the server's `error` object.
    pub fn execute(&self, sql: &str, args: &[Json]) -> Result<Json, Json> {
        let body = json!({"baton": null, "requests": [
            {"type": "execute", "stmt": {"sql": sql, "args": args, "want_rows": true}},
            {"type": "close"},
        ]});
        let mut response = self
            .agent
            .post(format!("{}/v2/pipeline", self.url()))
            .header("content-type", "application/json")
            .send(body.to_string())
            .unwrap_or_else(|e| panic!("sqld {sql}: {e}"));
        let text = response.body_mut().read_to_string().expect("read body");
        assert!(
            response.status().is_success(),
            "sqld {sql}: {}: {text}",
            response.status()
        );
        let mut reply: Json = serde_json::from_str(&text).expect("JSON from sqld");
        let first = reply["results"][0].take();
        match first["type"].as_str() {
            Some("ok") => Ok(first["response"]["result"].clone()),
            _ => Err(first["error"].clone()),
        }
    }

    /// The rows of a query, each value as Hrana's JSON (`{"type", "value"}`).
    #[track_caller]
    pub fn rows(&self, sql: &str, args: &[Json]) -> Vec<Vec<Json>> {
        let result = self
            .execute(sql, args)
            .unwrap_or_else(|e| panic!("sqld {sql}: {e}"));
        serde_json::from_value(result["rows"].clone()).expect("rows")
    }

    /// A single text value: `{"type": "text", "value": text}`.
    pub fn text(text: &str) -> Json {
        json!({"type": "text", "value": text})
    }

    /// What sqld has logged so far.
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(Process::log_text)
            .unwrap_or_default()
    }
}
