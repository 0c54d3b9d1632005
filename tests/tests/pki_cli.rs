//! `passerelle pki` through the real binary: the workflow the README documents.

use std::process::Command;

use passerelle_tests::bin;

fn pki(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin("passerelle")).arg("pki").args(args).output().expect("run passerelle");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn init_issue_show() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let d = |p: &str| dir.path().join(p).display().to_string();

    let (code, _, stderr) = pki(&["init", "--network", "coorace-pdl", "--out", &d("ca")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("keep") && stderr.contains("ca.key"),
        "the operator is told to protect the key: {stderr}"
    );
    let (code, _, stderr) = pki(&["init", "--network", "coorace-pdl", "--out", &d("ca")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("already exists; refusing to overwrite it"), "{stderr}");

    let (code, stdout, stderr) = pki(&[
        "issue",
        "--ca",
        &d("ca"),
        "--role",
        "hub",
        "--id",
        "coorace-pdl",
        "--out",
        &d("hub"),
        "--dns",
        "hub.coorace.example",
        "--ip",
        "10.0.0.7",
        "--days",
        "30",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("passerelle://hub/coorace-pdl"), "{stdout}");

    let (code, stdout, _) = pki(&["show", &d("hub/hub.pem")]);
    assert_eq!(code, 0);
    let out = Command::new(bin("passerelle"))
        .args(["--format", "json", "pki", "show", &d("hub/hub.pem")])
        .output()?;
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        (shown["role"].as_str(), shown["id"].as_str()),
        (Some("hub"), Some("coorace-pdl")),
        "{stdout}"
    );
    assert_eq!(shown["dns_names"], serde_json::json!(["hub.coorace.example"]));
    assert_eq!(shown["ip_addresses"], serde_json::json!(["10.0.0.7"]));
    assert_eq!(shown["expired"], false);
    assert!(shown["issuer"].as_str().unwrap_or_default().contains("Passerelle CA coorace-pdl"));
    assert_eq!(shown["serial"].as_str().map(str::len), Some(32));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(d("hub/hub.key"))?.permissions().mode() & 0o777, 0o600);
    }

    let (code, _, stderr) =
        pki(&["issue", "--ca", &d("ca"), "--role", "node", "--id", "12345678901234", "--out", &d("bad")]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("id \"12345678901234\": Luhn checksum fails"),
        "a node's id is its SIRET: {stderr}"
    );
    let (code, _, stderr) =
        pki(&["issue", "--ca", &d("ca"), "--role", "admin", "--id", "x", "--out", &d("bad")]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) =
        pki(&["issue", "--ca", &d("nowhere"), "--role", "consumer", "--id", "dreets-52", "--out", &d("c")]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("ca.pem"), "{stderr}");
    Ok(())
}
