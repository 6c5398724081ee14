//! The `http` read interface: GET, HEAD and a Prometheus scrape of granted
//! URLs. The host makes each request to the URL's own host, follows no
//! redirect, uses no proxy, and stops reading at the body limit or the
//! request timeout, whichever comes first (and at the plugin's deadline).

use super::grant::{HttpGrant, check_url, token_file};
use crate::caps::Denials;
use crate::contract::ApiError;
use crate::contract::http::{Header, Response, Sample};
use crate::sys::bridge::Bridge;
use crate::sys::tls::LazyHttpClient;
use reqwest::Method;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// The most of a body kept, whatever a plugin asks for.
pub const MAX_BODY: usize = 1 << 20;
const MAX_HEADERS: usize = 64;
const HEADER_VALUE_BYTES: usize = 1024;
const MAX_SAMPLES: usize = 10_000;
/// How long one request may take, from connecting to the last byte read.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The client every plugin instance's requests go through, made on first use.
pub struct HttpClient(LazyHttpClient);

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient(LazyHttpClient::new(REQUEST_TIMEOUT))
    }
}

/// The `http` read interface of one plugin instance.
pub struct HttpReader {
    grant: HttpGrant,
    client: Arc<HttpClient>,
    bridge: Arc<Bridge>,
    pub denials: Denials,
    /// Where its calls go: the world, kept or not, or a recording.
    pub journal: crate::caps::journal::Journal,
}

impl HttpReader {
    pub fn new(grant: &HttpGrant, client: Arc<HttpClient>, bridge: Arc<Bridge>) -> Self {
        HttpReader {
            grant: grant.clone(),
            client,
            bridge,
            denials: Denials::default(),
            journal: Default::default(),
        }
    }

    /// The granted URL `text` names, or a noted denial.
    fn granted(&mut self, call: &str, text: &str) -> Result<Url, ApiError> {
        let checked = check_url(&self.grant, text).map_err(ApiError::Denied);
        self.denials.note(call, checked)
    }

    /// The bearer token the grant names for `url`, if any.
    fn token(&self, url: &Url) -> Result<Option<String>, ApiError> {
        let Some(file) = token_file(&self.grant, url) else {
            return Ok(None);
        };
        crate::sys::read_token("http_credentials", file)
            .map(Some)
            .map_err(ApiError::Unavailable)
    }

    fn fetch(&mut self, call: &str, method: Method, text: &str, keep: usize) -> Result<Response, ApiError> {
        let url = self.granted(call, text)?;
        let token = self.token(&url)?;
        let client = self.client.0.get().map_err(ApiError::Unavailable)?.clone();
        let started = Instant::now();
        let exchange = exchange(client, method, url.clone(), token, keep.min(MAX_BODY));
        match self.bridge.block_on(exchange) {
            Ok(Ok(Ok(mut response))) => {
                response.elapsed_ms = started.elapsed().as_millis() as u64;
                Ok(response)
            }
            Ok(Ok(Err(e))) => Err(ApiError::Unavailable(format!("{url}: {}", describe(&e)))),
            Ok(Err(past)) => Err(ApiError::Unavailable(format!("{url}: {past}"))),
            Err(why) => Err(ApiError::Unavailable(why)),
        }
    }
}

/// One request, its headers and at most `keep` bytes of its body.
async fn exchange(
    client: reqwest::Client,
    method: Method,
    url: Url,
    token: Option<String>,
    keep: usize,
) -> Result<Response, reqwest::Error> {
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut answer = request.send().await?;
    let headers = answer
        .headers()
        .iter()
        .take(MAX_HEADERS)
        .map(|(name, value)| Header {
            name: name.as_str().to_string(),
            value: crate::caps::log::truncate(&String::from_utf8_lossy(value.as_bytes()), HEADER_VALUE_BYTES),
        })
        .collect();
    let status = answer.status().as_u16();
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = answer.chunk().await? {
        let room = keep - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body,
        truncated,
        elapsed_ms: 0,
    })
}

/// What went wrong, in words: reqwest's own names the URL, which the
/// caller does already.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("no answer within {}", humantime::format_duration(REQUEST_TIMEOUT))
    } else if error.is_connect() {
        "cannot connect".to_string()
    } else {
        let mut words = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            words = format!("{words}: {cause}");
            source = cause.source();
        }
        words
    }
}

