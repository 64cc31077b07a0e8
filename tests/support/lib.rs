//! Black-box test support: starts the real `keygate-host` binary on a free
//! 127.0.0.1 port with built `.wasm` components and talks HTTP to it.
//!
//! `./dev test` builds the runner and the components before running the
//! tests; run alone, `cargo test` finds them in `target/` or says what to build.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

pub use serde_json::{Value as Json, json};

/// keygate's HTTP contract from the caller's side (the `App` fixture and client helpers).
pub mod api;
pub mod idp;
/// Real Redis and libSQL servers for the scale-out tests.
pub mod servers;

/// How long a runner may take to start (compiling components included).
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// True (and says so) when the server under test cannot inject storage
/// faults (`--fail`, `--crash-after` are keygate-host's): real Spin, where
/// `tests/real-spin/run.sh` sets `KEYGATE_NO_FAULT_INJECTION`. The fault
/// sweeps then return at once; everything else in their suites runs.
pub fn no_fault_injection() -> bool {
    let off = std::env::var_os("KEYGATE_NO_FAULT_INJECTION").is_some();
    if off {
        eprintln!("skipped: the server under test cannot inject storage faults");
    }
    off
}

/// The `keygate-host` binary of the same profile as this test, or `KEYGATE_HOST_BIN`.
pub fn host_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("KEYGATE_HOST_BIN") {
        return bin.into();
    }
    // target/<profile>/deps/<test-exe> -> target/<profile>/keygate-host
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("keygate-host");
    assert!(
        bin.is_file(),
        "{} is missing: run `./dev test` (it builds the runner first)",
        bin.display()
    );
    bin
}

