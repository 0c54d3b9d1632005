//! A small WebDriver client (W3C protocol, JSON over HTTP) driving Debian's headless Chromium
//! through `chromedriver`, for the console's real-browser test. It speaks the protocol over
//! [`crate::http`]: no browser-automation crate, and nothing fetched at run time.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::http::request;

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether the browser and its driver are installed.
pub fn available() -> bool {
    Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
}

/// A chromedriver process and one headless browser session.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

impl Browser {
    /// Starts chromedriver on `port` (waiting for its "started successfully" line) and a headless
    /// Chromium session with a 1280×1000 window.
    pub async fn start(port: u16) -> anyhow::Result<Self> {
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning chromedriver")?;
        let stdout = driver.stdout.take().context("chromedriver stdout")?;
        let started = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            loop {
                match lines.next() {
                    Some(Ok(line)) if line.contains("started successfully") => return Ok(lines),
                    Some(Ok(_)) => {}
                    _ => bail!("chromedriver exited before it was ready"),
                }
            }
        });
        let mut lines = tokio::time::timeout(std::time::Duration::from_secs(30), started)
            .await
            .context("chromedriver did not start within 30 s")???;
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let mut browser = Self { driver, addr, session: String::new() };
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--lang=fr-FR", "--no-first-run"]
            }
        }}});
        let created = browser.call("POST", "/session", Some(capabilities)).await?;
        browser.session = created["sessionId"].as_str().context("no session id")?.to_string();
        // Finding an element waits up to 10 s for it to appear: after a click that submits a
        // form, the next page's elements are what the test waits for (never a sleep).
        browser.call("POST", &browser.at("/timeouts"), Some(json!({"implicit": 10_000}))).await?;
        Ok(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers: &[(&str, &str)] =
            if method == "POST" { &[("Content-Type", "application/json")] } else { &[] };
        let host = self.addr.to_string();
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            request(self.addr, method, path, &host, headers, body.as_bytes()),
        )
        .await
        .with_context(|| format!("webdriver {method} {path}: no answer within 60 s"))??;
        let value: Value = serde_json::from_str(&response.body)
            .with_context(|| format!("webdriver {method} {path}: not JSON: {}", response.body))?;
        if response.status != 200 {
            bail!("webdriver {method} {path}: {} {}", response.status, value["value"]);
        }
        Ok(value["value"].clone())
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call("POST", &self.at("/url"), Some(json!({"url": url}))).await.map(|_| ())
    }

    /// The current URL.
    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(self.call("GET", &self.at("/url"), None).await?.as_str().unwrap_or_default().to_string())
    }

    /// The page's HTML as the browser has it.
    pub async fn source(&self) -> anyhow::Result<String> {
        Ok(self.call("GET", &self.at("/source"), None).await?.as_str().unwrap_or_default().to_string())
    }

    /// The element matching a CSS selector.
    pub async fn find(&self, css: &str) -> anyhow::Result<String> {
        let found = self
            .call("POST", &self.at("/element"), Some(json!({"using": "css selector", "value": css})))
            .await
            .with_context(|| format!("finding {css}"))?;
        Ok(found[ELEMENT]
            .as_str()
            .with_context(|| format!("no element reference for {css}: {found}"))?
            .to_string())
    }

    /// Clears a field and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.call("POST", &self.at(&format!("/element/{element}/clear")), Some(json!({}))).await?;
        self.call("POST", &self.at(&format!("/element/{element}/value")), Some(json!({"text": text})))
            .await?;
        Ok(())
    }

    /// Clicks an element (a button submits its form and the page loads).
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.call("POST", &self.at(&format!("/element/{element}/click")), Some(json!({}))).await.map(|_| ())
    }

    /// The text content of an element.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let element = self.find(css).await?;
        Ok(self
            .call("GET", &self.at(&format!("/element/{element}/text")), None)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The current `value` property of a field (a date input's is `YYYY-MM-DD`).
    pub async fn value(&self, css: &str) -> anyhow::Result<String> {
        let element = self.find(css).await?;
        let value = self.call("GET", &self.at(&format!("/element/{element}/property/value")), None).await?;
        Ok(value.as_str().unwrap_or_default().to_string())
    }

    /// Sends keys to the page's focused element (Tab is `\u{E004}`).
    pub async fn keys(&self, text: &str) -> anyhow::Result<()> {
        let active = self.call("GET", &self.at("/element/active"), None).await?;
        let element = active[ELEMENT].as_str().context("no focused element")?.to_string();
        self.call("POST", &self.at(&format!("/element/{element}/value")), Some(json!({"text": text})))
            .await
            .map(|_| ())
    }

    /// The `id` (or tag) of the focused element.
    pub async fn focused(&self) -> anyhow::Result<String> {
        let active = self.call("GET", &self.at("/element/active"), None).await?;
        let element = active[ELEMENT].as_str().context("no focused element")?.to_string();
        let id = self.call("GET", &self.at(&format!("/element/{element}/attribute/id")), None).await?;
        Ok(id.as_str().unwrap_or_default().to_string())
    }

    /// Saves a PNG screenshot of the window to `dir/name.png`.
    pub async fn screenshot(&self, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
        let encoded = self.call("GET", &self.at("/screenshot"), None).await?;
        let png = base64_decode(encoded.as_str().context("no screenshot")?)?;
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// Ends the session and the driver.
    pub async fn quit(mut self) -> anyhow::Result<()> {
        let _ = self.call("DELETE", &format!("/session/{}", self.session), None).await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        self.session.clear();
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (what WebDriver screenshots are).
fn base64_decode(text: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("not base64: {:?}", c as char),
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes() -> anyhow::Result<()> {
        assert_eq!(super::base64_decode("UGFzc2VyZWxsZQ==")?, b"Passerelle");
        Ok(())
    }
}
