//! The gateway's integration tests, in one test binary: each module drives the real
//! `palisade` binary (or its tools) over loopback; `support` starts gateways, routers and
//! servers for them, `interop` the real peers (Prosody, slixmpp, OpenSSL, Prometheus' parsers).
//!
//! Run one area with a filter: `cargo test --test it gateway_tls::`.

mod admin_endpoint;
mod admin_metrics;
mod admin_status_page;
mod check_config_cli;
mod cli_operator;
mod gateway_backpressure;
mod gateway_hostile;
mod gateway_idle;
mod gateway_lifecycle;
mod gateway_listeners;
mod gateway_logging;
mod gateway_outages;
mod gateway_reload;
mod gateway_semantics;
mod gateway_smoke;
mod gateway_soak;
mod gateway_spool;
mod gateway_systemd;
mod gateway_tls;
mod interop;
mod interop_prosody;
mod interop_slixmpp;
mod layout;
mod policy_hot_path_alloc;
mod policy_seed_examples;
mod prosody_module;
mod reconciliation;
mod support;
mod tools_sim_load;
mod troubleshoot;
mod tuning_cli;
mod tuning_presets;
mod tuning_tables;
