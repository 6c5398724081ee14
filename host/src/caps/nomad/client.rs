//! A thin async client of Nomad's HTTP API: the token, the address, TLS,
//! timeouts, and retries with backoff where a retry cannot repeat an effect.

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:4646";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_RETRIES: u32 = 2;
/// Nomad's error bodies are short text; anything longer is cut in messages.
const MAX_ERROR_BODY: usize = 512;

/// `[nomad]` in the config. Unset keys fall back to Nomad's own environment
/// variables (`NOMAD_ADDR`, `NOMAD_TOKEN`), then to the local agent.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NomadSettings {
    pub address: Option<String>,
    /// A file holding the ACL token sent as `X-Nomad-Token`.
    pub token_file: Option<PathBuf>,
    pub region: Option<String>,
    /// PEM bundle of the CA that signed Nomad's certificate (else the system's).
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key, for agents that verify HTTPS clients.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Per request, retries included in none of it ("10s").
    pub timeout: Option<String>,
    /// Further attempts after a 429, a 5xx or a refused connection.
    pub retries: Option<u32>,
}

impl NomadSettings {
    /// Config problems, each naming the key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(timeout) = &self.timeout
            && let Err(e) = humantime::parse_duration(timeout)
        {
            problems.push(format!("[nomad] timeout = {timeout:?}: {e}"));
        }
        if self.retries.is_some_and(|r| r > 10) {
            problems.push("[nomad] retries: at most 10".to_string());
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            problems.push("[nomad] cert_file and key_file go together".to_string());
        }
        if let Some(address) = &self.address
            && !(address.starts_with("http://") || address.starts_with("https://"))
        {
            problems.push(format!(
                "[nomad] address = {address:?}: must start with http:// or https://"
            ));
        }
        problems
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NomadError {
    /// Nomad answered with an error status; `body` is its text.
    #[error("Nomad answered {method} {path} with {status}: {body}")]
    Status {
        method: Method,
        path: String,
        status: StatusCode,
        body: String,
    },
    #[error("cannot reach Nomad at {address} ({method} {path}): {detail}")]
    Unreachable {
        address: String,
        method: Method,
        path: String,
        detail: String,
    },
    #[error("Nomad's answer to {method} {path} is not what remedy understands: {detail}")]
    Unexpected {
        method: Method,
        path: String,
        detail: String,
    },
    #[error("Nomad is not usable: {0}")]
    Setup(String),
    #[error("refusing to request {0}: an id may not be empty, `.` or `..`")]
    BadPath(String),
}

impl NomadError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            NomadError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub struct NomadClient {
    http: reqwest::Client,
    address: String,
    token: Option<String>,
    region: Option<String>,
    retries: u32,
}

impl NomadClient {
    pub fn new(settings: &NomadSettings) -> Result<Self, NomadError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let address = settings
            .address
            .clone()
            .or_else(|| env("NOMAD_ADDR"))
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_string())
            .trim_end_matches('/')
            .to_string();
        let token = match &settings.token_file {
            Some(path) => Some(
                crate::sys::read_token("[nomad] token_file", path).map_err(NomadError::Setup)?,
            ),
            None => env("NOMAD_TOKEN"),
        };
        let timeout = settings
            .timeout
            .as_deref()
            .and_then(|t| humantime::parse_duration(t).ok())
            .unwrap_or(DEFAULT_TIMEOUT);
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("remedy/", env!("CARGO_PKG_VERSION")));
        // Plain-HTTP clients need a TLS setup too (reqwest builds one regardless).
        builder = builder.use_preconfigured_tls(tls_config(settings)?);
        let http = builder
            .build()
            .map_err(|e| NomadError::Setup(format!("HTTP client: {e}")))?;
        Ok(NomadClient {
            http,
            address,
            token,
            region: settings.region.clone(),
            retries: settings.retries.unwrap_or(DEFAULT_RETRIES),
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, NomadError> {
        self.send(Method::GET, path, query, None).await
    }

    /// A write; `body` is sent as JSON.
    pub async fn write<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Result<T, NomadError> {
        self.send(method, path, query, body).await
    }

    /// One request with retries. A read is retried after a 429, a 5xx, a
    /// refused connection or a timeout. A write only after a 429 or a refused
    /// connection, where Nomad cannot have acted: restarting twice is not safe.
    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Result<T, NomadError> {
        // Ids come from plugins; URL normalisation would turn `..` into another endpoint.
        if path
            .split('/')
            .skip(1)
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(NomadError::BadPath(path.to_string()));
        }
        let idempotent = method == Method::GET;
        let mut attempt = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.address))
                .query(query);
            if let Some(region) = &self.region {
                request = request.query(&[("region", region)]);
            }
            if let Some(token) = &self.token {
                request = request.header("X-Nomad-Token", token);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            let retry = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        let bytes = response.bytes().await.map_err(|e| {
                            self.unreachable(&method, path, format!("reading the answer: {e}"))
                        })?;
                        // Some writes (client GC) answer 200 with no body at all.
                        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
                            b"null"
                        } else {
                            &bytes
                        };
                        return serde_json::from_slice(bytes).map_err(|e| NomadError::Unexpected {
                            method: method.clone(),
                            path: path.to_string(),
                            detail: e.to_string(),
                        });
                    }
                    let text = response.text().await.unwrap_or_default();
                    let error = NomadError::Status {
                        method: method.clone(),
                        path: path.to_string(),
                        status,
                        body: crate::sys::clipped(&text, MAX_ERROR_BODY),
                    };
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS
                        || (idempotent && status.is_server_error());
                    (retryable, error)
                }
                Err(e) => {
                    let retryable = e.is_connect() || (idempotent && e.is_timeout());
                    (retryable, self.unreachable(&method, path, describe(&e)))
                }
            };
            match retry {
                (true, _) if attempt < self.retries => {
                    let pause = Duration::from_millis(200 << attempt.min(4));
                    tracing::debug!(%method, path, attempt, "retrying Nomad in {pause:?}");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                (_, error) => return Err(error),
            }
        }
    }

    fn unreachable(&self, method: &Method, path: &str, detail: String) -> NomadError {
        NomadError::Unreachable {
            address: self.address.clone(),
            method: method.clone(),
            path: path.to_string(),
            detail,
        }
    }
}

/// The innermost cause of a reqwest error says what went wrong ("Connection refused").
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer in time".to_string();
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

fn tls_config(settings: &NomadSettings) -> Result<rustls::ClientConfig, NomadError> {
    crate::sys::tls::client_config(crate::sys::tls::ClientFiles {
        ca_file: settings.ca_file.as_deref(),
        cert_file: settings.cert_file.as_deref(),
        key_file: settings.key_file.as_deref(),
    })
    .map_err(|problem| NomadError::Setup(format!("[nomad] {problem}")))
}
