//! Named defaults, with their units in the type. Every limit here is a
//! deliberate choice; the comment says what it is compared with.

use std::path::PathBuf;
use std::time::Duration;

/// Port of the HTTPS listener when no config says otherwise (unprivileged).
pub(crate) const HTTPS_PORT: u16 = 8443;
/// Port of the HTTP→HTTPS redirect listener in the no-config mode.
pub(crate) const REDIRECT_PORT: u16 = 8080;
/// `--lan`: port of the plain-HTTP onboarding page (the LAN CA and instructions) on the LAN
/// addresses. Not the redirect port: the app behind `proxy` often has 8080 itself.
pub(crate) const LAN_ONBOARDING_PORT: u16 = 8880;
/// `--lan`: how often the machine's addresses are read again (a DHCP renewal or a new Wi-Fi
/// gets a fresh certificate and listeners within this time).
pub(crate) const LAN_ADDRESS_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// `--lan`: requests one client may make to the onboarding page per minute (a phone needs a
/// handful); beyond it, 429.
pub(crate) const LAN_ONBOARDING_REQUESTS_PER_MINUTE: u32 = 60;
/// `--lan`: onboarding connections open at once, over all clients.
pub(crate) const LAN_ONBOARDING_MAX_CONNECTIONS: usize = 32;
/// `--lan`: an onboarding connection is closed after this long, whatever it is doing.
pub(crate) const LAN_ONBOARDING_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// PyServe's own default port (`server.port`).
pub(crate) const PYSERVE_PORT: u16 = 8000;
/// PyServe's default static folder (`http.static_dir`).
pub(crate) const PYSERVE_STATIC_DIR: &str = "./static";
/// PyServe's default config file (`-c`).
pub(crate) const PYSERVE_CONFIG_FILE: &str = "config.yaml";

/// Time for a client to finish the TLS handshake after connecting (nginx: 60 s, shared with
/// its header timeout; a real client needs well under a second).
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to receive a request's headers. For HTTP/1.1 this also bounds the wait for the next
/// request on a kept-alive connection (hyper starts the clock when it starts reading).
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection with no request in flight and no bytes moving is closed after this long
/// (nginx keep-alive: 75 s).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// A response (static or proxied, HTTP/1.1 or an HTTP/2 stream) whose client takes none of
/// it for this long is aborted, releasing its file or upstream (nginx `send_timeout`: 60 s).
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// An upgraded connection (WebSocket over HTTP/1.1 or RFC 8441) with no byte moving either way
/// for this long is closed (nginx `proxy_read_timeout` would close it after 60 s; chat
/// clients that ping less often than that are common, so 10 min).
pub(crate) const UPGRADE_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long in-flight requests may take to finish after SIGTERM/SIGINT.
pub(crate) const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head accepted, in bytes (Caddy: 16 KiB; nginx 4 × 8 KiB). Larger gets 431.
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Longest request target accepted, in bytes (nginx: 8 KiB, its request-line buffer).
/// Longer gets 414.
pub(crate) const MAX_URI_BYTES: usize = 8 * 1024;
/// Most connections served at once; further clients wait in the kernel's accept queue.
pub(crate) const MAX_CONNECTIONS: usize = 10_000;
/// Most concurrent HTTP/2 streams per connection (nginx: 128).
pub(crate) const MAX_H2_STREAMS: u32 = 128;
/// Most concurrent HTTP/3 request streams per QUIC connection (as for HTTP/2; nginx's
/// `http3_max_concurrent_streams`: 128).
pub(crate) const MAX_H3_STREAMS: u32 = 128;
/// Most unidirectional streams a QUIC client may open at once: HTTP/3 needs three (control,
/// QPACK encoder and decoder); the rest is room for GREASE and extensions.
pub(crate) const MAX_H3_UNI_STREAMS: u32 = 16;
/// While more QUIC handshakes than this are in progress, a new client must first prove that
/// it owns its address with a Retry (RFC 9000 §8.1): a spoofed flood then costs one packet,
/// not a handshake. Tests lower it with CANDADO_QUIC_RETRY_ABOVE.
pub(crate) const QUIC_RETRY_ABOVE_HANDSHAKES: usize = 64;
/// How long browsers remember the `Alt-Svc: h3` advertisement (Caddy and Cloudflare: 1 day).
pub(crate) const ALT_SVC_MAX_AGE: Duration = Duration::from_secs(86_400);