/// A built component, e.g. `wasm("probe")`.
pub fn wasm(name: &str) -> PathBuf {
    let path = workspace_root().join(format!("target/wasm32-wasip2/release/{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `./dev test` (it builds the components first)",
        path.display()
    );
    path
}

/// The test-only probe app (`tests/fixtures/spin.toml`).
pub fn probe_manifest() -> PathBuf {
    wasm("probe");
    wasm("noop");
    workspace_root().join("tests/fixtures/spin.toml")
}

/// The product's own manifest.
pub fn app_manifest() -> PathBuf {
    wasm("health");
    wasm("console");
    workspace_root().join("spin.toml")
}

/// Compiled components are shared between the tests' runners: each test has
/// its own state, but compiling the same `.wasm` every time only costs time.
pub fn shared_cache_dir() -> PathBuf {
    workspace_root().join("target/keygate-test-cache")
}

/// How to start one runner.
#[derive(Clone)]
pub struct RunnerConfig {
    pub manifest: PathBuf,
    pub state_dir: PathBuf,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
}

impl RunnerConfig {
    /// The probe app with a fresh state dir, the required secret set and a
    /// runtime config that defines the extra `other` store it is granted.
    pub fn probe(state: &tempfile::TempDir) -> Self {
        let runtime_config = state.path().join("runtime-config.toml");
        std::fs::write(
            &runtime_config,
            "[key_value_store.other]\ntype = \"spin\"\npath = \"other_kv.db\"\n",
        )
        .expect("write runtime config");
        Self {
            manifest: probe_manifest(),
            state_dir: state.path().join("state"),
            env: vec![(
                "SPIN_VARIABLE_SECRET_THING".into(),
                "s3cret-probe-value".into(),
            )],
            args: vec![
                "--runtime-config-file".into(),
                runtime_config.display().to_string(),
            ],
        }
    }

    pub fn app(state: &tempfile::TempDir, admin_token: &str) -> Self {
        Self {
            manifest: app_manifest(),
            state_dir: state.path().join("state"),
            env: vec![("SPIN_VARIABLE_ADMIN_TOKEN".into(), admin_token.into())],
            args: vec![],
        }
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Runs with `toml` as the runtime config: written beside the state dir
    /// (`runtime-config.toml`, replacing one written before) and passed with
    /// `--runtime-config-file`, which overrides one given earlier.
    pub fn runtime_config(self, toml: &str) -> Self {
        let file = self.state_dir.with_file_name("runtime-config.toml");
        std::fs::write(&file, toml).expect("write runtime config");
        let file = file.display().to_string();
        self.arg("--runtime-config-file").arg(&file)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(host_binary());
        cmd.arg("up")
            .arg("--manifest")
            .arg(&self.manifest)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(&self.args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        if !self
            .args
            .iter()
            .any(|a| a == "--cache-dir" || a == "--disable-cache")
        {
            cmd.arg("--cache-dir").arg(shared_cache_dir());
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn start(&self) -> Runner {
        Runner::start(self)
    }

    /// Runs a runner that is expected not to start; returns its exit status
    /// and everything it wrote to stderr.
    pub fn fail_to_start(&self) -> (ExitStatus, String) {
        let output = self
            .command()
            .stdin(Stdio::null())
            .output()
            .expect("run keygate-host");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            !stdout.contains("Serving http://"),
            "runner started although it should not have:\n{stdout}"
        );
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// Everything read so far from one of the runner's pipes. Another thread
/// reads the pipe, so a test waits for the line it needs instead of reading
/// once: the runner writing a line does not mean it is here yet.
#[derive(Default)]
struct Captured {
    text: Mutex<String>,
    grown: Condvar,
}

impl Captured {
    fn push(&self, more: &str) {
        self.text.lock().unwrap().push_str(more);
        self.grown.notify_all();
    }

    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// The text once it contains `needle` (panics with the text after
    /// [`START_TIMEOUT`] if it never does).
    fn wait_for(&self, needle: &str, pipe: &str) -> String {
        let (text, timeout) = self
            .grown
            .wait_timeout_while(self.text.lock().unwrap(), START_TIMEOUT, |text| {
                !text.contains(needle)
            })
            .unwrap();
        assert!(!timeout.timed_out(), "no `{needle}` on {pipe}:\n{text}");
        text.clone()
    }
}

/// A running `keygate-host`; stopped (SIGKILL) when dropped.
pub struct Runner {
    child: Child,
    pub base_url: String,
    stdout: Arc<Captured>,
    /// The runner's log.
    stderr: Arc<Captured>,
    /// The threads reading stdout and stderr; they end when the runner exits.
    readers: Vec<thread::JoinHandle<()>>,
    agent: ureq::Agent,
}

impl Runner {
    fn start(config: &RunnerConfig) -> Runner {
        let mut child = config
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn keygate-host");
        let stdout = Arc::new(Captured::default());
        let stderr = Arc::new(Captured::default());
        let (serving_tx, serving_rx) = mpsc::channel();
        let stdout_reader = {
            let pipe = child.stdout.take().unwrap();
            let stdout = stdout.clone();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    stdout.push(&format!("{line}\n"));
                    if let Some(url) = line.strip_prefix("Serving ") {
                        let _ = serving_tx.send(url.trim().to_string());
                    }
                }
            })
        };
        let stderr_reader = {
            let mut pipe = child.stderr.take().unwrap();
            let stderr = stderr.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    stderr.push(&String::from_utf8_lossy(&buf[..n]));
                }
            })
        };
        let base_url = match serving_rx.recv_timeout(START_TIMEOUT) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("keygate-host did not start; stderr:\n{}", stderr.text());
            }
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Runner {
            child,
            base_url,
            stdout,
            stderr,
            readers: vec![stdout_reader, stderr_reader],
            agent,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    pub fn get(&self, path: &str) -> Reply {
        Reply::from(self.agent.get(self.url(path)).call())
    }

    pub fn put(&self, path: &str, body: &[u8]) -> Reply {
        Reply::from(self.agent.put(self.url(path)).send(body))
    }

    pub fn post_json(&self, path: &str, body: &Json) -> Reply {
        Reply::from(
            self.agent
                .post(self.url(path))
                .header("content-type", "application/json")
                .send(body.to_string()),
        )
    }

    pub fn delete(&self, path: &str) -> Reply {
        Reply::from(self.agent.delete(self.url(path)).call())
    }

    /// What the runner has printed to stderr so far (logs). The runner logs a
    /// request before answering it, but this reads the pipe on another
    /// thread: to see a particular line, use [`Runner::wait_for_log`].
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// The log once it contains `needle`.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.stderr.wait_for(needle, "stderr")
    }

    /// What the runner has printed to stdout so far. The runner counts as
    /// started at its `Serving` line; the lines after it may still be on
    /// their way: to see one, use [`Runner::wait_for_stdout`].
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// Stdout once it contains `needle`.
    pub fn wait_for_stdout(&self, needle: &str) -> String {
        self.stdout.wait_for(needle, "stdout")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the runner to exit; returns its status and
    /// its complete stderr.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        assert!(status.expect("run kill").success(), "kill -TERM failed");
        let exit = self.child.wait().expect("wait for keygate-host");
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        (exit, self.stderr())
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, read completely.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// Reads a whole response (any status) as returned by `ureq`.
    pub fn from(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Self {
        let mut response = result.expect("HTTP request to keygate-host failed");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .expect("read body");
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}
