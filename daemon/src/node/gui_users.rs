//! The web console's accounts, kept in the node's store (`gui_users` tree).
//!
//! One account per person, so that consents collected in the console say who collected them.
//! Passwords are hashed with Argon2id (RustCrypto's `argon2`, default parameters: 19 MiB, 2
//! passes) into a PHC string that carries its own salt and parameters; the clear password is
//! never stored nor logged. Accounts are managed over the local API (operator-only:
//! `passerelle gui user add|list|remove`) and checked by the console's login
//! ([`Node::gui_login`]). Account changes are not personal data of supported persons, so they go
//! neither to the outbox nor to the audit log.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use passerelle_proto::date::now_unix_ms;
use passerelle_proto::v1::{GuiRole, GuiUser};
use passerelle_proto::validate;
use prost::Message;

use super::Node;
use crate::error::{Error, Result};
use crate::store::{Tree, WriteBatch};

/// An account as stored.
#[derive(Clone, PartialEq, Message)]
struct GuiAccount {
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

impl Node {
    /// Adds a console account, hashing `password` (blocking: about 20 MiB and tens of
    /// milliseconds of work). Refuses an existing name unless `replace`.
    pub fn add_gui_user(&self, name: &str, role: i32, password: &str, replace: bool) -> Result<GuiUser> {
        validate::gui_user_name("name", name)?;
        let role = validate::code::<GuiRole>("role", role)?;
        validate::gui_password("password", password)?;
        let password_hash = Argon2::default()
            .hash_password(password.as_bytes())
            .map_err(|e| Error::Internal(format!("hashing a console password: {e}")))?
            .to_string();
        let account = GuiAccount { role: role as i32, password_hash, created_at_ms: now_unix_ms() };
        let _guard = self.write_lock();
        if !replace && self.store.get(Tree::GuiUsers, name.as_bytes())?.is_some() {
            return Err(Error::AlreadyExists(format!(
                "console account {name} already exists (remove it first, or replace it)"
            )));
        }
        let mut batch = WriteBatch::new();
        batch.put(Tree::GuiUsers, name.as_bytes(), account.encode_to_vec());
        self.commit(batch)?;
        Ok(GuiUser { name: name.to_string(), role: role as i32, created_at_ms: account.created_at_ms })
    }

    /// The console accounts, by name.
    pub fn list_gui_users(&self) -> Result<Vec<GuiUser>> {
        self.store
            .scan(Tree::GuiUsers, &[], None, usize::MAX)?
            .into_iter()
            .map(|(key, raw)| {
                let account: GuiAccount = super::decode(Tree::GuiUsers, &raw)?;
                Ok(GuiUser {
                    name: String::from_utf8_lossy(&key).into_owned(),
                    role: account.role,
                    created_at_ms: account.created_at_ms,
                })
            })
            .collect()
    }

    /// Whether any console account exists (until one does, the console only says how to
    /// create one).
    pub fn has_gui_users(&self) -> Result<bool> {
        Ok(!self.store.scan(Tree::GuiUsers, &[], None, 1)?.is_empty())
    }

    /// Removes a console account.
    pub fn remove_gui_user(&self, name: &str) -> Result<()> {
        validate::gui_user_name("name", name)?;
        let _guard = self.write_lock();
        if self.store.get(Tree::GuiUsers, name.as_bytes())?.is_none() {
            return Err(Error::NotFound { what: "console account", id: name.to_string() });
        }
        let mut batch = WriteBatch::new();
        batch.delete(Tree::GuiUsers, name.as_bytes());
        self.commit(batch)
    }

    /// The role of the account `name` if it exists (a session is valid only while it does).
    pub fn gui_role(&self, name: &str) -> Result<Option<GuiRole>> {
        if validate::gui_user_name("name", name).is_err() {
            return Ok(None);
        }
        let Some(account) = self.load::<GuiAccount>(Tree::GuiUsers, name.as_bytes())? else {
            return Ok(None);
        };
        Ok(GuiRole::try_from(account.role).ok())
    }

    /// Checks a login: the account's role if `password` is its password, `None` otherwise
    /// (unknown name or wrong password alike, in about the same time). Blocking.
    pub fn gui_login(&self, name: &str, password: &str) -> Result<Option<GuiRole>> {
        let account = if validate::gui_user_name("name", name).is_ok()
            && password.chars().count() <= validate::MAX_GUI_PASSWORD_CHARS
        {
            self.load::<GuiAccount>(Tree::GuiUsers, name.as_bytes())?
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
}
