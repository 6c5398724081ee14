//! A small stand-in for the platform's API that a test controls: `/health`
//! answers 200 while it is up and 503 while it is down, and `/metrics`
//! (Prometheus text) counts requests by status code, a share of them
//! failing, and its resident memory. Down, `/metrics` answers 503 too, so
//! Prometheus records `up == 0`.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct State {
    pub up: bool,
    /// Failing requests per hundred.
    pub failing_percent: u64,
    pub rss_bytes: u64,
    ok_total: u64,
    failed_total: u64,
}

pub struct FakeApi {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    pub fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            up: true,
            failing_percent: 0,
            rss_bytes: 1_000_000_000,
            ok_total: 0,
            failed_total: 0,
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, &shared);
            }
        });
        FakeApi { addr, state }
    }

    pub fn set(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap());
    }

    pub fn is_up(&self) -> bool {
        self.state.lock().unwrap().up
    }

    pub fn health_url(&self) -> String {
        format!("http://{}/health", self.addr)
    }
}

fn answer(mut stream: std::net::TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut first = String::new();
    let mut reader = BufReader::new(stream.try_clone()?);
    reader.read_line(&mut first)?;
    while reader.read_line(&mut String::new())? > 2 {}
    let path = first.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = respond(path, &mut state.lock().unwrap());
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn respond(path: &str, state: &mut State) -> (&'static str, String) {
    if !state.up {
        return ("503 Service Unavailable", "down\n".into());
    }
    match path {
        "/health" => ("200 OK", "ok\n".into()),
        "/metrics" => {
            // A hundred requests served since the last scrape.
            state.failed_total += state.failing_percent;
            state.ok_total += 100 - state.failing_percent;
            let body = format!(
                "# TYPE http_requests_total counter\n\
                 http_requests_total{{code=\"200\"}} {}\n\
                 http_requests_total{{code=\"500\"}} {}\n\
                 # TYPE process_resident_memory_bytes gauge\n\
                 process_resident_memory_bytes {}\n",
                state.ok_total, state.failed_total, state.rss_bytes
            );
            ("200 OK", body)
        }
        _ => ("404 Not Found", "not found\n".into()),
    }
}
