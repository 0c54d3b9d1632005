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
