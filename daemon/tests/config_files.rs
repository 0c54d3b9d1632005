//! The example configs under `config/` parse and validate (so they never rot), and
//! `passerelled check-config` reports what is wrong with the line and the field, exiting 2.

use std::path::{Path, PathBuf};
use std::process::Command;

use passerelle_daemon::Config;

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

#[test]
fn every_example_config_is_valid() -> anyhow::Result<()> {
    let mut checked = 0;
    for entry in std::fs::read_dir(config_dir())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            Config::load(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            checked += 1;
        }
    }
    assert!(checked >= 1, "no example config found in {}", config_dir().display());
    Ok(())
}

fn check_config(text: &str) -> anyhow::Result<(i32, String, String)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("node.toml");
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
    let example = std::fs::read_to_string(config_dir().join("node.example.toml"))?;
    let (code, stdout, _) = check_config(&example)?;
    assert_eq!(code, 0);
    assert!(stdout.contains("ok (node 73282932000074"), "{stdout}");

    let (code, _, stderr) = check_config(&example.replace("73282932000074", "73282932000075"))?;
    assert_eq!(code, 2);
    let line = example.lines().position(|l| l.starts_with("siret")).map_or(0, |i| i + 1);
    assert!(
        stderr.contains(&format!("node.toml:{line}: node.siret \"73282932000075\": Luhn checksum fails")),
        "{stderr}"
    );

    let (code, _, stderr) = check_config(&example.replace("[api]", "[api]\nport = 7401"))?;
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown field `port`"), "{stderr}");

    let (code, _, stderr) = check_config("data_dir = \"x\"\n")?;
    assert_eq!(code, 2);
    assert!(stderr.contains("missing a [node] or a [hub] section"), "{stderr}");
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
