//! A real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`), for the console tests: load a page, find, type, click, read,
//! take screenshots.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use serde_json::{Value, json};

/// The key WebDriver answers an element reference under.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process with one browser session.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    base: String,
    _profile: tempfile::TempDir,
}

/// An element of the current page.
#[derive(Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session, with the flags
    /// this machine's closed network needs.
    pub async fn start() -> Result<Self> {
        let port = crate::free_port()?;
        // Its own process group, so the browsers it starts go down with it.
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver (apt-get install chromium chromium-driver)")?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not start within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir()?;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let mut browser = Self {
            driver,
            http,
            session: String::new(),
            base,
            _profile: profile,
        };
        let answer = browser.call("POST", "/session", Some(capabilities)).await?;
        browser.session = answer["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session id in {answer}"))?
            .to_string();
        Ok(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let answer: Value = request
            .send()
            .await
            .with_context(|| format!("WebDriver {method} {path}"))?
            .json()
            .await?;
        if let Some(error) = answer["value"].get("error") {
            bail!(
                "WebDriver {method} {path}: {error} {}",
                answer["value"]["message"]
            );
        }
        Ok(answer["value"].clone())
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub async fn open(&self, url: &str) -> Result<()> {
        self.call("POST", &self.at("/url"), Some(json!({"url": url})))
            .await
            .map(|_| ())
    }

    /// The first element matching a CSS selector, waiting up to `timeout` for it.
    pub async fn find(&self, selector: &str, timeout: Duration) -> Result<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .call(
                    "POST",
                    &self.at("/element"),
                    Some(json!({"using": "css selector", "value": selector})),
                )
                .await;
            match found {
                Ok(v) => {
                    if let Some(id) = v[ELEMENT].as_str() {
                        return Ok(Element(id.to_string()));
                    }
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(format!("no element {selector:?}")));
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Finds and clicks the element matching `selector`, again if the page re-rendered it
    /// in between (the console redraws once a second).
    pub async fn click_on(&self, selector: &str, timeout: Duration) -> Result<()> {
        self.retry_stale(selector, timeout, |e| async move { self.click(&e).await })
            .await
    }

    /// Finds the field matching `selector` and types into it, again if it was redrawn.
    pub async fn type_into(&self, selector: &str, text: &str, timeout: Duration) -> Result<()> {
        self.retry_stale(selector, timeout, |e| async move {
            self.type_text(&e, text).await
        })
        .await
    }

    async fn retry_stale<F, Fut>(&self, selector: &str, timeout: Duration, act: F) -> Result<()>
    where
        F: Fn(Element) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let element = self.find(selector, timeout).await?;
            match act(element).await {
                // The element was replaced between finding and acting on it.
                Err(e)
                    if (format!("{e}").contains("stale element")
                        || format!("{e}").contains("not interactable"))
                        && Instant::now() < deadline =>
                {
                    continue;
                }
                other => return other,
            }
        }
    }

    pub async fn click(&self, element: &Element) -> Result<()> {
        self.call(
            "POST",
            &self.at(&format!("/element/{}/click", element.0)),
            None,
        )
        .await
        .map(|_| ())
    }

    pub async fn type_text(&self, element: &Element, text: &str) -> Result<()> {
        self.call(
            "POST",
            &self.at(&format!("/element/{}/value", element.0)),
            Some(json!({"text": text})),
        )
        .await
        .map(|_| ())
    }

    pub async fn text(&self, element: &Element) -> Result<String> {
        let v = self
            .call(
                "GET",
                &self.at(&format!("/element/{}/text", element.0)),
                None,
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    pub async fn attribute(&self, element: &Element, name: &str) -> Result<Option<String>> {
        let v = self
            .call(
                "GET",
                &self.at(&format!("/element/{}/attribute/{name}", element.0)),
                None,
            )
            .await?;
        Ok(v.as_str().map(str::to_string))
    }

    /// Waits until the text of the element matching `selector` satisfies `check`
    /// (elements are looked up afresh: the page re-renders).
    pub async fn wait_text(
        &self,
        selector: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(e) = self.find(selector, Duration::ZERO).await
                && let Ok(text) = self.text(&e).await
            {
                if check(&text) {
                    return Ok(text);
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{selector:?} never matched; last text {last:?}")
    }

    /// Saves a PNG of the window to `dir/name.png`.
    pub async fn screenshot(&self, dir: &Path, name: &str) -> Result<PathBuf> {
        let v = self.call("GET", &self.at("/screenshot"), None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .context("decoding the screenshot")?;
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.driver.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}
