//! The web console's accounts (`gui_users` tree), one copy of the rules for nodes and hubs.
//!
//! One account per person, so that what is done in the console says who did it. Passwords are
//! hashed with Argon2id (RustCrypto's `argon2`, default parameters: 19 MiB, 2 passes) into a PHC
//! string that carries its own salt and parameters; the clear password is never stored nor
//! logged. Accounts are managed over the local operator API (`passerelle gui user
//! add|list|remove`, served by the node's and the hub's API alike) and checked by the console's
//! login ([`login`]). Account changes are not personal data of supported persons, so they go
//! neither to an outbox nor to the audit log. Why here and not in `node` or `hub`: both roles
//! keep accounts in their own store with the same rules; the owner only supplies its store and
//! holds its write lock around [`insert`] and [`remove`].

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use passerelle_proto::date::now_unix_ms;
use passerelle_proto::v1::{GuiRole, GuiUser};
use passerelle_proto::validate;
use prost::Message;

use super::{Store, StoreError, Tree, WriteBatch};
use crate::error::{Error, Result};

/// An account as stored.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct GuiAccount {
    /// `GuiRole`.
    #[prost(int32, tag = "1")]
    role: i32,
    /// The Argon2id PHC string (`$argon2id$v=19$m=…`).
    #[prost(string, tag = "2")]
    password_hash: String,
    /// When created or its password last set, milliseconds since the Unix epoch.
    #[prost(int64, tag = "3")]
    created_at_ms: i64,
}

/// A PHC string that no password matches, verified when the name is unknown so that a login
/// for a missing account costs as much as one for a wrong password (no account enumeration by
/// timing). Computed once.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        Argon2::default()
            .hash_password(b"passerelle decoy password, never set")
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

fn load(store: &dyn Store, name: &str) -> Result<Option<GuiAccount>> {
    store
        .get(Tree::GuiUsers, name.as_bytes())?
        .map(|raw| {
            GuiAccount::decode(raw.as_slice())
                .map_err(|e| Error::Store(StoreError(format!("corrupt console account {name}: {e}"))))
        })
        .transpose()
}

/// Checks a new account and hashes its password (blocking: about 20 MiB and tens of
/// milliseconds of work; done before the owner takes its write lock).
pub(crate) fn account(name: &str, role: i32, password: &str) -> Result<GuiAccount> {
    validate::gui_user_name("name", name)?;
    let role = validate::code::<GuiRole>("role", role)?;
    validate::gui_password("password", password)?;
    let password_hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| Error::Internal(format!("hashing a console password: {e}")))?
        .to_string();
    Ok(GuiAccount { role: role as i32, password_hash, created_at_ms: now_unix_ms() })
}

/// Stores `account` as `name` (the caller holds its write lock). Refuses an existing name
/// unless `replace`.
pub(crate) fn insert(store: &dyn Store, name: &str, account: GuiAccount, replace: bool) -> Result<GuiUser> {
    if !replace && store.get(Tree::GuiUsers, name.as_bytes())?.is_some() {
        return Err(Error::AlreadyExists(format!(
            "console account {name} already exists (remove it first, or replace it)"
        )));
    }
    let user = GuiUser { name: name.to_string(), role: account.role, created_at_ms: account.created_at_ms };
    let mut batch = WriteBatch::new();
    batch.put(Tree::GuiUsers, name.as_bytes(), account.encode_to_vec());
    store.commit(batch)?;
    Ok(user)
}

/// The console accounts, by name.
pub(crate) fn list(store: &dyn Store) -> Result<Vec<GuiUser>> {
    store
        .scan(Tree::GuiUsers, &[], None, usize::MAX)?
        .into_iter()
        .map(|(key, raw)| {
            let account = GuiAccount::decode(raw.as_slice())
                .map_err(|e| Error::Store(StoreError(format!("corrupt console account: {e}"))))?;
            Ok(GuiUser {
                name: String::from_utf8_lossy(&key).into_owned(),
                role: account.role,
                created_at_ms: account.created_at_ms,
            })
        })
        .collect()
}

/// Whether any console account exists (until one does, the console only says how to create one).
pub(crate) fn any(store: &dyn Store) -> Result<bool> {
    Ok(!store.scan(Tree::GuiUsers, &[], None, 1)?.is_empty())
}

/// Removes a console account (the caller holds its write lock).
pub(crate) fn remove(store: &dyn Store, name: &str) -> Result<()> {
    validate::gui_user_name("name", name)?;
    if store.get(Tree::GuiUsers, name.as_bytes())?.is_none() {
        return Err(Error::NotFound { what: "console account", id: name.to_string() });
    }
    let mut batch = WriteBatch::new();
    batch.delete(Tree::GuiUsers, name.as_bytes());
    Ok(store.commit(batch)?)
}

/// The role of the account `name` if it exists (a session is valid only while it does).
pub(crate) fn role(store: &dyn Store, name: &str) -> Result<Option<GuiRole>> {
    if validate::gui_user_name("name", name).is_err() {
        return Ok(None);
    }
    Ok(load(store, name)?.and_then(|a| GuiRole::try_from(a.role).ok()))
}

/// Checks a login: the account's role if `password` is its password, `None` otherwise (unknown
/// name or wrong password alike, in about the same time). Blocking.
pub(crate) fn login(store: &dyn Store, name: &str, password: &str) -> Result<Option<GuiRole>> {
    let account = if validate::gui_user_name("name", name).is_ok()
        && password.chars().count() <= validate::MAX_GUI_PASSWORD_CHARS
    {
        load(store, name)?
    } else {
        None
    };
    let stored = account.as_ref().map_or(decoy_hash(), |a| a.password_hash.as_str());
    let parsed = PasswordHash::new(stored)
        .map_err(|e| Error::Internal(format!("console account {name}: unreadable password hash: {e}")))?;
    let matches = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
    Ok(match account {
        Some(account) if matches => GuiRole::try_from(account.role).ok(),
        _ => None,
    })
}
