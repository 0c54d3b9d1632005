//! `passerelle gui user add|list|remove`: the web console's accounts, over the local API of a
//! node (`StructureService`) or of a hub (`HubAdmin`): the node's is tried first, and a service
//! that answers `UNIMPLEMENTED` (nothing was done) means the endpoint is a hub's.
//!
//! The password is read on standard input, never on the command line (where `ps` and shell
//! history would see it): on a terminal it is asked twice with echo off, otherwise the first
//! line is taken, so scripts can pipe it.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use passerelle_client::{Error, HubClient, NodeClient, TlsFiles};
use passerelle_proto::validate::FieldError;

use super::args::{Format, GuiCommand, GuiUserCommand};
use super::render;
use super::views::{DeletedView, GuiUserView};

/// Whether `error` says the endpoint does not serve the node's API (it is a hub's).
fn not_a_node(error: &Error) -> bool {
    matches!(error, Error::Status(status) if status.code() == tonic::Code::Unimplemented)
}

/// Runs a `gui` command against the node or hub at `endpoint`.
pub(crate) async fn run(
    format: Format,
    command: GuiCommand,
    endpoint: &str,
    tls: Option<&TlsFiles>,
) -> Result<std::io::Result<()>, Error> {
    let GuiCommand::User(command) = command;
    match command {
        GuiUserCommand::Add { name, role, replace } => {
            passerelle_proto::validate::gui_user_name("name", &name)?;
            let password = read_password()?;
            passerelle_proto::validate::gui_password("password", &password)?;
            let mut node = NodeClient::connect(endpoint, tls).await?;
            let user = match node.add_gui_user(&name, role, &password, replace).await {
                Err(e) if not_a_node(&e) => {
                    HubClient::connect(endpoint, tls)
                        .await?
                        .add_gui_user(&name, role, &password, replace)
                        .await?
                }
                other => other?,
            };
            Ok(render::one(format, &GuiUserView::from(user)))
        }
        GuiUserCommand::List => {
            let mut node = NodeClient::connect(endpoint, tls).await?;
            let users = match node.gui_users().await {
                Err(e) if not_a_node(&e) => HubClient::connect(endpoint, tls).await?.gui_users().await?,
                other => other?,
            };
            Ok(render::list_of::<_, GuiUserView>(format, users))
        }
        GuiUserCommand::Remove { name } => {
            let mut node = NodeClient::connect(endpoint, tls).await?;
            match node.remove_gui_user(&name).await {
                Err(e) if not_a_node(&e) => {
                    HubClient::connect(endpoint, tls).await?.remove_gui_user(&name).await?
                }
                other => other?,
            }
            Ok(render::one(format, &DeletedView { id: name, deleted: true }))
        }
    }
}

/// The password from standard input: twice, without echo, on a terminal; the first line otherwise.
fn read_password() -> Result<String, Error> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| FieldError::rule("password", format!("cannot read standard input: {e}")))?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    let first = prompt("Mot de passe (12 caractères au moins) : ")?;
    let second = prompt("Le même, encore : ")?;
    if first != second {
        return Err(FieldError::rule("password", "the two entries differ").into());
    }
    Ok(first)
}

/// Asks for one line on the terminal with echo turned off (restored even on error).
fn prompt(question: &str) -> Result<String, Error> {
    let unreadable =
        |e: std::io::Error| FieldError::rule("password", format!("cannot read the terminal: {e}"));
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let stdin = std::io::stdin();
    let saved = rustix::termios::tcgetattr(&stdin).map_err(|e| unreadable(e.into()))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
    rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet)
        .map_err(|e| unreadable(e.into()))?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &saved);
    eprintln!();
    read.map_err(unreadable)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
