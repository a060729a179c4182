#![allow(unreachable_pub, clippy::unwrap_used)]

//! One test binary: every test starts the real candado binary on 127.0.0.1 with certificates
//! generated at test time and talks to it with real clients (curl, openssl, rustls).

mod support;

mod acme;
mod app_frameworks;
mod auth;
mod balancing;
mod browser;
mod cert_commands;
mod certificates;
mod check;
mod cluster;
mod compression;
mod config_files;
mod crash_safe;
mod doctor;
mod first_hour;
mod first_hour_flags;
mod first_hour_messages;
mod h2spec;
mod hardening;
mod hardening_requests;
mod hot_files;
mod http2;
mod http3;
mod keep_alive;
mod lan;
mod local_lifetimes;
mod mtls;
mod observe;
mod proxy;
mod python_apps;
mod redirect;
mod reload;
mod service;
mod sni;
mod stalls;
mod static_files;
mod tls;
mod tunnel;
