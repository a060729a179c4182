//! HTTP basic auth (RFC 7617) in front of a subtree, proxied paths included. Hashes are
//! bcrypt or argon2; verifying one costs tens of milliseconds (and argon2 19 MiB), so it runs
//! on threads of its own, one per core (a flood of wrong passwords queues briefly, then gets
//! 503, instead of taking gigabytes), and a successful check is remembered (by a SHA-256 of
//! the credentials, never in clear).

use std::collections::HashSet;
use std::sync::Mutex;

use base64::Engine;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Body, error};
use crate::config::{AuthRule, PasswordCheck, path_in_prefix};

/// Remembered successful logins at most; beyond that the cache starts over.
const CACHE_LIMIT: usize = 10_000;

/// How long a password check waits for a free core before the client is told to come back.
const VERIFY_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Password checks run on a few threads of their own, one per core, fed through a queue that
/// admits one check per thread. Their own threads, not tokio's blocking pool: every thread
/// that ever ran an argon2 check keeps its 19 MiB in its malloc arena, and the pool may use
/// hundreds of threads over time.
struct Verifier {
    admitted: tokio::sync::Semaphore,
    jobs: std::sync::mpsc::SyncSender<Job>,
}

type Job = (PasswordCheck, String, tokio::sync::oneshot::Sender<bool>);

static VERIFIER: std::sync::LazyLock<Verifier> = std::sync::LazyLock::new(|| {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(threads);
    let queue = std::sync::Arc::new(Mutex::new(queue));
    for i in 0..threads {
        let queue = queue.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("candado-password-{i}"))
            .spawn(move || {
                loop {
                    let job = match queue.lock() {
                        Ok(q) => q.recv(),
                        Err(_) => return,
                    };
                    let Ok((check, password, reply)) = job else {
                        return;
                    };
                    let _ = reply.send(verify(&check, &password));
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a password-check thread: {e}");
        }
    }
    Verifier {
        admitted: tokio::sync::Semaphore::new(threads),
        jobs,
    }
});

/// Checks `password` on the verifier threads; `None` when they stayed busy for the queue wait.
async fn verify_bounded(check: &PasswordCheck, password: String) -> Option<bool> {
    let v = &*VERIFIER;
    let permit = tokio::time::timeout(VERIFY_QUEUE_WAIT, v.admitted.acquire())
        .await
        .ok()?
        .ok()?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    v.jobs.try_send((check.clone(), password, reply)).ok()?;
    let ok = answer.await.unwrap_or(false);
    drop(permit);
    Some(ok)
}

pub(crate) struct BasicAuth {
    /// Longest prefix first.
    rules: Vec<AuthRule>,
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl BasicAuth {
    pub(crate) fn new(mut rules: Vec<AuthRule>) -> Self {
        rules.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        BasicAuth {
            rules,
            verified: Mutex::new(HashSet::new()),
        }
    }

    /// No path of the site asks for a password.
    pub(crate) fn is_off(&self) -> bool {
        self.rules.is_empty()
    }

    /// `Ok` when `path` is unprotected or the request carries valid credentials for it;
    /// otherwise the 401 to send.
    pub(crate) async fn check(
        &self,
        raw_path: &str,
        headers: &HeaderMap,
    ) -> Result<bool, Response<Body>> {
        if self.rules.is_empty() {
            return Ok(false);
        }
        let path = normalize(raw_path);
        let Some(rule) = self.rules.iter().find(|r| path_in_prefix(&r.prefix, &path)) else {
            return Ok(false);
        };
        let Some((user, password)) = credentials(headers) else {
            return Err(challenge(&rule.prefix));
        };
        let Some((_, check)) = rule.users.iter().find(|(u, _)| *u == user) else {
            tracing::warn!(user = %user, path = %rule.prefix, "basic auth: unknown user");
            return Err(challenge(&rule.prefix));
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update(rule.prefix.as_bytes())
            .chain_update([0])
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        if self.remembered(&key) {
            return Ok(true);
        }
        let Some(ok) = verify_bounded(check, password).await else {
            tracing::warn!(user = %user, path = %rule.prefix, "basic auth: too many password checks at once, answered 503");
            return Err(busy());
        };
        if !ok {
            tracing::warn!(user = %user, path = %rule.prefix, "basic auth: wrong password");
            return Err(challenge(&rule.prefix));
        }
        if let Ok(mut v) = self.verified.lock() {
            if v.len() >= CACHE_LIMIT {
                v.clear();
            }
            v.insert(key);
        }
        Ok(true)
    }

    fn remembered(&self, key: &[u8; 32]) -> bool {
        self.verified
            .lock()
            .map(|v| v.contains(key))
            .unwrap_or(false)
    }
}

/// The path as a file server or an application would finally see it, so that no encoding
/// slips past a prefix: percent-decoded, `\` taken as `/`, `;params` cut (as servlet
/// containers do), empty and `.` segments dropped, `..` applied.
fn normalize(raw: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg.split(';').next().unwrap_or("") {
            "" | "." => {}
            ".." => drop(segments.pop()),
            s => segments.push(s),
        }
    }
    format!("/{}", segments.join("/"))
}

fn verify(check: &PasswordCheck, password: &str) -> bool {
    match check {
        PasswordCheck::Plain(expected) => {
            bool::from(expected.as_bytes().ct_eq(password.as_bytes()))
        }
        PasswordCheck::Hash(h) if h.starts_with("$argon2") => verify_argon2(h, password.as_bytes()),
        PasswordCheck::Hash(h) => bcrypt::verify(password, h).unwrap_or(false),
    }
}

/// An argon2 check in memory this thread keeps for the next one: argon2 fills 19 MiB (with
/// the usual parameters) per check, and memory freed and allocated again on every check is
/// kept by the allocator many times over.
fn verify_argon2(hash: &str, password: &[u8]) -> bool {
    use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
    thread_local! {
        static MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let blocks = params.block_count();
    let mut out = vec![0u8; expected.len()];
    let hashed = MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
            .is_ok()
    });
    hashed && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

/// The user and password of an `Authorization: Basic …` header.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn challenge(realm: &str) -> Response<Body> {
    let mut res = error::page(
        StatusCode::UNAUTHORIZED,
        "This area needs a user name and password.",
    );
    let realm = realm.replace(['"', '\\'], "");
    if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\", charset=\"UTF-8\"")) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

