//! Who a peer is: a role and an id, carried in its certificate as the URI SAN
//! `passerelle://ROLE/ID`.
//!
//! The daemon reads the identity of every TLS peer from its verified certificate with
//! [`peer_of_certificate`]; nothing a peer writes in a request is trusted about who it is. The CLI
//! uses [`inspect_certificate`] for `passerelle pki show`, and the PKI uses [`PeerId::uri`] when
//! issuing.

use std::fmt;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::validate::{self, FieldError};

/// The URI scheme of Passerelle identities.
pub const URI_SCHEME: &str = "passerelle://";

/// How `passerelle pki init` names a network's CA: its subject's common name is this prefix
/// followed by the network (`Passerelle CA fas`). A hub's `client_cas` shorthand reads the network
/// a further CA speaks for from there ([`network_of_ca`]).
pub const CA_COMMON_NAME_PREFIX: &str = "Passerelle CA ";

/// What a party is allowed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A structure's node; its id is the structure's SIRET.
    Node,
    /// A network hub; its id is the hub id (`coorace-pdl`).
    Hub,
    /// A statistics consumer; its id is its organisation id (`dreets-52`).
    Consumer,
    /// A person or tool administering a node or a hub.
    Operator,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Node, Role::Hub, Role::Consumer, Role::Operator];

    /// The role's name in URIs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Hub => "hub",
            Role::Consumer => "consumer",
            Role::Operator => "operator",
        }
    }

    /// The role named `name`.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A party's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId {
    /// What it is.
    pub role: Role,
    /// Who it is, validated for its role.
    pub id: String,
}

impl PeerId {
    /// A validated identity: a node's id must be a SIRET; other ids are lowercase slugs.
    pub fn new(role: Role, id: &str) -> Result<Self, FieldError> {
        match role {
            Role::Node => validate::siret("id", id)?,
            Role::Hub | Role::Consumer | Role::Operator => validate::hub_id("id", id)?,
        }
        Ok(Self { role, id: id.to_string() })
    }

    /// `passerelle://ROLE/ID`.
    pub fn uri(&self) -> String {
        format!("{URI_SCHEME}{}/{}", self.role, self.id)
    }

    /// Parses `passerelle://ROLE/ID`.
    pub fn parse_uri(uri: &str) -> Result<Self, FieldError> {
        let rest = uri
            .strip_prefix(URI_SCHEME)
            .ok_or_else(|| FieldError::new("uri", uri, "expected passerelle://ROLE/ID"))?;
        let (role, id) = rest
            .split_once('/')
            .ok_or_else(|| FieldError::new("uri", uri, "expected passerelle://ROLE/ID"))?;
        let role = Role::parse(role)
            .ok_or_else(|| FieldError::new("uri", uri, "role must be node, hub, consumer or operator"))?;
        Self::new(role, id)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role, self.id)
    }
}

/// What `passerelle pki show` prints about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The Passerelle identity, if the certificate has exactly one valid `passerelle://` SAN.
    pub peer: Result<PeerId, String>,
    /// Serial number, lowercase hex without separators.
    pub serial: String,
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
    /// Whether it is a CA certificate.
    pub is_ca: bool,
    /// DNS names it is valid for.
    pub dns_names: Vec<String>,
    /// IP addresses it is valid for.
    pub ip_addresses: Vec<String>,
}

/// Normalises a serial number as written by people (`4F:3A…`, `0x4f3a…`) to lowercase hex.
pub fn normalize_serial(serial: &str) -> String {
    let s = serial.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    let hex: String = s.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() { "0".into() } else { trimmed.into() }
}

/// Reads a DER certificate's identity, serial, validity and names.
pub fn inspect_certificate(der: &[u8]) -> Result<CertificateInfo, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let mut uris = Vec::new();
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) => uris.push(uri.to_string()),
                GeneralName::DNSName(dns) => dns_names.push(dns.to_string()),
                GeneralName::IPAddress(bytes) => ip_addresses.push(format_ip(bytes)),
                _ => {}
            }
        }
    }
    let passerelle: Vec<&String> = uris.iter().filter(|u| u.starts_with(URI_SCHEME)).collect();
    let peer = match passerelle.as_slice() {
        [one] => PeerId::parse_uri(one).map_err(|e| e.to_string()),
        [] => Err("no passerelle:// URI in the certificate's subject alternative names".into()),
        _ => Err("more than one passerelle:// URI in the certificate".into()),
    };
    Ok(CertificateInfo {
        peer,
        serial: normalize_serial(&cert.raw_serial_as_string()),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        is_ca: cert.is_ca(),
        dns_names,
        ip_addresses,
    })
}

/// The network a CA certificate made by `passerelle pki init` speaks for, read from its subject's
/// common name (`Passerelle CA NETWORK`), validated as a network name.
pub fn network_of_ca(der: &[u8]) -> Result<String, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let subject = cert.subject().to_string();
    let network = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .find_map(|cn| cn.strip_prefix(CA_COMMON_NAME_PREFIX))
        .ok_or_else(|| {
            format!("subject \"{subject}\" names no network (expected CN={CA_COMMON_NAME_PREFIX}NETWORK)")
        })?;
    validate::hub_id("network", network).map_err(|e| e.to_string())?;
    Ok(network.to_string())
}

/// The DER `SubjectPublicKeyInfo` of a certificate, to check that a key file belongs to it.
pub fn public_key_of_certificate(der: &[u8]) -> Result<Vec<u8>, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(cert.public_key().raw.to_vec())
}

/// The public key of a certificate as the raw subject key (for ECDSA P-256: the 65-byte
/// uncompressed point), what a record signature is verified with.
pub fn signing_key_of_certificate(der: &[u8]) -> Result<Vec<u8>, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

/// The identity and serial of a verified peer certificate, or why it carries none.
pub fn peer_of_certificate(der: &[u8]) -> Result<(PeerId, String), String> {
    let info = inspect_certificate(der)?;
    Ok((info.peer?, info.serial))
}

fn format_ip(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
        16 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(bytes);
            std::net::Ipv6Addr::from(octets).to_string()
        }
        _ => format!("{bytes:02x?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_and_validate_ids() {
        let node = PeerId::parse_uri("passerelle://node/73282932000074").expect("valid");
        assert_eq!((node.role, node.id.as_str()), (Role::Node, "73282932000074"));
        assert_eq!(node.uri(), "passerelle://node/73282932000074");
        assert!(PeerId::parse_uri("passerelle://node/73282932000075").is_err(), "bad SIRET");
        assert!(PeerId::parse_uri("passerelle://admin/x1").is_err(), "unknown role");
        assert!(PeerId::parse_uri("https://node/73282932000074").is_err());
        assert!(PeerId::parse_uri("passerelle://hub/Coorace").is_err());
        assert_eq!(PeerId::parse_uri("passerelle://consumer/dreets-52").map(|p| p.role), Ok(Role::Consumer));
    }

    #[test]
    fn serials_normalise() {
        assert_eq!(normalize_serial("4F:3A:01"), "4f3a01");
        assert_eq!(normalize_serial("0x004f3a01"), "4f3a01");
        assert_eq!(normalize_serial(" 00 "), "0");
    }
}
