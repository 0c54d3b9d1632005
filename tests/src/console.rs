//! A user of the web console in tests: a cookie jar and the CSRF token of the last page, over
//! [`crate::http`], with the `Host` header a browser opening the listen address sends.

use std::net::SocketAddr;

use anyhow::Context;

use crate::http::{HttpResponse, form_encode, request};

/// A password long enough for the console (12 characters at least).
pub const PASSWORD: &str = "correct horse battery";

/// Creates a console account through the real CLI (password on stdin), failing on error.
pub fn add_user(endpoint: &str, name: &str, role: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut child = std::process::Command::new(crate::bin("passerelle"))
        .args(["--endpoint", endpoint, "gui", "user", "add", name, "--role", role])
        .env_remove("PASSERELLE_ENDPOINT")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(format!("{PASSWORD}\n").as_bytes())?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(
        output.status.success(),
        "gui user add failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// A browser-like client of the console.
#[derive(Debug, Clone)]
pub struct Console {
    /// The console's address.
    pub addr: SocketAddr,
    /// The `Host` header sent (the listen address, as a browser would).
    pub host: String,
    cookies: Vec<(String, String)>,
    /// The CSRF token of the last page that had a form.
    pub csrf: String,
    /// Every URL the client was sent to or could follow (links, form actions, redirects).
    pub urls_seen: Vec<String>,
}

impl Console {
    /// A client with no session.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, host: addr.to_string(), cookies: Vec::new(), csrf: String::new(), urls_seen: Vec::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<HttpResponse> {
        self.urls_seen.push(path.to_string());
        let cookie = self.cookie_header();
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if !cookie.is_empty() {
            all.push(("Cookie", &cookie));
        }
        let response = request(self.addr, method, path, &self.host, &all, body).await?;
        for set in response.headers_all("set-cookie") {
            let pair = set.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(k, _)| k != name);
                if !value.is_empty() {
                    self.cookies.push((name.to_string(), value.to_string()));
                }
            }
        }
        if let Some(token) = csrf_of(&response.body) {
            self.csrf = token;
        }
        if let Some(location) = response.header("location") {
            self.urls_seen.push(location.to_string());
        }
        self.urls_seen.extend(urls_in(&response.body));
        Ok(response)
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<HttpResponse> {
        self.send("GET", path, &[], b"").await
    }

    /// `POST path` with `fields` and the current CSRF token.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> anyhow::Result<HttpResponse> {
        let csrf = self.csrf.clone();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &form_encode(&all)).await
    }

    /// `POST path` with exactly this urlencoded body (no token added).
    pub async fn post_raw(&mut self, path: &str, body: &str) -> anyhow::Result<HttpResponse> {
        self.send("POST", path, &[("Content-Type", "application/x-www-form-urlencoded")], body.as_bytes())
            .await
    }

    /// `POST path` as `multipart/form-data` with the CSRF token and one file field.
    pub async fn upload(
        &mut self,
        path: &str,
        field: &str,
        filename: &str,
        content: &[u8],
    ) -> anyhow::Result<HttpResponse> {
        let boundary = "passerelleTestBoundary7MA4YWxk";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: text/csv\r\n\r\n",
            self.csrf
        )
        .into_bytes();
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={boundary}");
        self.send("POST", path, &[("Content-Type", &content_type)], &body).await
    }

    /// Logs in (getting the login form first, for its token); returns the login POST's response.
    pub async fn login(&mut self, name: &str, password: &str) -> anyhow::Result<HttpResponse> {
        self.get("/connexion").await?;
        self.post("/connexion", &[("name", name), ("password", password)]).await
    }
}

/// The value of the first `name="csrf"` hidden field of a page.
pub fn csrf_of(page: &str) -> Option<String> {
    let at = page.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().map(str::to_string)
}

/// Every `href`, `action` and `src` of a page.
pub fn urls_in(page: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["href=\"", "action=\"", "src=\""] {
        let mut rest = page;
        while let Some(at) = rest.find(attribute) {
            rest = &rest[at + attribute.len()..];
            if let Some(url) = rest.split('"').next() {
                urls.push(url.replace("&amp;", "&"));
            }
        }
    }
    urls
}
