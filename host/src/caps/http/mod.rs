//! `http`: GET and HEAD of the URLs the operator granted, for a service's
//! health endpoint or a `/metrics` page. Read-only: it has no actions.

mod grant;
mod read;

pub use grant::{HttpGrant, UrlPrefix, check_url};
pub use read::{HttpClient, HttpReader, MAX_BODY, REQUEST_TIMEOUT};

use crate::caps::journal::Journal;
use super::{Capability, HostEnv};
use wasmtime::component::{HasSelf, Linker};

/// HTTP reads of granted URLs.
pub struct Http;

impl Capability for Http {
    const NAME: &'static str = "http";
    // Health endpoints and metrics pages are mostly this node's own
    // services (`localhost:3000/health`): a plugin granted any URL runs on
    // the node its alert is about.
    const NODE_LOCAL: bool = true;
    type Grant = HttpGrant;
    type Reader = HttpReader;

    fn missing(grant: &HttpGrant) -> Option<&'static str> {
        grant
            .urls
            .is_empty()
            .then_some(r#"http_urls = ["http://HOST:PORT/PATH"]"#)
    }

    fn problems(grant: &HttpGrant) -> Vec<String> {
        grant::problems(grant)
    }

    fn reader(grant: &HttpGrant, env: &HostEnv, journal: Journal) -> HttpReader {
        let mut reader = HttpReader::new(grant, env.http.clone(), env.bridge.clone());
        reader.journal = journal;
        reader
    }

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut HttpReader,
    ) -> wasmtime::Result<()> {
        crate::contract::http::add_to_linker::<T, HasSelf<HttpReader>>(linker, get)
    }

    fn denials(reader: HttpReader) -> Vec<String> {
        reader.denials.into_lines()
    }
}

read_only!(Http);
