//! The node's console accounts: the shared rules of [`crate::store::gui_users`] on the node's
//! store, under the node's write lock.

use passerelle_proto::v1::{GuiRole, GuiUser};

use super::Node;
use crate::error::Result;
use crate::store::gui_users;

impl Node {
    /// Adds a console account (blocking: hashes `password`). Refuses an existing name unless
    /// `replace`.
    pub fn add_gui_user(&self, name: &str, role: i32, password: &str, replace: bool) -> Result<GuiUser> {
        let account = gui_users::account(name, role, password)?;
        let _guard = self.write_lock();
        gui_users::insert(&*self.store, name, account, replace)
    }

    /// The console accounts, by name.
    pub fn list_gui_users(&self) -> Result<Vec<GuiUser>> {
        gui_users::list(&*self.store)
    }

    /// Whether any console account exists.
    pub fn has_gui_users(&self) -> Result<bool> {
        gui_users::any(&*self.store)
    }

    /// Removes a console account.
    pub fn remove_gui_user(&self, name: &str) -> Result<()> {
        let _guard = self.write_lock();
        gui_users::remove(&*self.store, name)
    }

    /// The role of the account `name` if it exists.
    pub fn gui_role(&self, name: &str) -> Result<Option<GuiRole>> {
        gui_users::role(&*self.store, name)
    }

    /// Checks a login (blocking): the account's role if `password` is its password.
    pub fn gui_login(&self, name: &str, password: &str) -> Result<Option<GuiRole>> {
        gui_users::login(&*self.store, name, password)
    }
}
