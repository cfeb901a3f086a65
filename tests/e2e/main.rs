//! End-to-end tests of tokengate: the real binary, a real JWKS server and a real upstream,
//! all on 127.0.0.1 ephemeral ports. See `support` for the harness.
//!
//! Run with `cargo test -p tokengate --test e2e`.

mod support;

mod auth;
mod config;
mod demo;
mod dpop;
mod exchange;
mod headers;
mod hostile;
mod jwks;
mod lifecycle;
mod limits;
mod mtls;
mod observability;
mod operations;
mod revocation;
mod routing;
mod soak;
