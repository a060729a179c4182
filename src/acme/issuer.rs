//! One ACME account and what it does: obtain a certificate (order → challenges → validation
//! → download), ask for the renewal window, revoke. Challenge answers go into `Challenges`;
//! nothing here touches a listening socket.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, CertificateIdentifier,
    ChallengeType, ExternalAccountKey, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
    RevocationRequest,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::CertificateDer;

use super::peers::{Answer, Peers};
use super::schedule::Window;
use super::validation;
use crate::certs::Challenges;
use crate::config::{AcmeSettings, defaults};

/// Which challenge proves control of the names in one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChallengeKind {
    Http01,
    TlsAlpn01,
}

impl ChallengeKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }

    pub(crate) fn other(self) -> Self {
        match self {
            ChallengeKind::Http01 => ChallengeKind::TlsAlpn01,
            ChallengeKind::TlsAlpn01 => ChallengeKind::Http01,
        }
    }

    fn acme_type(self) -> ChallengeType {
        match self {
            ChallengeKind::Http01 => ChallengeType::Http01,
            ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum AcmeError {
    #[error("cannot use the ACME server {directory}: {source}")]
    Account {
        directory: String,
        #[source]
        source: instant_acme::Error,
    },
    #[error("{step}: {source}")]
    Protocol {
        step: &'static str,
        #[source]
        source: instant_acme::Error,
    },
    #[error("validation of {names} failed with {challenge}: {detail}")]
    Validation {
        names: String,
        challenge: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Other(String),
}

fn step(step: &'static str) -> impl FnOnce(instant_acme::Error) -> AcmeError {
    move |source| AcmeError::Protocol { step, source }
}

/// Reports each step to a person: the log when serving, the terminal for `cert obtain`.
pub(crate) type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// What an ARI CA says about a certificate's renewal.
#[derive(Debug, Clone)]
pub(crate) struct RenewalInfo {
    pub window: Window,
    /// When to ask again (the CA's Retry-After).
    pub recheck: Duration,
    /// Names the certificate in the renewal order, so the CA can link the two.
    pub replaces: CertificateIdentifier<'static>,
}

/// A certificate as issued: the chain (leaf first) and its new private key, both PEM.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

pub(crate) struct Issuer {
    account: Account,
    challenges: Arc<Challenges>,
    /// `cluster:`: the other instances, which serve the answers too.
    peers: Option<Arc<dyn Peers>>,
    provider: Arc<CryptoProvider>,
}

impl Issuer {
    /// Restores the stored account (`credentials`) or creates one, returning new credentials
    /// to store in that case.
    pub(crate) async fn connect(
        settings: &AcmeSettings,
        credentials: Option<AccountCredentials>,
        challenges: Arc<Challenges>,
        peers: Option<Arc<dyn Peers>>,
        provider: Arc<CryptoProvider>,
        progress: Progress<'_>,
    ) -> Result<(Issuer, Option<AccountCredentials>), AcmeError> {
        let http = http_client(settings, provider.clone())?;
        let builder = Account::builder_with_http(Box::new(http));
        let failed = |source| AcmeError::Account {
            directory: settings.directory.clone(),
            source,
        };
        let (account, created) = match credentials {
            Some(c) => {
                let account = builder.from_credentials(c).await.map_err(failed)?;
                progress(&format!(
                    "account: using the stored account {}",
                    account.id()
                ));
                (account, None)
            }
            None => {
                let contact = settings.email.as_ref().map(|e| format!("mailto:{e}"));
                let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
                let eab = settings
                    .eab
                    .as_ref()
                    .map(|(kid, hmac)| ExternalAccountKey::new(kid.clone(), hmac));
                let (account, credentials) = builder
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        settings.directory.clone(),
                        eab.as_ref(),
                    )
                    .await
                    .map_err(failed)?;
                progress(&format!(
                    "account: registered {} with {}",
                    account.id(),
                    settings.directory
                ));
                (account, Some(credentials))
            }
        };
        let issuer = Issuer {
            account,
            challenges,
            peers,
            provider,
        };
        Ok((issuer, created))
    }

    /// Obtains a certificate for `names` (the first becomes the subject), proving control
    /// with `kind`. `replaces` names the certificate being renewed, for CAs with ARI.
    pub(crate) async fn obtain(
        &self,
        names: &[String],
        kind: ChallengeKind,
        replaces: Option<CertificateIdentifier<'static>>,
        progress: Progress<'_>,
    ) -> Result<Issued, AcmeError> {
        let identifiers: Vec<Identifier> =
            names.iter().map(|n| Identifier::Dns(n.clone())).collect();
        let mut new_order = NewOrder::new(&identifiers);
        if let Some(r) = replaces {
            new_order = new_order.replaces(r);
        }
        let mut order = self
            .account
            .new_order(&new_order)
            .await
            .map_err(step("creating the order"))?;
        progress(&format!("order: {} for {}", order.url(), names.join(", ")));
        let mut answers = Answers::new(&self.challenges, self.peers.clone());
        self.answer_challenges(&mut order, kind, &mut answers, progress)
            .await?;
        progress("validation: waiting for the CA to check the challenges");
        let policy = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(defaults::ACME_ORDER_TIMEOUT);
        let status = order
            .poll_ready(&policy)
            .await
            .map_err(step("waiting for validation"))?;
        if status != OrderStatus::Ready {
            let detail = failure_detail(&mut order).await;
            return Err(AcmeError::Validation {
                names: names.join(", "),
                challenge: kind.name(),
                detail,
            });
        }
        drop(answers);
        progress("validation: every name is proven");
        let key = KeyPair::generate().map_err(|e| AcmeError::Other(e.to_string()))?;
        let csr = csr(names, &key)?;
        order
            .finalize_csr(&csr)
            .await
            .map_err(step("finalizing the order"))?;
        let chain_pem = order
            .poll_certificate(&policy)
            .await
            .map_err(step("downloading the certificate"))?;
        progress("download: certificate received");
        Ok(Issued {
            chain_pem,
            key_pem: key.serialize_pem(),
        })
    }

    async fn answer_challenges(
        &self,
        order: &mut instant_acme::Order,
        kind: ChallengeKind,
        answers: &mut Answers<'_>,
        progress: Progress<'_>,
    ) -> Result<(), AcmeError> {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(step("reading an authorization"))?;
            let name = authz.identifier().to_string();
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => {
                    progress(&format!("challenge: {name} is already authorized"));
                    continue;
                }
                other => {
                    return Err(AcmeError::Other(format!(
                        "the authorization for {name} is {other:?}: start a new order"
                    )));
                }
            }
            let mut challenge = authz.challenge(kind.acme_type()).ok_or_else(|| {
                AcmeError::Other(format!(
                    "the CA offers no {} challenge for {name}: try another `acme.challenge`",
                    kind.name()
                ))
            })?;
            let key_authorization = challenge.key_authorization();
            let answer = match kind {
                ChallengeKind::Http01 => Answer::Http01 {
                    token: challenge.token.clone(),
                    key_authorization: key_authorization.as_str().to_owned(),
                },
                ChallengeKind::TlsAlpn01 => Answer::TlsAlpn01 {
                    name: name.clone(),
                    key_authorization: key_authorization.as_str().to_owned(),
                },
            };
            answers.add(answer, &self.provider).await?;
            progress(&format!("challenge: {} for {name} is ready", kind.name()));
            challenge
                .set_ready()
                .await
                .map_err(step("telling the CA the challenge is ready"))?;
        }
        Ok(())
    }

    /// The CA's suggested renewal window for `cert` (RFC 9773); `None` when the CA does not
    /// offer ARI or the question fails.
    pub(crate) async fn renewal_info(&self, cert: &CertificateDer<'_>) -> Option<RenewalInfo> {
        let id = CertificateIdentifier::try_from(cert).ok()?.into_owned();
        match self.account.renewal_info(&id).await {
            Ok((info, recheck)) => Some(RenewalInfo {
                window: Window {
                    start: info.suggested_window.start.into(),
                    end: info.suggested_window.end.into(),
                },
                recheck,
                replaces: id,
            }),
            Err(instant_acme::Error::Unsupported(_)) => None,
            Err(e) => {
                tracing::debug!(error = %e, "ACME renewal information unavailable");
                None
            }
        }
    }

    pub(crate) async fn revoke(&self, cert: &CertificateDer<'_>) -> Result<(), AcmeError> {
        self.account
            .revoke(&RevocationRequest {
                certificate: cert,
                reason: None,
            })
            .await
            .map_err(step("revoking the certificate"))
    }
}

