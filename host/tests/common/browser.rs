//! A real headless Chromium, driven through chromedriver over WebDriver
//! (Debian's `chromium` and `chromium-driver`, installed by scripts/test).

use super::daemon::try_request;
use super::ports::free_addr;
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DRIVER: &str = "chromedriver";

pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
}

impl Browser {
    pub fn start(dir: &Path) -> Browser {
        let addr = free_addr();
        let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
        let driver = Command::new(DRIVER)
            .arg(format!("--port={}", addr.port()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {DRIVER}: {e}; install Debian's chromium and chromium-driver (scripts/test does)")
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(try_request(addr, "GET", "/status", &[], b""), Ok((200, _))) {
            assert!(Instant::now() < deadline, "{DRIVER} not answering in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                // Root in CI: Chromium's own sandbox needs a user namespace it may not get.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
            }
        });
        let client = runtime
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(capabilities.as_object().unwrap().clone())
                    .connect(&format!("http://{addr}")),
            )
            .unwrap_or_else(|e| panic!("no Chromium session: {e}"));
        Browser {
            runtime,
            client: Some(client),
            driver,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub fn goto(&self, url: &str) {
        self.runtime
            .block_on(self.client().goto(url))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }

    /// The visible text of the page's `<main>`.
    pub fn text(&self) -> String {
        self.runtime.block_on(async {
            let main = self.client().find(Locator::Css("main")).await.unwrap();
            main.text().await.unwrap()
        })
    }

    pub fn count(&self, css: &str) -> usize {
        self.runtime
            .block_on(self.client().find_all(Locator::Css(css)))
            .unwrap()
            .len()
    }

    pub fn click(&self, css: &str) {
        self.runtime.block_on(async {
            let element = self
                .client()
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("no {css}: {e}"));
            element.click().await.unwrap();
        })
    }

    pub fn fill(&self, css: &str, text: &str) {
        self.runtime.block_on(async {
            let element = self.client().find(Locator::Css(css)).await.unwrap();
            element.send_keys(text).await.unwrap();
        })
    }

    /// Run `script` in the page; its return value.
    pub fn eval(&self, script: &str) -> serde_json::Value {
        self.runtime
            .block_on(self.client().execute(script, Vec::new()))
            .unwrap()
    }

    pub fn screenshot(&self, path: &Path) {
        let png = self.runtime.block_on(self.client().screenshot()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Wait until the page holds an element `css` finds, without navigating.
    pub fn wait_for(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.count(css) == 0 {
            assert!(
                Instant::now() < deadline,
                "{css} never appeared: {}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Wait until the page's text holds `needle`, without navigating.
    pub fn wait_for_text(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} never appeared: {}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
