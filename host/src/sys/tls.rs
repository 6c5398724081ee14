//! TLS as a client (to Nomad, to PostgreSQL, to notification webhooks):
//! rustls with ring, the roots of a CA file or else the system's, and a
//! client certificate when one is given. Also the plain HTTP client for the
//! services remedy reads (granted URLs, Prometheus, Alertmanager).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The files a client's TLS is made from; each is optional.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientFiles<'a> {
    pub ca_file: Option<&'a Path>,
    pub cert_file: Option<&'a Path>,
    pub key_file: Option<&'a Path>,
}

/// A file that could not be used, named by its config key.
#[derive(Debug, thiserror::Error)]
#[error("{key} {}: {detail}", path.display())]
pub struct FileProblem {
    pub key: &'static str,
    pub path: PathBuf,
    pub detail: String,
}

fn problem(key: &'static str, path: &Path, detail: impl std::fmt::Display) -> FileProblem {
    FileProblem {
        key,
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// A client config that trusts `ca_file` (else the system's roots) and
/// presents `cert_file` and `key_file` when both are given.
pub fn client_config(files: ClientFiles<'_>) -> Result<rustls::ClientConfig, FileProblem> {
    let mut roots = rustls::RootCertStore::empty();
    match files.ca_file {
        Some(path) => {
            let certs =
                CertificateDer::pem_file_iter(path).map_err(|e| problem("ca_file", path, e))?;
            for cert in certs {
                let cert = cert.map_err(|e| problem("ca_file", path, e))?;
                roots.add(cert).map_err(|e| problem("ca_file", path, e))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots);
    match (files.cert_file, files.key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| problem("cert_file", cert, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| problem("cert_file", cert, e))?;
            let key_der =
                PrivateKeyDer::from_pem_file(key).map_err(|e| problem("key_file", key, e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| problem("cert_file", cert, e))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// An HTTP client made on first use, for requests to a service remedy
/// reads (a granted URL, Prometheus, Alertmanager): it follows no redirect
/// and uses no proxy, so each request goes to the host its URL names, and
/// `timeout` bounds each request from connecting to its last byte.
pub struct LazyHttpClient {
    timeout: std::time::Duration,
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
}

impl LazyHttpClient {
    pub const fn new(timeout: std::time::Duration) -> Self {
        LazyHttpClient {
            timeout,
            client: std::sync::OnceLock::new(),
        }
    }

    pub fn get(&self) -> Result<&reqwest::Client, String> {
        self.client
            .get_or_init(|| {
                let tls = client_config(ClientFiles::default()).map_err(|p| p.to_string())?;
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    .timeout(self.timeout)
                    .connect_timeout(self.timeout)
                    .user_agent(concat!("remedy/", env!("CARGO_PKG_VERSION")))
                    .use_preconfigured_tls(tls)
                    .build()
                    .map_err(|e| format!("HTTP client: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}
