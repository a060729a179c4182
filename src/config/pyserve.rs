//! PyServe's `config.yaml`, read as PyServe documents it, so that its users switch by
//! changing one command; and `--ssl-config`, which writes the `ssl:` section back without
//! losing the file's other keys or its comments (PyServe rewrites the whole file and drops them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use super::parse::parse_site_name;
use super::{Problems, defaults, line_of, model::*};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PyConfig {
    server: Option<PyServer>,
    http: Option<PyHttp>,
    ssl: Option<PySsl>,
    logging: Option<PyLogging>,
    locations: Option<Spanned<BTreeMap<String, PyLocation>>>,
    extensions: Option<Spanned<IgnoredAny>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PyServer {
    host: Option<Spanned<String>>,
    port: Option<Spanned<u64>>,
    backlog: Option<IgnoredAny>,
    redirect_instructions: Option<Spanned<Vec<BTreeMap<String, String>>>>,
    reverse_proxy: Option<Vec<Spanned<PyProxy>>>,
    locations: Option<Spanned<BTreeMap<String, PyLocation>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PyLocation {
    auth: PyAuth,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PyAuth {
    #[serde(rename = "type")]
    kind: String,
    username: String,
    password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PyProxy {
    path: String,
    host: String,
    port: u64,
    ssl: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PyHttp {
    static_dir: Option<Spanned<String>>,
    templates_dir: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PySsl {
    enabled: Option<bool>,
    cert_file: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
}

// PyServe's logging keys are accepted so its files load; only `level` is read, the others
// get a warning that says what candado does instead.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PyLogging {
    level: Option<String>,
    log_file: Option<IgnoredAny>,
    console_output: Option<IgnoredAny>,
    use_colors: Option<IgnoredAny>,
    use_rotation: Option<IgnoredAny>,
    max_log_size: Option<IgnoredAny>,
    backup_count: Option<IgnoredAny>,
    structured_logs: Option<IgnoredAny>,
}

/// Reads a PyServe config. Paths are relative to the working folder, as in PyServe.
pub(crate) fn parse(text: &str) -> Result<(Config, Vec<String>), Vec<Problem>> {
    let raw: PyConfig = super::read_raw(text)?;
    let mut p = Problems::default();
    let mut warnings = Vec::new();
    let site = validate(raw, &mut p, &mut warnings);
    match p.0.is_empty() {
        true => Ok((
            Config {
                sites: vec![site],
                ..Config::default()
            },
            warnings,
        )),
        false => Err(p.0),
    }
}

fn validate(raw: PyConfig, p: &mut Problems, warnings: &mut Vec<String>) -> Site {
    if let Some(e) = &raw.extensions {
        p.add(line_of(e), "extensions", "PyServe v2 extensions are not supported: write a candado config instead (see candado.example.yaml)");
    }
    let mut server = raw.server;
    // PyServe documents `locations` under `server:`; older files have it at the top level.
    let mut auth = Vec::new();
    let top_locations = raw.locations;
    let server_locations = server.as_mut().and_then(|s| s.locations.take());
    for (key, l) in [
        ("locations", top_locations),
        ("server.locations", server_locations),
    ] {
        if let Some(l) = l {
            auth.extend(locations(&l, key, p));
        }
    }
    let host = server.as_ref().and_then(|s| s.host.as_ref());
    let ip = host.and_then(|h| {
        let parsed = match h.value.as_str() {
            "localhost" => Ok(std::net::IpAddr::from([127, 0, 0, 1])),
            v => v
                .parse()
                .map_err(|_| format!("`{v}` is not an IP address; use e.g. 127.0.0.1 or 0.0.0.0")),
        };
        p.check(line_of(h), "server.host", parsed)
    });
    let port = match server.as_ref().and_then(|s| s.port.as_ref()) {
        None => defaults::PYSERVE_PORT,
        Some(v) => match u16::try_from(v.value) {
            Ok(port) => port,
            Err(_) => {
                p.add(
                    line_of(v),
                    "server.port",
                    "must be a port number between 0 and 65535",
                );
                defaults::PYSERVE_PORT
            }
        },
    };
    let listen = std::net::SocketAddr::new(ip.unwrap_or([127, 0, 0, 1].into()), port);
    let mut routes = Vec::new();
    let mut redirects = Vec::new();
    if let Some(s) = &server {
        if s.backlog.is_some() {
            warnings.push("server.backlog is ignored: the kernel's accept queue is used".into());
        }
        if let Some(r) = &s.redirect_instructions {
            redirects = super::validate_redirects(
                line_of(r),
                "server.redirect_instructions",
                r.value
                    .iter()
                    .flatten()
                    .map(|(a, b)| (a.clone(), b.clone())),
                p,
            );
        }
        if let Some(r) = &s.reverse_proxy {
            routes = proxy_routes(r, p);
        }
    }
    let root = static_root(raw.http, p, warnings);
    let certificate = certificate(raw.ssl, p, warnings);
    if let Some(logging) = raw.logging {
        logging_warnings(logging, warnings);
    }
    Site {
        names: local_names(listen.ip()),
        listen,
        redirect_from: None,
        certificate,
        root,
        static_options: StaticOptions::default(),
        welcome_page: false,
        hsts: Some(Hsts::default()),
        headers: Vec::new(),
        routes,
        max_body_bytes: defaults::MAX_BODY_BYTES,
        secure_cookies: true,
        trusted_proxies: Vec::new(),
        allow_underscore_headers: false,
        auth,
        redirects,
        client_auth: None,
        compression: true,
        http3: true,
    }
}

/// PyServe's logging keys candado does not read, each named with what candado does instead.
fn logging_warnings(l: PyLogging, warnings: &mut Vec<String>) {
    if l.level
        .is_some_and(|level| level.eq_ignore_ascii_case("debug"))
    {
        warnings.push("logging.level DEBUG: use -d for candado's debug log".into());
    }
    const NO_ROTATION: &str =
        "candado does not rotate its log file: let logrotate do it (SIGUSR1 reopens --log-file)";
    let unread = [
        (
            "log_file",
            l.log_file.is_some(),
            "candado logs to standard error; use --log-file FILE or `log: {file: …}` in a candado config",
        ),
        (
            "console_output",
            l.console_output.is_some(),
            "candado logs to standard error unless --log-file is given",
        ),
        (
            "use_colors",
            l.use_colors.is_some(),
            "choose the log's format with --log-format human|json",
        ),
        ("use_rotation", l.use_rotation.is_some(), NO_ROTATION),
        ("max_log_size", l.max_log_size.is_some(), NO_ROTATION),
        ("backup_count", l.backup_count.is_some(), NO_ROTATION),
        (
            "structured_logs",
            l.structured_logs.is_some(),
            "use --log-format json for one JSON object per line",
        ),
    ];
    for (key, set, instead) in unread {
        if set {
            warnings.push(format!("logging.{key} is not read: {instead}"));
        }
    }
}

/// PyServe's basic auth: plain-text credentials, `${VAR}` read from the environment.
fn locations(
    l: &Spanned<BTreeMap<String, PyLocation>>,
    key: &str,
    p: &mut Problems,
) -> Vec<AuthRule> {
    let mut out = Vec::new();
    for (path, loc) in &l.value {
        let k = format!("{key}.{path}.auth");
        if !loc.auth.kind.eq_ignore_ascii_case("basic") {
            p.add(
                line_of(l),
                format!("{k}.type"),
                format!(
                    "unknown auth type `{}`: only basic is supported",
                    loc.auth.kind
                ),
            );
            continue;
        }
        let user = p.check(
            line_of(l),
            format!("{k}.username"),
            expand_env(&loc.auth.username),
        );
        let pass = p.check(
            line_of(l),
            format!("{k}.password"),
            expand_env(&loc.auth.password),
        );
        if !path.starts_with('/') {
            p.add(line_of(l), k.clone(), format!("`{path}` must start with /"));
            continue;
        }
        if let (Some(user), Some(pass)) = (user, pass) {
            out.push(AuthRule {
                prefix: super::trim_prefix(path),
                users: vec![(user, PasswordCheck::Plain(pass))],
            });
        }
    }
    out
}

/// `${NAME}` → the environment variable NAME (PyServe's convention); other text as is.
fn expand_env(s: &str) -> Result<String, String> {
    match s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        Some(name) => {
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
        }
        None => Ok(s.to_owned()),
    }
}

fn static_root(
    http: Option<PyHttp>,
    p: &mut Problems,
    warnings: &mut Vec<String>,
) -> Option<PathBuf> {
    let http = http.unwrap_or(PyHttp {
        static_dir: None,
        templates_dir: None,
    });
    if http.templates_dir.is_some() {
        warnings.push("http.templates_dir is ignored: candado serves files, not templates".into());
    }
    match http.static_dir {
        Some(d) => {
            let path = PathBuf::from(&d.value);
            match path.is_dir() {
                true => Some(path),
                false => {
                    p.add(
                        line_of(&d),
                        "http.static_dir",
                        format!("folder not found: {}", path.display()),
                    );
                    None
                }
            }
        }
        // PyServe's default folder, used only if it exists.
        None => Some(PathBuf::from(defaults::PYSERVE_STATIC_DIR)).filter(|d| d.is_dir()),
    }
}

fn certificate(ssl: Option<PySsl>, p: &mut Problems, warnings: &mut Vec<String>) -> CertSource {
    let Some(ssl) = ssl.filter(|s| s.enabled == Some(true)) else {
        warnings.push("ssl.enabled is not true: PyServe would serve plain HTTP; candado serves HTTPS with its local development CA".into());
        return CertSource::Local;
    };
    match (ssl.cert_file, ssl.key_file) {
        (Some(c), Some(k)) => CertSource::Files {
            cert: PathBuf::from(c.value),
            key: PathBuf::from(k.value),
        },
        (c, k) => {
            let line = c.as_ref().or(k.as_ref()).and_then(line_of);
            p.add(
                line,
                "ssl",
                "ssl.enabled is true but cert_file or key_file is missing: set both",
            );
            CertSource::Local
        }
    }
}

/// PyServe strips the route's path before forwarding (`/api/users` reaches `/users`).
fn proxy_routes(routes: &[Spanned<PyProxy>], p: &mut Problems) -> Vec<Route> {
    let mut out = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let key = format!("server.reverse_proxy[{i}]");
        let v = &r.value;
        if !v.path.starts_with('/') {
            p.add(
                line_of(r),
                format!("{key}.path"),
                format!("`{}` must start with /", v.path),
            );
            continue;
        }
        if parse_site_name(&v.host).is_err() {
            p.add(
                line_of(r),
                format!("{key}.host"),
                format!("`{}` is not a host name or IP address", v.host),
            );
            continue;
        }
        if !(1..=65535).contains(&v.port) {
            p.add(
                line_of(r),
                format!("{key}.port"),
                "must be a port number between 1 and 65535",
            );
            continue;
        }
        let scheme = if v.ssl == Some(true) { "https" } else { "http" };
        let host = match v.host.contains(':') {
            true => format!("[{}]", v.host),
            false => v.host.clone(),
        };
        let prefix = v.path.trim_end_matches('/');
        let prefix = if prefix.is_empty() { "/" } else { prefix };
        let mut route = Route::to(
            prefix,
            vec![Upstream {
                origin: format!("{scheme}://{host}:{}", v.port),
            }],
        );
        route.strip_prefix = true;
        out.push(route);
    }
    out
}

// ---- --ssl-config: edit the `ssl:` section in place ----

/// Writes `ssl: {enabled: true, cert_file, key_file}` into the PyServe config at `path`
/// (creating it if missing), keeping every other key and every comment. The new text is
/// parsed back before it replaces the file, so a failed edit never loses the old one.
pub(crate) fn write_ssl_settings(path: &Path, cert: &str, key: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let new = set_ssl_section(&old, cert, key);
    verify_ssl_section(&new, cert, key).with_context(|| {
        format!(
            "{}: the ssl section could not be edited safely; the file was left unchanged",
            path.display()
        )
    })?;
    let tmp = path.with_extension("yaml.candado-tmp");
    std::fs::write(&tmp, &new).with_context(|| format!("cannot write {}", tmp.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(&tmp, meta.permissions()).ok();
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

fn verify_ssl_section(text: &str, cert: &str, key: &str) -> anyhow::Result<()> {
    #[derive(Deserialize)]
    struct Check {
        ssl: CheckSsl,
    }
    #[derive(Deserialize)]
    struct CheckSsl {
        enabled: bool,
        cert_file: String,
        key_file: String,
    }
    let c: Check =
        serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.without_snippet()))?;
    anyhow::ensure!(
        c.ssl.enabled && c.ssl.cert_file == cert && c.ssl.key_file == key,
        "the written values do not read back as given"
    );
    Ok(())
}

const SSL_KEYS: [&str; 3] = ["enabled", "cert_file", "key_file"];

/// Returns `text` with the top-level `ssl:` block holding the three settings.
pub(crate) fn set_ssl_section(text: &str, cert: &str, key: &str) -> String {
    let values = ["true".to_owned(), yaml_scalar(cert), yaml_scalar(key)];
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let header = lines.iter().position(|l| is_ssl_header(l));
    let Some(start) = header else {
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        if !lines.is_empty() {
            lines.push(String::new());
        }
        lines.push("ssl:".into());
        lines.extend(
            SSL_KEYS
                .iter()
                .zip(&values)
                .map(|(k, v)| format!("  {k}: {v}")),
        );
        return lines.join("\n") + "\n";
    };
    // A flow mapping (`ssl: {…}`) is replaced by a block; a trailing comment is kept.
    let comment = find_comment(&lines[start])
        .map(|c| format!(" {c}"))
        .unwrap_or_default();
    lines[start] = format!("ssl:{comment}");
    let mut end = start + 1;
    while end < lines.len() && (lines[end].trim().is_empty() || lines[end].starts_with([' ', '\t']))
    {
        end += 1;
    }
    while end > start + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    let indent = lines[start + 1..end]
        .iter()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| l[..l.len() - l.trim_start().len()].to_owned())
        .unwrap_or_else(|| "  ".into());
    let mut missing = Vec::new();
    for (k, v) in SSL_KEYS.iter().zip(&values) {
        let found = (start + 1..end).find(|&i| {
            lines[i].strip_prefix(indent.as_str()).is_some_and(|rest| {
                rest.strip_prefix(k)
                    .is_some_and(|r| r.trim_start().starts_with(':'))
            })
        });
        match found {
            Some(i) => {
                let comment = find_comment(&lines[i])
                    .map(|c| format!(" {c}"))
                    .unwrap_or_default();
                lines[i] = format!("{indent}{k}: {v}{comment}");
            }
            None => missing.push(format!("{indent}{k}: {v}")),
        }
    }
    lines.splice(end..end, missing);
    lines.join("\n") + "\n"
}

fn is_ssl_header(line: &str) -> bool {
    line.strip_prefix("ssl")
        .and_then(|r| r.trim_start().strip_prefix(':'))
        .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t', '{']) || r.starts_with('#'))
}

/// The `# comment` at the end of a YAML line, ignoring `#` inside quotes.
fn find_comment(line: &str) -> Option<&str> {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && (prev == ' ' || prev == '\t') => return Some(&line[i..]),
            _ => {}
        }
        prev = c;
    }
    None
}

/// A YAML scalar for a path: plain when that reads back as the same string, else quoted.
fn yaml_scalar(s: &str) -> String {
    let plain_ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./~-+@".contains(c))
        && !s.starts_with(['-', '~', '@'])
        && serde_saphyr::from_str::<String>(s).ok().as_deref() == Some(s)
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null"
        )
        && s.parse::<f64>().is_err();
    if plain_ok {
        return s.to_owned();
    }
    let escaped: String = s
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYSERVE_FILE: &str = "# PyServe config\nserver:\n  host: 127.0.0.1 # local only\n  port: 8000\n\nssl:\n  enabled: false  # turn on later\n  cert_file: ./old.pem\n\nlogging:\n  level: INFO\n";

    #[test]
    fn ssl_config_keeps_comments_and_other_keys() {
        let out = set_ssl_section(PYSERVE_FILE, "./ssl/cert.pem", "./ssl/key.pem");
        assert_eq!(
            out,
            "# PyServe config\nserver:\n  host: 127.0.0.1 # local only\n  port: 8000\n\nssl:\n  enabled: true # turn on later\n  cert_file: ./ssl/cert.pem\n  key_file: ./ssl/key.pem\n\nlogging:\n  level: INFO\n"
        );
        verify_ssl_section(&out, "./ssl/cert.pem", "./ssl/key.pem").expect("reads back");
    }

    #[test]
    fn ssl_config_appends_a_section_when_there_is_none() {
        let out = set_ssl_section("server:\n  port: 9000\n", "c.pem", "k.pem");
        assert_eq!(
            out,
            "server:\n  port: 9000\n\nssl:\n  enabled: true\n  cert_file: c.pem\n  key_file: k.pem\n"
        );
    }

    #[test]
    fn ssl_config_replaces_a_flow_mapping_and_quotes_odd_paths() {
        let out = set_ssl_section("ssl: {enabled: false}\n", "my certs/#1.pem", "true");
        verify_ssl_section(&out, "my certs/#1.pem", "true").expect("reads back");
    }

    #[test]
    fn pyserve_config_reads_as_one_site() {
        let (c, warnings) = parse("server:\n  host: 127.0.0.1\n  port: 9443\n  reverse_proxy:\n    - path: /api\n      host: localhost\n      port: 3000\nssl:\n  enabled: true\n  cert_file: c.pem\n  key_file: k.pem\nlogging:\n  level: DEBUG\n").expect("valid");
        assert_eq!(c.sites[0].listen.port(), 9443);
        assert_eq!(
            c.sites[0].certificate,
            CertSource::Files {
                cert: "c.pem".into(),
                key: "k.pem".into()
            }
        );
        let route = &c.sites[0].routes[0];
        assert_eq!(
            (
                route.prefix.as_str(),
                route.upstreams[0].origin.as_str(),
                route.strip_prefix
            ),
            ("/api", "http://localhost:3000", true)
        );
        assert!(
            warnings.iter().any(|w| w.contains("logging.level")),
            "{warnings:?}"
        );
    }

    #[test]
    fn pyserve_unknown_keys_and_bad_routes_are_errors() {
        let p = parse("server:\n  prot: 1\n").expect_err("typo");
        assert!(p[0].message.contains("unknown field `prot`"));
        let p = parse("server:\n  reverse_proxy:\n    - path: api\n      host: localhost\n      port: 99999\n").expect_err("bad");
        assert_eq!(p[0].key, "server.reverse_proxy[0].path");
    }

    #[test]
    fn pyserve_basic_auth_and_redirects_are_read() {
        let (c, _) = parse("server:\n  redirect_instructions:\n    - /home: /index.html\n  locations:\n    /admin/:\n      auth:\n        type: basic\n        username: admin\n        password: secret\n").expect("valid");
        let site = &c.sites[0];
        assert_eq!(
            site.redirects,
            [("/home".to_owned(), "/index.html".to_owned())]
        );
        assert_eq!(site.auth[0].prefix, "/admin");
        assert_eq!(
            site.auth[0].users,
            [("admin".to_owned(), PasswordCheck::Plain("secret".into()))]
        );
    }

    #[test]
    fn pyserve_auth_with_a_missing_variable_is_an_error() {
        let p = parse("server:\n  locations:\n    /a:\n      auth: {type: basic, username: u, password: '${CANDADO_TEST_UNSET_VAR}'}\n").expect_err("unset");
        assert!(p[0].message.contains("CANDADO_TEST_UNSET_VAR"), "{p:?}");
    }
}