/// The samples of a Prometheus text page, at most [`MAX_SAMPLES`].
fn samples(body: &[u8]) -> Result<Vec<Sample>, String> {
    use prometheus_parse::Value;
    let text = String::from_utf8_lossy(body);
    let lines = text.lines().map(|line| Ok(line.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    for sample in scrape.samples {
        let mut labels: Vec<(String, String)> = sample
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        let with = |key: &str, value: String| {
            let mut labels = labels.clone();
            labels.push((key.to_string(), value));
            labels
        };
        match sample.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => found.push(Sample {
                name: sample.metric.clone(),
                labels: labels.clone(),
                value: v,
            }),
            Value::Histogram(buckets) => found.extend(buckets.iter().map(|b| Sample {
                name: format!("{}_bucket", sample.metric),
                labels: with("le", b.less_than.to_string()),
                value: b.count,
            })),
            Value::Summary(quantiles) => found.extend(quantiles.iter().map(|q| Sample {
                name: sample.metric.clone(),
                labels: with("quantile", q.quantile.to_string()),
                value: q.count,
            })),
        }
        if found.len() >= MAX_SAMPLES {
            found.truncate(MAX_SAMPLES);
            break;
        }
    }
    Ok(found)
}

journaled! {
    "http", HttpReader: crate::contract::http::Host {
        fn get(&mut self, url: String, max_bytes: u32) -> Result<Response, ApiError> {
            self.fetch("http.get", Method::GET, &url, max_bytes as usize)
        }

        fn head(&mut self, url: String) -> Result<Response, ApiError> {
            self.fetch("http.head", Method::HEAD, &url, 0)
        }

        fn scrape(&mut self, url: String) -> Result<Vec<Sample>, ApiError> {
            let page = self.fetch("http.scrape", Method::GET, &url, MAX_BODY)?;
            if page.status != 200 {
                return Err(ApiError::Unavailable(format!("{url}: status {}", page.status)));
            }
            if page.truncated {
                return Err(ApiError::Unavailable(format!(
                    "{url}: the page is larger than {MAX_BODY} bytes"
                )));
            }
            samples(&page.body).map_err(|e| ApiError::Invalid(format!("{url}: not the Prometheus text format: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::http::Host;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A server that answers by path, as a misbehaving service might; it
    /// counts the requests it saw and keeps the last Authorization header.
    struct Server {
        addr: SocketAddr,
        hits: Arc<AtomicUsize>,
        authorization: Arc<std::sync::Mutex<Option<String>>>,
    }

    impl Server {
        fn start(redirect_to: Option<SocketAddr>) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let hits = Arc::new(AtomicUsize::new(0));
            let authorization = Arc::new(std::sync::Mutex::new(None));
            let (seen, auth) = (hits.clone(), authorization.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let (seen, auth) = (seen.clone(), auth.clone());
                    std::thread::spawn(move || answer(stream, redirect_to, &seen, &auth));
                }
            });
            Server {
                addr,
                hits,
                authorization,
            }
        }

        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }
    }

    fn answer(
        stream: TcpStream,
        redirect_to: Option<SocketAddr>,
        seen: &AtomicUsize,
        auth: &std::sync::Mutex<Option<String>>,
    ) {
        seen.fetch_add(1, Ordering::Relaxed);
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("authorization:") {
                *auth.lock().unwrap() = Some(value.trim().to_string());
            }
        }
        let mut out = stream;
        // One request a connection, said so: a client must not reuse it
        // (a reused one, closed under it, fails the next request at random).
        let head = |status: &str, extra: &str| {
            format!("HTTP/1.1 {status}\r\nConnection: close\r\n{extra}\r\n")
        };
        let _ = match path.as_str() {
            "/redirect" => {
                let to = redirect_to.unwrap();
                let moved = head("302 Found", &format!("Location: http://{to}/health\r\nContent-Length: 0\r\n"));
                out.write_all(moved.as_bytes())
            }
            "/huge" | "/endless" => {
                let length = if path == "/huge" { "Content-Length: 10737418240\r\n" } else { "" };
                let _ = out.write_all(head("200 OK", length).as_bytes());
                let zeros = vec![0u8; 64 * 1024];
                while out.write_all(&zeros).is_ok() {}
                Ok(())
            }
            "/slow" => {
                // A byte of the status line every second: never a whole answer.
                for byte in b"HTTP/1.1 200 OK\r\n" {
                    if out.write_all(&[*byte]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                Ok(())
            }
            "/metrics" => {
                let page = "# TYPE up gauge\nup{job=\"api\"} 1\n# TYPE rss gauge\nrss 3.5e9\n";
                let text = head("200 OK", &format!("Content-Length: {}\r\n", page.len())) + page;
                out.write_all(text.as_bytes())
            }
            _ => out.write_all((head("200 OK", "Content-Length: 2\r\n") + "ok").as_bytes()),
        };
    }

    fn reader(urls: &[String]) -> HttpReader {
        let grant = HttpGrant {
            urls: urls.to_vec(),
            ..HttpGrant::default()
        };
        HttpReader::new(&grant, Arc::default(), Arc::default())
    }

    #[test]
    fn a_granted_url_is_read_and_a_redirect_is_handed_back_not_followed() {
        let elsewhere = Server::start(None);
        let server = Server::start(Some(elsewhere.addr));
        let mut http = reader(&[server.url("/")]);
        let ok = http.get(server.url("/health"), 100).unwrap();
        assert_eq!((ok.status, ok.body.as_slice(), ok.truncated), (200, &b"ok"[..], false));

        let moved = http.get(server.url("/redirect"), 100).unwrap();
        assert_eq!(moved.status, 302);
        assert!(moved.headers.iter().any(|h| h.name == "location"));
        assert_eq!(elsewhere.hits.load(Ordering::Relaxed), 0, "the redirect was not followed");
        let denied = http.get(elsewhere.url("/health"), 100).unwrap_err();
        assert!(matches!(denied, ApiError::Denied(_)), "{denied:?}");
        assert_eq!(http.denials.into_lines().len(), 1, "the denial is noted");
    }

    #[test]
    fn a_body_without_end_is_cut_at_the_limit() {
        let server = Server::start(None);
        let mut http = reader(&[server.url("/")]);
        for path in ["/huge", "/endless"] {
            let started = Instant::now();
            let got = http.get(server.url(path), 4096).unwrap();
            assert_eq!((got.body.len(), got.truncated), (4096, true), "{path}");
            let huge = http.get(server.url(path), u32::MAX).unwrap();
            assert_eq!(huge.body.len(), MAX_BODY, "{path}: never more than the host's limit");
            assert!(started.elapsed() < REQUEST_TIMEOUT, "{path}: read no further");
        }
    }

    #[test]
    fn a_server_that_never_finishes_answering_is_cut_off_at_the_timeout() {
        let server = Server::start(None);
        let mut http = reader(&[server.url("/")]);
        let started = Instant::now();
        let error = http.get(server.url("/slow"), 100).unwrap_err();
        assert!(matches!(error, ApiError::Unavailable(ref why) if why.contains("no answer within")), "{error:?}");
        assert!(started.elapsed() < REQUEST_TIMEOUT + Duration::from_secs(2));
    }

    #[test]
    fn a_metrics_page_is_parsed_and_a_token_goes_only_where_granted() {
        let server = Server::start(None);
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let grant = HttpGrant {
            urls: vec![server.url("/")],
            credentials: [(server.url("/admin"), token)].into(),
        };
        let mut http = HttpReader::new(&grant, Arc::default(), Arc::default());
        let mut samples = http.scrape(server.url("/metrics")).unwrap();
        samples.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(samples.len(), 2);
        assert_eq!((samples[0].name.as_str(), samples[0].value), ("rss", 3.5e9));
        assert_eq!(samples[1].labels, [("job".to_string(), "api".to_string())]);
        assert_eq!(*server.authorization.lock().unwrap(), None, "no token for /metrics");
        http.head(server.url("/admin/stats")).unwrap();
        assert_eq!(
            server.authorization.lock().unwrap().as_deref(),
            Some("bearer s3cret")
        );
    }
}
