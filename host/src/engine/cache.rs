//! Compiled components on disk, so a restart does not recompile.
//!
//! Keyed by the wasm's sha256 and the engine's compatibility hash (wasmtime
//! version and compilation settings). Written atomically into a directory only
//! this user can write: loading a cached file runs it as native code.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct CompiledCache {
    dir: PathBuf,
}

/// Whether a component came from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheUse {
    Hit,
    Compiled,
}

/// Feeds `Hash` output into sha256, which, unlike `DefaultHasher`, is stable.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        unreachable!("only the digest is used")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

pub fn engine_fingerprint(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(hasher.0.finalize())[..16].to_string()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl CompiledCache {
    pub fn new(dir: PathBuf) -> std::io::Result<Self> {
        crate::sys::create_private_dir(&dir)?;
        Ok(CompiledCache { dir })
    }

    pub fn path_for(&self, engine: &Engine, wasm_sha256: &str) -> PathBuf {
        self.dir.join(format!(
            "{wasm_sha256}-{}.cwasm",
            engine_fingerprint(engine)
        ))
    }

    /// The compiled component for `wasm`, from the cache when it has a usable copy.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        wasm_sha256: &str,
    ) -> wasmtime::Result<(Component, CacheUse)> {
        let path = self.path_for(engine, wasm_sha256);
        if path.exists() {
            // SAFETY: the file was written by `store` below into a directory
            // created 0700 for this user, under a name that binds it to this
            // wasm and this engine's settings; wasmtime checks its header.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheUse::Hit)),
                Err(error) => tracing::warn!(
                    path = %path.display(),
                    "ignoring unusable compiled component: {error:#}"
                ),
            }
        }
        let compiled = engine.precompile_component(wasm);
        crate::sys::memory::release_free_memory();
        let compiled = compiled?;
        Ok((keep(engine, &path, &compiled)?, CacheUse::Compiled))
    }
}

/// Write `compiled` to the cache and map it from there, as a restart
/// would: its code is then pages of a file, shared and reclaimable,
/// rather than a private copy held until remedy stops. Where it cannot
/// be written or read back, the copy in memory is used.
fn keep(engine: &Engine, path: &Path, compiled: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY (both): `compiled` was just made by this engine, and the
    // file was just written from it into this user's private directory.
    let mapped = store(path, compiled)
        .map_err(wasmtime::Error::from)
        .and_then(|()| unsafe { Component::deserialize_file(engine, path) });
    mapped.or_else(|error| {
        tracing::warn!(path = %path.display(), "cannot cache compiled component: {error:#}");
        unsafe { Component::deserialize(engine, compiled) }
    })
}

fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
