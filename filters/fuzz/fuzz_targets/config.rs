//! The configuration loader (`gateway/src/config`, compiled in here by path: it uses only
//! `filters`, serde, toml, humantime, tracing-subscriber's filter syntax and Pingora's
//! OpenSSL re-export, so the gateway binary needs no library target).
//!
//! Run it without a network (`run.sh` uses `unshare -n`): the loader resolves host names.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../../gateway/src/config/mod.rs"]
mod config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = config::from_str(Path::new("/nonexistent/tokengate-fuzz/tokengate.toml"), text);
    }
});
