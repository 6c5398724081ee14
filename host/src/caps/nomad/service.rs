//! The Nomad API as this host configures it, connected on first use.

use super::{NomadClient, NomadError, NomadSettings, api};
use crate::sys::bridge::Bridge;
use reqwest::Method;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// The Nomad API as configured; the client is made on first use, so a
/// config without Nomad never touches it.
pub struct NomadApi {
    settings: NomadSettings,
    client: Mutex<Option<Arc<NomadClient>>>,
    bridge: Arc<Bridge>,
}

impl NomadApi {
    pub fn new(settings: NomadSettings, bridge: Arc<Bridge>) -> Self {
        NomadApi {
            settings,
            client: Mutex::new(None),
            bridge,
        }
    }

    pub(super) fn client(&self) -> Result<Arc<NomadClient>, NomadError> {
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = &*slot {
            return Ok(client.clone());
        }
        let client = Arc::new(NomadClient::new(&self.settings)?);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Run one exchange with Nomad to completion.
    pub fn call<T, F>(&self, exchange: impl FnOnce(Arc<NomadClient>) -> F) -> Result<T, NomadError>
    where
        F: Future<Output = Result<T, NomadError>>,
    {
        let client = self.client()?;
        match self.bridge.block_on(exchange(client)) {
            Ok(Ok(answer)) => answer,
            Ok(Err(past)) => Err(NomadError::Setup(past.to_string())),
            Err(why) => Err(NomadError::Setup(why)),
        }
    }

    pub(super) fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: String,
        query: &[(&str, &str)],
    ) -> Result<T, NomadError> {
        self.call(|client| async move { client.get(&path, query).await })
    }

    pub(super) fn write<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: String,
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Result<T, NomadError> {
        self.call(|client| async move { client.write(method, &path, query, body).await })
    }

    pub(super) fn allocation(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<api::Allocation, NomadError> {
        self.get(
            format!("/v1/allocation/{}", segment(id)),
            &[("namespace", namespace)],
        )
    }

    pub(super) fn job(&self, namespace: &str, id: &str) -> Result<api::Job, NomadError> {
        self.get(
            format!("/v1/job/{}", segment(id)),
            &[("namespace", namespace)],
        )
    }
}

/// A path segment: ids come from plugins, so nothing in them may change the path.
pub(super) fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
