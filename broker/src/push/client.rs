//! The HTTP client of push deliveries: `http://` and `https://` endpoints, verified
//! against the Mozilla roots compiled in (broker images have no CA bundle) and the
//! certificates of `--push-ca-file` (an in-cluster CA).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Request, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Idle connections to an endpoint are kept this long for the next delivery.
const IDLE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum PushTlsError {
    #[error("--push-ca-file {0}: {1}")]
    CaFile(String, String),
    #[error("the TLS settings of push deliveries: {0}")]
    Tls(#[from] rustls::Error),
}

#[derive(Clone)]
pub struct PushClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl PushClient {
    pub fn new(extra_ca: Option<&Path>) -> Result<Self, PushTlsError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = extra_ca {
            let shown = path.display().to_string();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| PushTlsError::CaFile(shown.clone(), e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| PushTlsError::CaFile(shown.clone(), e.to_string()))?;
            if certs.is_empty() {
                return Err(PushTlsError::CaFile(
                    shown,
                    "holds no PEM certificate".into(),
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| PushTlsError::CaFile(shown.clone(), e.to_string()))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE)
            .build(connector);
        Ok(Self { client })
    }

    /// POSTs `body` with `headers`; the answer's status, or why there is none within
    /// `timeout`.
    pub async fn post(
        &self,
        url: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<StatusCode, String> {
        let mut request = Request::post(url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("not a request: {e}"))?;
        let exchange = async {
            let answer = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{e:#}"))?;
            let status = answer.status();
            // Read the answer so the connection can serve the next delivery.
            answer
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{e:#}"))?;
            Ok(status)
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {timeout:?}"))?
    }
}