/// Challenge answers published for one order (here and, with `cluster:`, to the other
/// instances), withdrawn when it ends however it ends.
struct Answers<'a> {
    challenges: &'a Challenges,
    peers: Option<Arc<dyn Peers>>,
    published: Vec<Answer>,
}

impl<'a> Answers<'a> {
    fn new(challenges: &'a Challenges, peers: Option<Arc<dyn Peers>>) -> Self {
        Answers {
            challenges,
            peers,
            published: Vec::new(),
        }
    }

    /// Serves `answer` here, then waits until the other instances can serve it too.
    async fn add(&mut self, answer: Answer, provider: &CryptoProvider) -> Result<(), AcmeError> {
        serve_answer(self.challenges, &answer, provider).map_err(AcmeError::Other)?;
        if let Some(p) = &self.peers {
            p.answer(&answer, true).await;
        }
        self.published.push(answer);
        Ok(())
    }
}

impl Drop for Answers<'_> {
    fn drop(&mut self) {
        for answer in &self.published {
            withdraw_answer(self.challenges, answer);
        }
        if let Some(peers) = self.peers.clone() {
            let published = std::mem::take(&mut self.published);
            tokio::spawn(async move {
                for answer in &published {
                    peers.answer(answer, false).await;
                }
            });
        }
    }
}

