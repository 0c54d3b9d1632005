//! What every request and response of the console goes through: the `Host` check, cookies, and
//! the security headers.

use hyper::HeaderMap;
use hyper::header::{self, HeaderValue};

/// The Content-Security-Policy of every response: only the console's own origin, no inline
/// script or style, no framing, forms posting back to the console only.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Whether the request's `Host` header is one the console answers to. A browser sends the name
/// it resolved; a page of another site whose name was rebound to this address sends its own
/// name and is refused. A request without `Host` (HTTP/1.0) is refused too.
pub(crate) fn host_allowed(headers: &HeaderMap, hosts: &[String]) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    let host = host.trim().to_ascii_lowercase();
    hosts.contains(&host)
}

/// The request's cookies, as name and value (at most 32, as a bound).
pub(crate) fn cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .take(32)
        .collect()
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, path `/`, `Secure` under TLS; `max_age`
/// 0 deletes it.
pub(crate) fn cookie(name: &str, value: &str, tls: bool, max_age: Option<u64>) -> String {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if tls {
        cookie.push_str("; Secure");
    }
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    cookie
}

/// Sets the content type.
pub(crate) fn content_type(headers: &mut HeaderMap, value: &'static str) {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
}

/// The headers every response carries.
pub(crate) fn secure_headers(headers: &mut HeaderMap, tls: bool) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    headers
        .insert("permissions-policy", HeaderValue::from_static("camera=(), microphone=(), geolocation=()"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        // Pages hold personal data: never kept by a shared or back-forward cache.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if tls {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_hosts_pass() {
        let hosts = vec!["127.0.0.1:8384".to_string(), "localhost:8384".to_string()];
        let with = |host: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_str(host).expect("header"));
            host_allowed(&headers, &hosts)
        };
        assert!(with("127.0.0.1:8384"));
        assert!(with("LOCALHOST:8384"));
        assert!(!with("evil.example:8384"));
        assert!(!with("127.0.0.1:8385"));
        assert!(!host_allowed(&HeaderMap::new(), &hosts));
    }
}
