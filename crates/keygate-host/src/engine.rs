//! The process layer: one wasmtime `Engine` and `Linker` for the runner's
//! life, and components compiled once (cached on disk between runs).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::SpinImports;
use crate::state::RequestState;

/// Instances that can be live at once. Requests beyond this wait for a slot
/// (see the HTTP trigger) rather than fail.
pub const MAX_CONCURRENT_INSTANCES: u32 = 256;

/// Memory a freed instance slot keeps: its dirty pages are reset in place
/// (found with `PAGEMAP_SCAN` on Linux 6.7+) instead of `madvise`d away, so
/// the next request in that slot takes no page faults for them.
const KEEP_RESIDENT: usize = 2 << 20;

/// How often the engine's epoch advances: a running guest yields to the
/// runtime at each tick, so a request's time limit can end it (Spin's
/// `DEFAULT_EPOCH_TICK_INTERVAL` is the same).
pub const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(10);

pub fn new_engine(count_instructions: bool) -> Result<Engine> {
    let engine = configured_engine(count_instructions)?;
    let ticker = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    Ok(engine)
}

fn configured_engine(count_instructions: bool) -> Result<Engine> {
    let mut config = Config::new();
    config.consume_fuel(count_instructions);
    // A guest that never returns (a loop) must not keep its slot forever.
    config.epoch_interruption(true);
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_component_instances(MAX_CONCURRENT_INSTANCES)
        .total_core_instances(MAX_CONCURRENT_INSTANCES * 4)
        .total_memories(MAX_CONCURRENT_INSTANCES * 2)
        .total_tables(MAX_CONCURRENT_INSTANCES * 4)
        .max_memory_size(256 << 20)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    match Engine::new(&config) {
        Ok(engine) => Ok(engine),
        Err(e) => {
            // The pool reserves address space up front; where a ulimit forbids
            // that, instantiate on demand instead (slower, same behaviour).
            eprintln!(
                "keygate-host: pooling allocator unavailable ({e}); using on-demand instances"
            );
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Ok(Engine::new(&config)?)
        }
    }
}

/// WASI 0.2, `wasi:http` 0.2 and the Spin interfaces keygate-host provides.
pub fn new_linker(engine: &Engine) -> Result<Linker<RequestState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    SpinImports::add_to_linker::<RequestState, HasSelf<RequestState>>(&mut linker, |state| state)?;
    Ok(linker)
}

/// Compiles a component, or loads the native code a previous run stored for
/// the same bytes and the same engine settings.
pub fn load_component(
    engine: &Engine,
    source: &Path,
    cache_dir: Option<&Path>,
) -> Result<Component> {
    let bytes =
        std::fs::read(source).with_context(|| format!("cannot read {}", source.display()))?;
    let Some(cache_dir) = cache_dir else {
        return Component::new(engine, &bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot compile {}", source.display()));
    };
    let cached = cache_path(engine, cache_dir, &bytes);
    if cached.exists() {
        // SAFETY: the file was written by `Component::serialize` of this
        // program for an engine with the same compatibility hash (part of the
        // file name); wasmtime checks the header again before using it.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(component) => return Ok(component),
            Err(e) => eprintln!(
                "keygate-host: ignoring unusable cache entry {}: {e}",
                cached.display()
            ),
        }
    }
    let component = Component::new(engine, &bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot compile {}", source.display()))?;
    if let Err(e) = store_in_cache(&component, &cached) {
        eprintln!(
            "keygate-host: could not write compile cache {}: {e:#}",
            cached.display()
        );
    }
    Ok(component)
}

fn cache_path(engine: &Engine, cache_dir: &Path, bytes: &[u8]) -> PathBuf {
    let mut hasher = Sha256::new();
    hasher.update(bytes);
    std::hash::Hash::hash(
        &engine.precompile_compatibility_hash(),
        &mut HashWriter(&mut hasher),
    );
    hasher.update(env!("CARGO_PKG_VERSION"));
    let digest = hasher.finalize();
    let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    cache_dir.join(format!("{name}.cwasm"))
}

fn store_in_cache(component: &Component, path: &Path) -> Result<()> {
    let dir = path.parent().expect("cache files live in a folder");
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, component.serialize()?)?;
    // Rename is atomic, so a concurrent runner never reads half a file.
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Feeds `Hash` output into the digest.
struct HashWriter<'a>(&'a mut Sha256);

impl std::hash::Hasher for HashWriter<'_> {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
