//! The example configs under `config/` parse and validate (so they never rot), and
//! `passerelled check-config` reports what is wrong with the line and the field, exiting 2.

use std::path::{Path, PathBuf};
use std::process::Command;

use passerelle_daemon::Config;

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

/// Test certificates for the relative `certs/` paths the examples use: a CA, a hub and a node
/// certificate, made with rcgen as `passerelle pki` would.
fn write_certs(dir: &Path) -> anyhow::Result<()> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs)?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    std::fs::write(certs.join("ca.pem"), ca_cert.pem())?;
    let issuer = Issuer::new(ca_params, ca_key);
    // The consolidation example's trust anchors: one CA per network and one for the state.
    for network in ["state", "coorace", "fas"] {
        let ca = passerelle_client::pki::CertificateAuthority::generate(network)?;
        std::fs::write(certs.join(format!("{network}-ca.pem")), &ca.cert_pem)?;
    }
    for (name, uri) in [("hub", "passerelle://hub/coorace-pdl"), ("node", "passerelle://node/73282932000074")]
    {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
        params.subject_alt_names.push(SanType::URI(uri.try_into()?));
        std::fs::write(certs.join(format!("{name}.pem")), params.signed_by(&key, &issuer)?.pem())?;
        std::fs::write(certs.join(format!("{name}.key")), key.serialize_pem())?;
    }
    Ok(())
}

#[test]
fn every_example_config_is_valid() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    write_certs(dir.path())?;
    let mut checked = 0;
    for entry in std::fs::read_dir(config_dir())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            // Validated next to the test certificates, as an operator would place them.
            let copy = dir.path().join(path.file_name().unwrap_or_default());
            std::fs::copy(&path, &copy)?;
            Config::load(&copy).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            checked += 1;
        }
    }
    assert!(checked >= 3, "expected the node, hub and dev examples in {}", config_dir().display());
    Ok(())
}

