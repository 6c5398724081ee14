//! The Kubernetes API as `[kubernetes]` configures it, through kube-rs:
//! connected on first use, every exchange bounded in time (`timeout`) and
//! every answer in size, and a request the server throttles (429) tried
//! again when its `retryAfterSeconds` says, within the same time.

use crate::sys::bridge::Bridge;
use http_body_util::Limited;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Deserialize;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// A larger answer is refused; a page of 500 objects is far below it.
pub const MAX_ANSWER_BYTES: usize = 16 << 20;
/// A throttled request waits at most this long before it is tried again.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
const MAX_MESSAGE: usize = 512;

/// `[kubernetes]` in the config. Unset, remedy finds the cluster as
/// kubectl does: `KUBECONFIG`, then `~/.kube/config`, then the pod's
/// service account.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeSettings {
    /// A kubeconfig file.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use; unset, its current context.
    pub context: Option<String>,
    /// Use the service account of the pod remedy runs in, never a kubeconfig.
    #[serde(default)]
    pub in_cluster: bool,
    /// Per exchange, retries included ("10s").
    pub timeout: Option<String>,
}

impl KubeSettings {
    /// Config problems, each naming the key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(timeout) = &self.timeout
            && let Err(e) = humantime::parse_duration(timeout)
        {
            problems.push(format!("[kubernetes] timeout = {timeout:?}: {e}"));
        }
        if self.in_cluster && (self.kubeconfig.is_some() || self.context.is_some()) {
            problems.push(
                "[kubernetes] in_cluster uses the pod's service account: drop kubeconfig and context"
                    .to_string(),
            );
        }
        problems
    }

    fn timeout(&self) -> Duration {
        self.timeout
            .as_deref()
            .and_then(|t| humantime::parse_duration(t).ok())
            .unwrap_or(DEFAULT_TIMEOUT)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The API server refused, with a `Status`.
    #[error("Kubernetes answered {request} with {code} {reason}: {message}")]
    Status {
        request: String,
        code: u16,
        reason: String,
        message: String,
    },
    #[error("cannot reach Kubernetes ({request}): {detail}")]
    Unreachable { request: String, detail: String },
    #[error("no answer from Kubernetes to {request} within {timeout}")]
    Timeout { request: String, timeout: String },
    #[error("Kubernetes is not usable: {0}")]
    Setup(String),
    #[error("refusing to {0}: not a Kubernetes namespace and object name")]
    BadName(String),
}

impl KubeError {
    pub fn code(&self) -> Option<u16> {
        match self {
            KubeError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    fn of(request: &str, error: kube::Error) -> Self {
        let request = request.to_string();
        match error {
            kube::Error::Api(status) => KubeError::Status {
                request,
                code: status.code,
                reason: if status.reason.is_empty() {
                    "(no reason)".to_string()
                } else {
                    status.reason.clone()
                },
                message: crate::sys::clipped(&status.message, MAX_MESSAGE),
            },
            kube::Error::SerdeError(e) => KubeError::Unreachable {
                request,
                detail: format!("the answer is not what remedy understands: {e}"),
            },
            other => KubeError::Unreachable {
                request,
                detail: innermost(&other),
            },
        }
    }
}

/// The innermost cause says what went wrong ("Connection refused",
/// "length limit exceeded").
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    if cause.is::<http_body_util::LengthLimitError>() {
        return format!("the answer is larger than {MAX_ANSWER_BYTES} bytes");
    }
    cause.to_string()
}

/// The Kubernetes API as configured; the client is made on first use, so
/// a config without Kubernetes never touches it.
pub struct KubeApi {
    settings: KubeSettings,
    client: Mutex<Option<Client>>,
    bridge: Arc<Bridge>,
}

impl KubeApi {
    pub fn new(settings: KubeSettings, bridge: Arc<Bridge>) -> Self {
        KubeApi {
            settings,
            client: Mutex::new(None),
            bridge,
        }
    }

    fn client(&self) -> Result<Client, KubeError> {
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = &*slot {
            return Ok(client.clone());
        }
        let connecting = connect(self.settings.clone());
        let client = match self.bridge.block_on(connecting) {
            Ok(Ok(client)) => client?,
            Ok(Err(past)) => return Err(KubeError::Setup(past.to_string())),
            Err(why) => return Err(KubeError::Setup(why)),
        };
        *slot = Some(client.clone());
        Ok(client)
    }

    /// One exchange, `request` in words for errors, to completion within
    /// the timeout. A 429 means the server did nothing, so any request is
    /// tried again after the pause it asks for.
    pub(super) fn call<T, F, Fut>(&self, request: &str, exchange: F) -> Result<T, KubeError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = kube::Result<T>>,
    {
        let client = self.client()?;
        let timeout = self.settings.timeout();
        let attempts = async {
            loop {
                match exchange(client.clone()).await {
                    Err(kube::Error::Api(status)) if status.code == 429 => {
                        tokio::time::sleep(retry_after(&status)).await
                    }
                    other => return other,
                }
            }
        };
        let timed_out = || KubeError::Timeout {
            request: request.to_string(),
            timeout: humantime::format_duration(timeout).to_string(),
        };
        // The timer is made inside the runtime, which it needs.
        let bounded = async { tokio::time::timeout(timeout, attempts).await };
        match self.bridge.block_on(bounded) {
            Ok(Ok(Ok(Ok(answer)))) => Ok(answer),
            Ok(Ok(Ok(Err(error)))) => Err(KubeError::of(request, error)),
            Ok(Ok(Err(_elapsed))) => Err(timed_out()),
            Ok(Err(past)) => Err(KubeError::Unreachable {
                request: request.to_string(),
                detail: past.to_string(),
            }),
            Err(why) => Err(KubeError::Setup(why)),
        }
    }
}

fn retry_after(status: &kube::core::Status) -> Duration {
    let asked = status
        .details
        .as_ref()
        .map(|d| Duration::from_secs(u64::from(d.retry_after_seconds)))
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(1));
    asked.min(MAX_RETRY_AFTER)
}

/// A client for the cluster `settings` name, whose answers are cut off at
/// [`MAX_ANSWER_BYTES`].
async fn connect(settings: KubeSettings) -> Result<Client, KubeError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| {
        KubeError::Setup(format!("[kubernetes] {what}: {e}"))
    };
    let options = KubeConfigOptions {
        context: settings.context.clone(),
        ..Default::default()
    };
    let mut config = if settings.in_cluster {
        Config::incluster().map_err(|e| setup("in_cluster", &e))?
    } else if let Some(path) = &settings.kubeconfig {
        let kubeconfig = Kubeconfig::read_from(path)
            .map_err(|e| setup(&format!("kubeconfig {}", path.display()), &e))?;
        Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| setup(&format!("kubeconfig {}", path.display()), &e))?
    } else if settings.context.is_some() {
        Config::from_kubeconfig(&options)
            .await
            .map_err(|e| setup("context", &e))?
    } else {
        Config::infer()
            .await
            .map_err(|e| setup("no cluster found (set kubeconfig or in_cluster)", &e))?
    };
    // Each exchange as a whole is bounded in `KubeApi::call`.
    config.connect_timeout = Some(settings.timeout());
    let limit = tower::util::MapResponseLayer::new(|answer: http::Response<_>| {
        answer.map(|body| Limited::new(body, MAX_ANSWER_BYTES))
    });
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| setup("client", &innermost(&e)))?;
    Ok(builder.with_layer(&limit).build())
}
