//! Console sessions and the login rate limit.
//!
//! Accounts live in the node's store ([`crate::node::Node::gui_login`]); sessions live here, in
//! memory: a restart logs everyone out, which is acceptable for a console. A session id is 256
//! random bits (getrandom), sent as a cookie `HttpOnly; SameSite=Strict` (`Secure` under TLS),
//! expiring after 12 hours without a request. Each session carries its own CSRF token, which
//! every form repeats in a hidden field and every POST must match. A session is valid only
//! while its account still exists, with the account's current role.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use passerelle_proto::v1::GuiRole;

/// A session ends after this long without a request.
pub(crate) const IDLE_EXPIRY: Duration = Duration::from_secs(12 * 3600);
/// Failed logins allowed per address within [`FAILURE_WINDOW`]; the next attempt gets 429.
pub(crate) const MAX_FAILURES: usize = 5;
/// The window failed logins are counted in.
pub(crate) const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Sessions (and pre-login tokens) kept at most: the oldest go first beyond it.
const MAX_SESSIONS: usize = 10_000;
/// Addresses whose failures are remembered at most (the oldest are forgotten beyond it).
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "passerelle_session";
/// The cookie that carries the login form's token before a session exists.
pub(crate) const LOGIN_COOKIE: &str = "passerelle_login";

/// 256 random bits, hex.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // getrandom fails only on a system without a random source, where nothing is safe: a
    // zeroed token would be guessable, so such a request fails instead (see `Sessions::open`).
    if getrandom::fill(&mut bytes).is_err() {
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two secrets in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The session id (the cookie's value).
    pub(crate) id: String,
    /// The account name.
    pub(crate) user: String,
    /// Its role when last checked.
    pub(crate) role: GuiRole,
    /// The token forms must repeat.
    pub(crate) csrf: String,
}

#[derive(Debug)]
struct Entry {
    user: String,
    csrf: String,
    last_seen: Instant,
    /// A message for the next page (after a redirect).
    flash: Option<String>,
}

/// The sessions and pre-login tokens in memory.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    sessions: Mutex<HashMap<String, Entry>>,
    login_tokens: Mutex<HashMap<String, Instant>>,
}

impl Sessions {
    /// Opens a session for `user`; `None` if no random source is available.
    pub(crate) fn open(&self, user: &str, role: GuiRole) -> Option<Session> {
        let (id, csrf) = (random_token(), random_token());
        if id.is_empty() || csrf.is_empty() {
            return None;
        }
        let mut sessions = lock(&self.sessions);
        let now = Instant::now();
        sessions.retain(|_, e| now.duration_since(e.last_seen) < IDLE_EXPIRY);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, e)| e.last_seen).map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            Entry { user: user.to_string(), csrf: csrf.clone(), last_seen: now, flash: None },
        );
        Some(Session { id, user: user.to_string(), role, csrf })
    }

    /// The session of cookie value `id`, if it is live (touching it); its role is the caller's to
    /// refresh from the store.
    pub(crate) fn get(&self, id: &str) -> Option<(String, String)> {
        let mut sessions = lock(&self.sessions);
        let now = Instant::now();
        let entry = sessions.get_mut(id)?;
        if now.duration_since(entry.last_seen) >= IDLE_EXPIRY {
            sessions.remove(id);
            return None;
        }
        entry.last_seen = now;
        Some((entry.user.clone(), entry.csrf.clone()))
    }

    /// Leaves `message` for the session's next page.
    pub(crate) fn set_flash(&self, id: &str, message: String) {
        if let Some(entry) = lock(&self.sessions).get_mut(id) {
            entry.flash = Some(message);
        }
    }

    /// The message left for this page, once.
    pub(crate) fn take_flash(&self, id: &str) -> Option<String> {
        lock(&self.sessions).get_mut(id).and_then(|e| e.flash.take())
    }

    /// Ends a session.
    pub(crate) fn close(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }

    /// A new token for the login form (kept 1 hour).
    pub(crate) fn login_token(&self) -> String {
        let token = random_token();
        let mut tokens = lock(&self.login_tokens);
        let now = Instant::now();
        tokens.retain(|_, at| now.duration_since(*at) < Duration::from_secs(3600));
        if tokens.len() >= MAX_SESSIONS {
            tokens.clear();
        }
        if !token.is_empty() {
            tokens.insert(token.clone(), now);
        }
        token
    }

    /// Whether `token` is a live login token (it stays usable for a retry after a wrong password).
    pub(crate) fn check_login_token(&self, token: &str) -> bool {
        lock(&self.login_tokens).contains_key(token)
    }

    /// Forgets a login token once it opened a session.
    pub(crate) fn spend_login_token(&self, token: &str) {
        lock(&self.login_tokens).remove(token);
    }
}

/// Failed logins per client address.
#[derive(Debug, Default)]
pub(crate) struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// Whether `addr` has used up its failed attempts for now.
    pub(crate) fn blocked(&self, addr: IpAddr) -> bool {
        let mut failures = lock(&self.failures);
        let now = Instant::now();
        match failures.get_mut(&addr) {
            Some(times) => {
                while times.front().is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW) {
                    times.pop_front();
                }
                times.len() >= MAX_FAILURES
            }
            None => false,
        }
    }

    /// Counts a failed login from `addr`.
    pub(crate) fn failed(&self, addr: IpAddr) {
        let mut failures = lock(&self.failures);
        let now = Instant::now();
        if failures.len() >= MAX_TRACKED_ADDRESSES && !failures.contains_key(&addr) {
            failures.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW));
            if failures.len() >= MAX_TRACKED_ADDRESSES {
                failures.clear();
            }
        }
        let times = failures.entry(addr).or_default();
        times.push_back(now);
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }

    /// Forgets `addr`'s failures after a successful login.
    pub(crate) fn succeeded(&self, addr: IpAddr) {
        lock(&self.failures).remove(&addr);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Maps of independent entries: a panic elsewhere cannot leave one half-written.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &b));
        assert!(!same_secret("", ""));
    }

    #[test]
    fn five_failures_block_an_address_and_a_success_clears_it() {
        let limiter = LoginLimiter::default();
        let addr: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..MAX_FAILURES {
            assert!(!limiter.blocked(addr));
            limiter.failed(addr);
        }
        assert!(limiter.blocked(addr));
        assert!(!limiter.blocked([127, 0, 0, 2].into()));
        limiter.succeeded(addr);
        assert!(!limiter.blocked(addr));
    }

    #[test]
    fn a_closed_session_is_gone() {
        let sessions = Sessions::default();
        let session = sessions.open("camille", GuiRole::Admin).expect("random source");
        assert_eq!(sessions.get(&session.id).map(|s| s.0), Some("camille".to_string()));
        sessions.close(&session.id);
        assert!(sessions.get(&session.id).is_none());
    }
}