fn check_config(dir: &Path, text: &str) -> anyhow::Result<(i32, String, String)> {
    let path = dir.join("node.toml");
    std::fs::write(&path, text)?;
    let out = Command::new(env!("CARGO_BIN_EXE_passerelled"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn check_config_accepts_the_example_and_reports_a_bad_siret() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    write_certs(dir.path())?;
    let example = std::fs::read_to_string(config_dir().join("node.example.toml"))?;
    let (code, stdout, stderr) = check_config(dir.path(), &example)?;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok (node 73282932000074"), "{stdout}");

    let (code, _, stderr) = check_config(dir.path(), &example.replace("73282932000074", "73282932000075"))?;
    assert_eq!(code, 2);
    let line = example.lines().position(|l| l.starts_with("siret")).map_or(0, |i| i + 1);
    assert!(
        stderr.contains(&format!("node.toml:{line}: node.siret \"73282932000075\": Luhn checksum fails")),
        "{stderr}"
    );

    let (code, _, stderr) = check_config(dir.path(), &example.replace("[api]", "[api]\nport = 7401"))?;
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown field `port`"), "{stderr}");

    let (code, _, stderr) = check_config(dir.path(), "data_dir = \"x\"\n")?;
    assert_eq!(code, 2);
    assert!(stderr.contains("missing a [node] or a [hub] section"), "{stderr}");
    Ok(())
}

#[test]
fn check_config_reports_missing_certificates_and_mismatched_keys() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    write_certs(dir.path())?;
    let example = std::fs::read_to_string(config_dir().join("hub.example.toml"))?;
    let copy = dir.path().join("hub.toml");
    let check = |text: &str| -> anyhow::Result<(i32, String)> {
        std::fs::write(&copy, text)?;
        let out = Command::new(env!("CARGO_BIN_EXE_passerelled"))
            .args(["check-config", "--config"])
            .arg(&copy)
            .output()?;
        Ok((out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned()))
    };
    let (code, stderr) = check(&example)?;
    assert_eq!(code, 0, "{stderr}");

    let (code, stderr) = check(&example.replace("certs/hub.pem", "certs/missing.pem"))?;
    assert_eq!(code, 2);
    let line = example.lines().position(|l| l.starts_with("cert = ")).map_or(0, |i| i + 1);
    assert!(
        stderr.contains(&format!("hub.toml:{line}: hub.tls.cert")) && stderr.contains("cannot read"),
        "{stderr}"
    );

    let (code, stderr) = check(&example.replace("certs/hub.key", "certs/node.key"))?;
    assert_eq!(code, 2);
    assert!(stderr.contains("hub.tls.key") && stderr.contains("does not match the certificate"), "{stderr}");

    let (code, stderr) = check(&example.replace("region = \"52\"", "region = \"20\""))?;
    assert_eq!(code, 2);
    assert!(stderr.contains("hub.region \"20\": expected a région INSEE code"), "{stderr}");

    let (code, stderr) = check(&example.replace("k_anonymity = 5", "k_anonymity = 1"))?;
    assert_eq!(code, 2);
    assert!(stderr.contains("hub.k_anonymity \"1\": must be at least 2"), "{stderr}");
    Ok(())
}

#[test]
fn check_config_reports_an_unreadable_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_passerelled"))
        .args(["check-config", "--config", "/nonexistent/node.toml"])
        .output()
        .expect("run passerelled");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/node.toml: cannot read"));
}

/// The `[Service]` entries of a systemd unit, in order (a key may repeat, as systemd allows).
fn unit_service_entries(text: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((key, value)) = line.split_once('=').filter(|_| section == "Service") {
            entries.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    entries
}

#[test]
fn systemd_units_are_sandboxed_and_match_the_example_configs() -> anyhow::Result<()> {
    let help = Command::new(env!("CARGO_BIN_EXE_passerelled")).args(["run", "--help"]).output()?;
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for role in ["node", "hub"] {
        let unit_path = config_dir().join(format!("passerelle-{role}.service"));
        let text = std::fs::read_to_string(&unit_path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", unit_path.display()))?;
        let entries = unit_service_entries(&text);
        let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        for (key, expected) in [
            ("ProtectSystem", "strict"),
            ("NoNewPrivileges", "yes"),
            ("PrivateTmp", "yes"),
            ("ProtectHome", "yes"),
            ("CapabilityBoundingSet", ""),
        ] {
            assert_eq!(get(key), Some(expected), "{role} unit: {key}");
        }
        // The daemon writes only under data_dir: the one writable path must be the example's.
        let example: toml::Value =
            toml::from_str(&std::fs::read_to_string(config_dir().join(format!("{role}.example.toml")))?)?;
        let data_dir = example.get("data_dir").and_then(toml::Value::as_str);
        assert_eq!(get("ReadWritePaths"), data_dir, "{role} unit: ReadWritePaths is the example's data_dir");
        // ExecStart uses the daemon's real command line.
        let exec = get("ExecStart").unwrap_or_default();
        let args: Vec<&str> = exec.split_whitespace().collect();
        assert!(args.first().is_some_and(|a| a.ends_with("/passerelled")), "{role} unit: {exec}");
        assert_eq!(args.get(1..3), Some(&["run", "--config"][..]), "{role} unit: {exec}");
        assert!(help.contains("--config"), "passerelled run --help lacks --config: {help}");
    }
    Ok(())
}

/// A hub's `[[hub.trust]]` anchors and the `client_cas` shorthand: what each loads as, and every
/// mistake reported with its line and field.
#[test]
fn trust_anchors_are_validated_with_their_line() -> anyhow::Result<()> {
    use passerelle_proto::identity::Role;
    let dir = tempfile::tempdir()?;
    write_certs(dir.path())?;
    let path = dir.path().join("hub.toml");
    let hub = |tls_extra: &str, trust: &str| {
        format!(
            "data_dir = \"d\"\n[hub]\nid = \"dreets-52\"\nnetwork = \"dreets\"\nregion = \"52\"\nlisten = \"127.0.0.1:0\"\n[hub.tls]\ncert = \"certs/hub.pem\"\nkey = \"certs/hub.key\"\n{tls_extra}\n{trust}"
        )
    };
    let load = |text: &str| -> passerelle_daemon::Result<passerelle_daemon::ValidConfig> {
        Config::parse(text, &path)?.validate(text, &path)
    };
    let anchor = |ca: &str, network: &str, roles: &str| {
        format!("[[hub.trust]]\nca = \"certs/{ca}\"\nnetwork = \"{network}\"\nroles = {roles}\n")
    };

    // The shorthand: the first CA is the hub's own network with every role, a further one the
    // network its subject names, for nodes and hubs.
    let short = load(&hub("client_cas = [\"certs/state-ca.pem\", \"certs/fas-ca.pem\"]", ""))?;
    let anchors: Vec<(String, Vec<Role>)> = short
        .hub()
        .map(|h| h.tls.trust.iter().map(|a| (a.network.clone(), a.roles.clone())).collect())
        .unwrap_or_default();
    assert_eq!(
        anchors,
        vec![("dreets".to_string(), Role::ALL.to_vec()), ("fas".to_string(), vec![Role::Node, Role::Hub])]
    );
    // Anchors written out load as written, roles sorted.
    let written = load(&hub(
        "",
        &format!(
            "{}{}",
            anchor("state-ca.pem", "dreets", "[\"operator\", \"hub\"]"),
            anchor("fas-ca.pem", "fas", "[\"hub\", \"node\"]")
        ),
    ))?;
    let anchors: Vec<(String, Vec<Role>)> = written
        .hub()
        .map(|h| h.tls.trust.iter().map(|a| (a.network.clone(), a.roles.clone())).collect())
        .unwrap_or_default();
    assert_eq!(
        anchors,
        vec![
            ("dreets".to_string(), vec![Role::Hub, Role::Operator]),
            ("fas".to_string(), vec![Role::Node, Role::Hub])
        ]
    );

    let fas = anchor("fas-ca.pem", "fas", "[\"node\", \"hub\"]");
    // Line 11 is the first line of the [[hub.trust]] section below; 12 its ca, 13 network, 14 roles.
    for (text, expected) in [
        (
            hub("", &anchor("fas-ca.pem", "fas", "[\"node\", \"admin\"]")),
            ":14: hub.trust.roles \"admin\": expected node, hub, consumer or operator",
        ),
        (
            hub("", &anchor("fas-ca.pem", "fas", "[\"hub\", \"hub\"]")),
            ":14: hub.trust.roles \"hub\": listed twice",
        ),
        (hub("", &anchor("fas-ca.pem", "fas", "[]")), ":14: hub.trust.roles: must list at least one of"),
        (
            hub("", &anchor("fas-ca.pem", "fas", "[\"hub\", \"consumer\"]")),
            ":14: hub.trust.roles \"consumer\": consumers come only from an anchor of this hub's own network (dreets), not fas",
        ),
        (hub("", &anchor("fas-ca.pem", "Fas", "[\"hub\"]")), ":13: hub.trust.network \"Fas\""),
        (hub("", &anchor("missing-ca.pem", "fas", "[\"hub\"]")), ":12: hub.trust.ca"),
        (hub("", &format!("{fas}{}", anchor("fas-ca.pem", "coorace", "[\"hub\"]"))), ":16: hub.trust.ca \""),
        (
            hub("client_cas = [\"certs/state-ca.pem\"]", &fas),
            ":12: hub.trust: hub.tls.client_cas is its shorthand: list the CAs in one of them, not both",
        ),
        (hub("", ""), "hub.tls: at least one trusted CA is required: [[hub.trust]] (or hub.tls.client_cas)"),
        (hub("client_cas = [\"certs/state-ca.pem\", \"certs/ca.pem\"]", ""), ":10: hub.tls.client_cas \""),
    ] {
        let err = load(&text).expect_err(expected).to_string();
        assert!(err.contains(expected), "{err}\nexpected: {expected}\n{text}");
    }
    // The same CA under two anchors, and a further shorthand CA naming no network, say why.
    let twice = load(&hub("", &format!("{fas}{}", anchor("fas-ca.pem", "coorace", "[\"hub\"]"))));
    assert!(twice.is_err_and(|e| e.to_string().contains("already the CA of network fas's anchor")));
    let unnamed = load(&hub("client_cas = [\"certs/state-ca.pem\", \"certs/ca.pem\"]", ""));
    assert!(unnamed.is_err_and(|e| e.to_string().contains("names no network")));
    // Unknown keys are errors, with their line.
    let typo = hub("", "[[hub.trust]]\nca = \"certs/fas-ca.pem\"\nnetwork = \"fas\"\nrole = [\"hub\"]\n");
    let err = Config::parse(&typo, &path).expect_err("unknown key").to_string();
    assert!(err.contains(":14: unknown field `role`"), "{err}");
    Ok(())
}
