//! The daemon's configuration file (TOML), parsed strictly and validated with precise messages.
//!
//! Unknown keys are errors (`deny_unknown_fields`), so a typo never silently falls back to a
//! default. Validation errors name the file, the line and the field, e.g.
//! `node.toml:4: node.siret "123": expected 14 digits`. Relative paths are resolved against the
//! directory of the configuration file, so a config and its data can move together.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use passerelle_proto::codes::Code;
use passerelle_proto::v1::{Structure, StructureKind};
use passerelle_proto::validate::{self, FieldError};
use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};

/// Where the node's local API listens when the config does not say.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:7401";

/// A daemon's configuration, as written in its TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory holding the daemon's database. Created if missing; relative to the config file.
    pub data_dir: Spanned<PathBuf>,
    /// The structure this node belongs to.
    pub node: NodeSection,
    /// The local API.
    #[serde(default)]
    pub api: ApiSection,
}

/// `[node]`: the identity of the structure running this node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// SIRET of the structure (14 digits, Luhn checksum).
    pub siret: Spanned<String>,
    /// Kind of structure: `ai`, `aci`, `ei`, `etti` or `eiti`.
    pub kind: Spanned<String>,
    /// Name of the structure, as partners know it.
    pub name: Spanned<String>,
    /// Département of the structure's main site, e.g. `49`.
    pub departement: Spanned<String>,
}

/// `[api]`: the structure's local API, used by the `passerelle` CLI.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Address to listen on, e.g. `127.0.0.1:7401`. Port 0 picks a free port.
    #[serde(default = "default_api_listen")]
    pub listen: Spanned<String>,
}

fn default_api_listen() -> Spanned<String> {
    Spanned::new(0..0, DEFAULT_API_LISTEN.to_string())
}

impl Default for ApiSection {
    fn default() -> Self {
        Self { listen: default_api_listen() }
    }
}

/// A configuration that passed validation, with its derived values.
#[derive(Debug, Clone)]
pub struct ValidConfig {
    /// The data directory, absolute or relative to the working directory.
    pub data_dir: PathBuf,
    /// The structure's identity.
    pub structure: Structure,
    /// The local API address.
    pub api_listen: SocketAddr,
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<ValidConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: cannot read: {e}", path.display())))?;
        Self::parse(&text, path)?.validate(&text, path)
    }

    /// Parses TOML text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| format!(":{}", line_of(text, s.start))).unwrap_or_default();
            Error::Config(format!("{}{line}: {}", path.display(), e.message().trim_end_matches('.')))
        })
    }

    /// Checks every field and resolves relative paths against `path`'s directory.
    pub fn validate(self, text: &str, path: &Path) -> Result<ValidConfig> {
        let at = |field: &str, span: std::ops::Range<usize>, e: FieldError| {
            let located = FieldError { field: field.to_string(), ..e };
            let line =
                if span.is_empty() { String::new() } else { format!(":{}", line_of(text, span.start)) };
            Error::Config(format!("{}{line}: {located}", path.display()))
        };
        let node = &self.node;
        validate::siret("siret", node.siret.get_ref()).map_err(|e| at("node.siret", node.siret.span(), e))?;
        let kind = StructureKind::from_slug(node.kind.get_ref()).ok_or_else(|| {
            at(
                "node.kind",
                node.kind.span(),
                FieldError::new(
                    "kind",
                    node.kind.get_ref(),
                    format!("expected one of {}", StructureKind::choices()),
                ),
            )
        })?;
        validate::line("name", node.name.get_ref(), 1, 200)
            .map_err(|e| at("node.name", node.name.span(), e))?;
        validate::departement("departement", node.departement.get_ref())
            .map_err(|e| at("node.departement", node.departement.span(), e))?;
        let api_listen: SocketAddr = self.api.listen.get_ref().parse().map_err(|_| {
            at(
                "api.listen",
                self.api.listen.span(),
                FieldError::new(
                    "listen",
                    self.api.listen.get_ref(),
                    "expected an address like 127.0.0.1:7401",
                ),
            )
        })?;
        if !api_listen.ip().is_loopback() {
            return Err(at(
                "api.listen",
                self.api.listen.span(),
                FieldError::new(
                    "listen",
                    self.api.listen.get_ref(),
                    "the local API is plaintext and must listen on a loopback address",
                ),
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let data_dir = base.join(self.data_dir.get_ref());
        if self.data_dir.get_ref().as_os_str().is_empty() {
            return Err(at(
                "data_dir",
                self.data_dir.span(),
                FieldError::rule("data_dir", "must not be empty"),
            ));
        }
        Ok(ValidConfig {
            data_dir,
            structure: Structure {
                siret: node.siret.get_ref().clone(),
                kind: kind as i32,
                name: node.name.get_ref().clone(),
                departement: node.departement.get_ref().clone(),
            },
            api_listen,
        })
    }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
data_dir = "data"
[node]
siret = "73282932000074"
kind = "ai"
name = "Tremplin Travail"
departement = "49"
[api]
listen = "127.0.0.1:0"
"#;

    fn check(text: &str) -> Result<ValidConfig> {
        let path = Path::new("/etc/passerelle/node.toml");
        Config::parse(text, path)?.validate(text, path)
    }

    #[test]
    fn good_config_resolves_data_dir_next_to_the_file() -> anyhow::Result<()> {
        let config = check(GOOD)?;
        assert_eq!(config.data_dir, PathBuf::from("/etc/passerelle/data"));
        assert_eq!(config.structure.kind, StructureKind::Ai as i32);
        Ok(())
    }

    #[test]
    fn bad_siret_names_line_and_field() {
        let text = GOOD.replace("73282932000074", "73282932000075");
        let err = check(&text).expect_err("bad checksum").to_string();
        assert_eq!(
            err,
            "/etc/passerelle/node.toml:4: node.siret \"73282932000075\": Luhn checksum fails (check for a typing error)"
        );
    }

    #[test]
    fn unknown_keys_and_kinds_are_errors() {
        let err =
            check(&GOOD.replace("kind = \"ai\"", "kind = \"ai\"\nsirett = \"x\"")).expect_err("unknown key");
        assert!(err.to_string().contains(":6: unknown field `sirett`"), "{err}");
        let err = check(&GOOD.replace("\"ai\"", "\"asso\"")).expect_err("bad kind");
        assert!(err.to_string().contains("node.kind \"asso\": expected one of ai|aci|ei|etti|eiti"), "{err}");
    }

    #[test]
    fn non_loopback_api_is_refused() {
        let err = check(&GOOD.replace("127.0.0.1:0", "0.0.0.0:7401")).expect_err("public plaintext");
        assert!(err.to_string().contains("api.listen \"0.0.0.0:7401\": the local API is plaintext"), "{err}");
    }
}