/// Static files up to this size are kept in memory with their ready headers, per site (nginx
/// `open_file_cache` keeps descriptors and metadata; h2o and Caddy lean on the page cache).
pub(crate) const HOT_FILE_MAX_BYTES: u64 = 64 * 1024;
/// The most memory the hot files of one site may take, and the most of them kept.
pub(crate) const HOT_FILES_MAX_BYTES: usize = 32 * 1024 * 1024;
pub(crate) const HOT_FILES_MAX_ENTRIES: usize = 4096;
/// How long a hot file is served without looking at the disk again: an edited, replaced or
/// removed file is seen at most this late (nginx `open_file_cache_valid`: 60 s).
pub(crate) const HOT_FILE_VALID: Duration = Duration::from_secs(1);

/// HSTS max-age (one year, what preload lists require at minimum).
pub(crate) const HSTS_MAX_AGE: Duration = Duration::from_secs(31_536_000);
/// HSTS preload lists require at least this max-age.
pub(crate) const HSTS_PRELOAD_MIN_AGE: Duration = Duration::from_secs(31_536_000);
/// Referrer-Policy sent by default (the browsers' own default, made explicit).
pub(crate) const REFERRER_POLICY: &str = "strict-origin-when-cross-origin";

/// Responses smaller than this are sent as they are: a compressed frame saves less than its
/// own overhead and a round of CPU (Caddy: 512 B; nginx `gzip_min_length`: 20 B).
pub(crate) const COMPRESS_MIN_BYTES: u64 = 1024;
/// How much input one poll of a compressed body compresses before it lets other tasks run:
/// about 0.6 ms of brotli-4 on one core, far less for zstd and gzip.
pub(crate) const COMPRESS_POLL_BUDGET: usize = 32 * 1024;
/// On-the-fly compression levels, chosen for speed over the last percent of size (README,
/// "Compression", has the cost per MB of each level on a JS bundle): zstd 3 (its own default,
/// ~4 ms of CPU per MB); brotli 4 (~18 ms/MB, the size of gzip 6; 5 saves 7 % more for 50 %
/// more CPU, 11 costs 60 times as much); gzip 5 (~18 ms/MB, within 1 % of gzip 6's size for
/// a third less CPU).
pub(crate) const ZSTD_LEVEL: i32 = 3;
pub(crate) const BROTLI_LEVEL: i32 = 4;
pub(crate) const GZIP_LEVEL: i32 = 5;

