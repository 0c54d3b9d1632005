//! `passerelle --help` answers: every command of the contract is listed and explained.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(args)
        .arg("--help")
        .output()
        .expect("run passerelle");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn top_level_help_lists_the_commands_and_global_flags() {
    let text = help(&[]);
    for word in ["need", "person", "consent", "indicators", "--endpoint", "--format", "PASSERELLE_ENDPOINT"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
}

#[test]
fn subcommand_help_lists_choices() {
    let text = help(&["need", "add"]);
    assert!(text.contains("cddi") && text.contains("mise-a-disposition"), "{text}");
    let text = help(&["consent", "grant"]);
    assert!(text.contains("placement-sensitive"), "{text}");
}

#[test]
fn a_missing_argument_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(["need", "show"])
        .output()
        .expect("run passerelle");
    assert_eq!(out.status.code(), Some(2));
}