/// Puts an answer where the listeners find it: the token's body for HTTP-01, a validation
/// certificate made here for TLS-ALPN-01.
pub(crate) fn serve_answer(
    challenges: &Challenges,
    answer: &Answer,
    provider: &CryptoProvider,
) -> Result<(), String> {
    match answer {
        Answer::Http01 {
            token,
            key_authorization,
        } => challenges.add_http01(token, key_authorization),
        Answer::TlsAlpn01 {
            name,
            key_authorization,
        } => {
            let digest =
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes());
            let cert = validation::tls_alpn01_cert(name, digest.as_ref(), provider)?;
            challenges.add_tls_alpn01(name, cert);
        }
    }
    Ok(())
}

pub(crate) fn withdraw_answer(challenges: &Challenges, answer: &Answer) {
    match answer {
        Answer::Http01 { token, .. } => challenges.remove_http01(token),
        Answer::TlsAlpn01 { name, .. } => challenges.remove_tls_alpn01(name),
    }
}

/// The CA's own words on why an order failed: the order's problem and each challenge's.
async fn failure_detail(order: &mut instant_acme::Order) -> String {
    let mut details = Vec::new();
    if let Some(p) = &order.state().error {
        details.push(p.to_string());
    }
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let name = authz.identifier().to_string();
        if let Ok(state) = authz.refresh().await {
            for c in &state.challenges {
                if let Some(p) = &c.error {
                    details.push(format!("{name}: {p}"));
                }
            }
        }
    }
    match details.is_empty() {
        true => "the CA gave no reason".to_owned(),
        false => details.join("; "),
    }
}

fn csr(names: &[String], key: &KeyPair) -> Result<Vec<u8>, AcmeError> {
    let mut params =
        CertificateParams::new(names.to_vec()).map_err(|e| AcmeError::Other(e.to_string()))?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params
        .serialize_request(key)
        .map_err(|e| AcmeError::Other(e.to_string()))?;
    Ok(csr.der().to_vec())
}

type AcmeHttp = Client<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// The HTTPS client for the directory: the system's roots, or only those in `acme.ca`.
fn http_client(
    settings: &AcmeSettings,
    provider: Arc<CryptoProvider>,
) -> Result<AcmeHttp, AcmeError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(defaults::ACME_HTTP_TIMEOUT));
    let tls = match &settings.ca {
        None => hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|e| AcmeError::Other(format!("cannot read the system's CA roots: {e}")))?,
        Some(ca) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
            crate::tls::client_trusting(ca, provider)
                .map_err(|e| AcmeError::Other(format!("acme.ca: {e}")))?,
        ),
    };
    let connector = tls
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}