/// How often certificate files are checked for changes.
pub(crate) const CERT_WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// How often `serve` checks whether its local-CA leaves need reissuing (at a third of their
/// 365 days left, so hourly is plenty). Tests shorten it with CANDADO_LOCAL_CERT_CHECK_SECS.
pub(crate) const LOCAL_CERT_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// How often served certificates' expiry is checked (and the metrics file rewritten).
pub(crate) const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// Warn when a served certificate expires within this long.
pub(crate) const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// Time to open a TCP (and TLS) connection to an upstream (Caddy: 3 s).
pub(crate) const PROXY_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time for an upstream to send its response headers before the client gets 504 (nginx: 60 s,
/// too short for the LLM back ends behind Open WebUI, which often think longer before their
/// first byte).
pub(crate) const PROXY_RESPONSE_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest request body forwarded (nginx: 1 MB, too small for uploads to apps like Open WebUI).
pub(crate) const MAX_BODY_BYTES: u64 = 100 * 1024 * 1024;
/// An upstream that refused a connection is skipped for this long.
pub(crate) const UPSTREAM_DOWN_FOR: Duration = Duration::from_secs(10);
/// Idle upstream connections kept per host for reuse.
pub(crate) const UPSTREAM_IDLE_PER_HOST: usize = 256;
/// Active health checks run this often unless configured.
pub(crate) const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// A health check that takes longer than this fails.
pub(crate) const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Let's Encrypt's production ACME directory: where `certificate: acme` gets certificates.
pub(crate) const ACME_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (`--acme-staging`): untrusted certificates, high limits.
pub(crate) const ACME_STAGING_DIRECTORY: &str =
    "https://acme-staging-v02.api.letsencrypt.org/directory";
/// First wait after a failed ACME attempt; it doubles each time. Starting at 3 min keeps a
/// failing name at 5 failed validations in its first hour, Let's Encrypt's per-hour limit.
pub(crate) const ACME_RETRY_FIRST: Duration = Duration::from_secs(180);
/// Longest wait between failed ACME attempts (Caddy: 1 day; a shorter cap recovers sooner).
pub(crate) const ACME_RETRY_MAX: Duration = Duration::from_secs(6 * 3600);
/// How long one issuance (order, challenges, validation, download) may take in all.
pub(crate) const ACME_ORDER_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a stored certificate's renewal time is reconsidered when the CA offers ARI
/// and gives no Retry-After of its own (RFC 9773 §4.3.2 suggests hours, not minutes).
pub(crate) const ACME_ARI_RECHECK: Duration = Duration::from_secs(6 * 3600);
/// Time to connect to and hear from the ACME server per request.
pub(crate) const ACME_HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A tunnel connection with no byte moving either way for this long is closed (nginx stream
/// `proxy_timeout`: 10 min; stunnel's TIMEOUTidle: 12 h, too long to notice dead peers).
pub(crate) const TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Bytes buffered per direction of a tunnel while bytes are in flight (none when idle): what
/// a slow reader can hold up, and the most read at a time (stunnel: 18 KiB, held always).
pub(crate) const TUNNEL_BUFFER_BYTES: usize = 64 * 1024;

/// The admin listener's address when `candado status` is not told another (Caddy's admin
/// port, on loopback).
pub(crate) const ADMIN_ADDRESS: &str = "127.0.0.1:2019";
/// Shortest admin bearer token accepted: 128 bits as hex, so it cannot be guessed.
pub(crate) const ADMIN_TOKEN_MIN_BYTES: usize = 32;
/// Errors the status page keeps (newest first), in memory.
pub(crate) const RECENT_ERRORS: usize = 50;
/// `candado status` exits non-zero when a certificate expires sooner than this.
pub(crate) const STATUS_EXPIRY_ALERT: Duration = Duration::from_secs(7 * 86_400);
/// Admin connections served at once: scrapes and a person or two, never a crowd.
pub(crate) const MAX_ADMIN_CONNECTIONS: usize = 32;
/// How long the admin listener waits for a request head, and for `candado status`'s answer.
pub(crate) const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where candado keeps its state: `$CANDADO_DATA_DIR`, else `$XDG_DATA_HOME/candado`
/// (`~/.local/share/candado`).
pub(crate) fn data_dir() -> PathBuf {
    std::env::var_os("CANDADO_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::data_dir().map(|d| d.join("candado")))
        .unwrap_or_else(|| PathBuf::from(".candado"))
}

/// `candado doctor`: the most requests it sends to one app, all checks together (each check
/// needs one or two; the tests count what the app saw).
pub(crate) const DOCTOR_MAX_REQUESTS: usize = 12;
/// `candado doctor`: how long one answer may take.
pub(crate) const DOCTOR_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// `candado doctor`: the most of a response body it reads (a page to scan for URLs and forms).
pub(crate) const DOCTOR_MAX_BODY_BYTES: usize = 1024 * 1024;
/// `candado doctor`: how long it follows a Server-Sent Events stream, and how many events.
pub(crate) const DOCTOR_SSE_WINDOW: Duration = Duration::from_secs(5);
pub(crate) const DOCTOR_SSE_EVENTS: usize = 3;
/// `candado doctor`: how long a temporary candado may take to start listening.
pub(crate) const DOCTOR_START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a Redis connect or reply may take before the cluster treats Redis as down.
pub(crate) const CLUSTER_REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// How often each instance re-reads what the cluster shares (session-ticket keys, ACME values,
/// challenge answers) from Redis; notices make ACME changes arrive sooner.
pub(crate) const CLUSTER_SYNC_INTERVAL: Duration = Duration::from_secs(2);
/// How long a cluster lock holds without its holder: a crashed holder's lease runs out.
pub(crate) const CLUSTER_LOCK_LEASE: Duration = Duration::from_secs(30);
/// `cluster.ticket_rotation` when not given: how often the shared session-ticket key is
/// replaced; the previous one still opens tickets for as long again (so keys live twice
/// this), and tickets are issued for this long.
pub(crate) const TICKET_KEY_ROTATION: Duration = Duration::from_secs(6 * 60 * 60);
/// `cluster.key_prefix` when not given.
pub(crate) const CLUSTER_KEY_PREFIX: &str = "candado";