fn busy() -> Response<Body> {
    let mut res = error::page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Too many sign-ins at once: try again in a moment.",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

/// An argon2id hash of `password` with a random salt, for `candado hash-password`.
pub(crate) fn hash_password(password: &str) -> Result<String, String> {
    use argon2::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_and_bcrypt_hashes_verify() {
        let argon = hash_password("s3cret").unwrap();
        assert!(verify(
            &PasswordCheck::parse_hash(&argon).unwrap(),
            "s3cret"
        ));
        assert!(!verify(&PasswordCheck::Hash(argon), "wrong"));
        let b = bcrypt::hash("pw", 4).unwrap();
        assert!(verify(&PasswordCheck::parse_hash(&b).unwrap(), "pw"));
        assert!(!verify(&PasswordCheck::Hash(b), "pW"));
        assert!(PasswordCheck::parse_hash("plaintext").is_err());
    }

    #[test]
    fn encoded_and_dotted_paths_normalise_before_matching() {
        for raw in [
            "/%61dmin/x",
            "/x/../admin",
            "//admin",
            "/admin;jsessionid=1/x",
            "/./admin",
            "/%2e%2e/admin",
            "/a\\..\\admin",
        ] {
            assert!(
                path_in_prefix("/admin", &normalize(raw)),
                "{raw} -> {}",
                normalize(raw)
            );
        }
        assert!(!path_in_prefix("/admin", &normalize("/administrator")));
    }

    #[test]
    fn basic_credentials_are_decoded() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWRtaW46cGE6c3M="),
        );
        assert_eq!(credentials(&h), Some(("admin".into(), "pa:ss".into())));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(credentials(&h), None);
    }
}
