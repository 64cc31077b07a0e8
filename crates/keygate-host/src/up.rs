//! `keygate-host up`: the flags of `spin up` that apply to this app.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::app::{self, LoadOptions};
use crate::engine;
use crate::faults::Faults;
use crate::http_trigger::HttpTrigger;
use crate::manifest;
use crate::variables::VariableSources;

#[derive(Debug, Parser)]
#[command(
    name = "keygate-host",
    version,
    about = "Run a Spin app's HTTP components locally on wasmtime",
    // A flag given twice takes its last value, so wrappers can override.
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the app (like `spin up`).
    Up(UpArgs),
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The application manifest.
    #[arg(
        long = "manifest",
        short = 'f',
        visible_alias = "from",
        default_value = "spin.toml"
    )]
    pub manifest: PathBuf,
    /// Address to listen on; port 0 picks a free one (printed at start-up).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Where default key-value and SQLite data live [default: `.spin` beside the manifest].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Spin runtime-config TOML: stores and databases of `type = "spin"`
    /// (local SQLite), `"redis"` (key-value) and `"libsql"` (SQLite, http:// only).
    #[arg(long)]
    pub runtime_config_file: Option<PathBuf>,
    /// Run each component's build command before starting.
    #[arg(long)]
    pub build: bool,
    /// Set an application variable: `name=value` (overrides SPIN_VARIABLE_*).
    #[arg(long = "variable", value_name = "NAME=VALUE")]
    pub variables: Vec<String>,
    /// Compile components on every start instead of using the compile cache.
    #[arg(long)]
    pub disable_cache: bool,
    /// Compile cache folder [default: `<state-dir>/cache`].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// For tests: make one storage call fail, e.g. `kv.set:2` (the 2nd
    /// kv.set), `sqlite.execute:~INSERT INTO api_keys` (the first statement
    /// containing that text), `*:5` (the 5th storage call of any kind).
    /// Calls: kv.get, kv.set, kv.delete, kv.exists, kv.get-keys,
    /// sqlite.execute, *. Each rule fires once. Also `KEYGATE_FAULTS`.
    #[arg(long = "fail", value_name = "CALL:N|CALL:~TEXT")]
    pub fail: Vec<String>,
    /// For tests: let that storage call succeed, then trap the request (a
    /// crash mid-operation: 500, nothing after it runs). Same syntax as --fail.
    #[arg(long = "crash-after", value_name = "CALL:N|CALL:~TEXT")]
    pub crash_after: Vec<String>,
    /// For benchmarks: log how many Wasm instructions each request's guest
    /// ran (wasmtime fuel): a count, which unlike a time does not move with
    /// the machine's load. Costs some speed; compiled separately in the cache.
    #[arg(long)]
    pub count_instructions: bool,
    /// For tests and benchmarks: log every SQLite statement a component runs
    /// (the text, never its parameters), with its connection and the
    /// `synchronous` level it ran at.
    #[arg(long)]
    pub trace_sql: bool,
    /// How long one request may take, guest and body together, before the
    /// runner ends it with a `500` and frees its instance slot (seconds).
    /// Spin 4's `--request-timeout` applies only to WASIp3 components; for
    /// these WASIp2 components it has no limit.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub request_timeout: f64,
    /// A second line behind the components' own limits: a request whose
    /// `Content-Length` exceeds this is answered `413` by the runner, before
    /// any component runs (bytes).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub max_request_body: u64,
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Up(args) => up(args),
    }
}

fn up(args: UpArgs) -> Result<()> {
    let started = Instant::now();
    let app = manifest::load(&args.manifest)?;
    if args.build {
        build(&app)?;
    }
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| app.base_dir.join(".spin"));
    let cache_dir = (!args.disable_cache).then(|| {
        args.cache_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("cache"))
    });
    let faults = Faults::from_flags(
        &args.fail,
        &args.crash_after,
        std::env::var("KEYGATE_FAULTS").ok().as_deref(),
    )?
    .map(Arc::new);
    if let Some(faults) = &faults {
        for rule in faults.rules() {
            eprintln!("keygate-host: warning: fault injection on: {rule}");
        }
    }
    let options = LoadOptions {
        state_dir,
        runtime_config_file: args.runtime_config_file.clone(),
        variables: VariableSources::from_process(parse_variable_flags(&args.variables)?),
        cache_dir,
        faults,
        trace_sql: args.trace_sql,
    };

    // The runtime comes first: a Redis store connects while the app loads,
    // and its connection's tasks must live on the runtime that serves.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let engine = engine::new_engine(args.count_instructions)?;
    let linker = engine::new_linker(&engine)?;
    let loaded = {
        let _entered = runtime.enter();
        Arc::new(app::load(&engine, &linker, &app, &options)?)
    };
    for warning in &loaded.warnings {
        eprintln!("keygate-host: warning: {warning}");
    }

    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("--listen {}: cannot listen", args.listen))?;
        let listen = listener.local_addr()?;
        print_banner(&loaded, listen);
        eprintln!(
            "keygate-host: app `{}` ready in {} ms",
            loaded.name,
            started.elapsed().as_millis()
        );
        HttpTrigger::new(
            loaded,
            listen,
            args.count_instructions,
            std::time::Duration::try_from_secs_f64(args.request_timeout)
                .context("--request-timeout must be a positive number of seconds")?,
            args.max_request_body,
        )
        .serve(listener, shutdown_signal())
        .await
    })
}

fn print_banner(app: &app::LoadedApp, listen: SocketAddr) {
    use std::io::Write;
    let mut out = String::new();
    out.push_str(&format!("\nServing http://{listen}\nAvailable Routes:\n"));
    for (route, component) in app.router.describe() {
        out.push_str(&format!("  {component}: http://{listen}{route}\n"));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn parse_variable_flags(flags: &[String]) -> Result<HashMap<String, String>> {
    flags
        .iter()
        .map(|flag| match flag.split_once('=') {
            Some((name, value)) => Ok((name.trim().to_string(), value.to_string())),
            None => bail!("--variable {flag:?}: expected NAME=VALUE"),
        })
        .collect()
}

/// Runs each component's `[component.x.build]` commands, as `spin build`.
fn build(app: &manifest::App) -> Result<()> {
    for component in &app.components {
        let Some(build) = &component.build else {
            continue;
        };
        let workdir = match &build.workdir {
            Some(dir) => app.base_dir.join(dir),
            None => app.base_dir.clone(),
        };
        for command in build.command.commands() {
            eprintln!("Building component {} with `{command}`", component.id);
            let status = shell(command, &workdir).with_context(|| {
                format!("component.{}.build: cannot run `{command}`", component.id)
            })?;
            if !status.success() {
                bail!(
                    "component.{}.build: `{command}` failed ({status})",
                    component.id
                );
            }
        }
    }
    eprintln!("Finished building all Spin components");
    Ok(())
}

fn shell(command: &str, workdir: &Path) -> std::io::Result<std::process::ExitStatus> {
    #[cfg(unix)]
    let mut cmd = std::process::Command::new("sh");
    #[cfg(unix)]
    cmd.arg("-c");
    #[cfg(windows)]
    let mut cmd = std::process::Command::new("cmd");
    #[cfg(windows)]
    cmd.arg("/C");
    cmd.arg(command).current_dir(workdir).status()
}
