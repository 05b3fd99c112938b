//! The binary: `tenant create`, `key create`, `openapi`, `migrate`, and
//! settings errors that name the cause.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_consent-ledger"))
}

#[test]
fn tenant_and_key_creation_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        let out = bin()
            .args(args)
            .env("CONSENT_LEDGER_DATA_DIR", &data)
            .env("CONSENT_LEDGER_ORIGIN", "ledger.example.com")
            .env_remove("DATABASE_URL")
            .env_remove("CONSENT_LEDGER_MASTER_KEY_FILE")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(&["tenant", "create", "makro", "--brand", "Makro"]);
    assert_eq!(code, Some(0), "{stderr}");
    let created: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(created["log"], "ledger.example.com/makro");
    assert!(created["verifier_key"]
        .as_str()
        .unwrap()
        .starts_with("ledger.example.com/makro+"));
    assert!(created["admin_key"]["key"]
        .as_str()
        .unwrap()
        .starts_with("clk_"));
    let (code, _, stderr) = run(&["tenant", "create", "makro", "--brand", "Makro"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("never reused"), "{stderr}");
    let (code, stdout, stderr) = run(&[
        "key", "create", "--tenant", "makro", "--role", "sender", "--role", "auditor",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let key: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(key["roles"], serde_json::json!(["sender", "auditor"]));
    let (code, _, stderr) = run(&["key", "create", "--tenant", "nobody", "--role", "sender"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no tenant"), "{stderr}");
    let (code, _, stderr) = run(&["key", "create", "--tenant", "makro", "--role", "root"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("unknown role"), "{stderr}");
    // The master key was generated private, the data dir too.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert_eq!(mode(&data), 0o700);
    let (code, _, stderr) = run(&["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn a_database_refuses_another_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = bin()
        .args(["migrate"])
        .env("CONSENT_LEDGER_DATA_DIR", &data)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(first.status.success());
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, format!("{}\n", "ab".repeat(32))).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&other_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = bin()
        .args(["migrate"])
        .env("CONSENT_LEDGER_DATA_DIR", &data)
        .env("CONSENT_LEDGER_MASTER_KEY_FILE", &other_key)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("canary"));
}

#[test]
fn openapi_is_printed_and_bad_settings_are_named() {
    let out = bin().arg("openapi").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        include_str!("../../openapi/openapi.json")
    );
    let out = bin()
        .args(["serve", "--bind", "0.0.0.0:0"])
        .env("CONSENT_LEDGER_ORIGIN", "localhost")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONSENT_LEDGER_ORIGIN"));
    // An unreachable PostgreSQL: the real error, and never the password.
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["serve"])
        .env("CONSENT_LEDGER_DATA_DIR", dir.path())
        .env(
            "DATABASE_URL",
            "postgres://ledger:s3cret-pw@127.0.0.1:1/ledger",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot connect to PostgreSQL at postgres://ledger:***@127.0.0.1:1/ledger"),
        "{stderr}"
    );
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
}

#[test]
fn serve_writes_the_operator_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = bin()
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(["--metrics-bind", "127.0.0.1:0"])
        .env("CONSENT_LEDGER_DATA_DIR", &data)
        .env_remove("CONSENT_LEDGER_OPERATOR_TOKEN")
        .env_remove("DATABASE_URL")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The token file is written before the server listens; wait for the log line.
    use std::io::{BufRead, BufReader};
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        said.push_str(&line);
        if line.contains("listening") {
            break;
        }
    }
    // The metrics listener it names serves them.
    let metrics = said
        .split("metrics=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no metrics address in {said}"))
        .to_owned();
    let scraped = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&metrics).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(scraped.starts_with("HTTP/1.0 200"), "{scraped}");
    assert!(scraped.contains("consent_ledger_logs "), "{scraped}");
    let path = data.join("operator.token");
    assert!(said.contains(&path.display().to_string()), "{said}");
    let token = std::fs::read_to_string(&path).unwrap();
    assert!(token.starts_with("clo_") && token.ends_with('\n'));
    assert!(
        !said.contains(token.trim()),
        "the token itself is never logged"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// Files that hold numbers, salts and evidence are private whatever the
/// data dir's mode (issue 13): the database, its WAL, an export; a data dir
/// others can read is warned about.
#[test]
fn files_are_private_whatever_the_data_dir_allows() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = |args: &[&str]| {
        let out = bin()
            .args(args)
            .env("CONSENT_LEDGER_DATA_DIR", &data)
            .env("CONSENT_LEDGER_ORIGIN", "ledger.example.com")
            .env_remove("DATABASE_URL")
            .env_remove("CONSENT_LEDGER_MASTER_KEY_FILE")
            .env_remove("CONSENT_LEDGER_SIGNER_STATE_FILE")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = run(&["tenant", "create", "makro", "--brand", "Makro"]);
    assert!(
        stderr.contains("readable by others"),
        "a warning about the data dir: {stderr}"
    );
    let export = dir.path().join("export.ndjson");
    run(&[
        "export",
        "--tenant",
        "makro",
        "--out",
        export.to_str().unwrap(),
    ]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for file in [
        data.join("consent-ledger.db"),
        data.join("signer.state"),
        export.clone(),
    ] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path) & 0o077, 0, "{} is private", path.display());
    }
}

/// A command's help shows its own options and the settings every command
/// reads, each with a line of help; the server's settings are `serve`'s.
#[test]
fn a_commands_help_shows_its_own_options() {
    let help = |args: &[&str]| {
        let out = bin().args(args).output().expect("runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let key = help(&["key", "create", "--help"]);
    let options = key.find("Options:").expect(&key);
    for own in ["--tenant", "--role", "--name", "--expires-at", "--data-dir"] {
        let at = options + key[options..].find(own).expect(own);
        let described = key[at..]
            .lines()
            .nth(1)
            .is_some_and(|l| !l.trim().is_empty());
        assert!(described, "{own} has no help text:\n{key}");
    }
    for theirs in ["--bind", "--trusted-proxies", "--max-connections"] {
        assert!(
            !key.contains(theirs),
            "{theirs} in key create's help:\n{key}"
        );
    }
    let serve = help(&["serve", "--help"]);
    for setting in [
        "--bind",
        "--trusted-proxies",
        "--max-connections",
        "--data-dir",
    ] {
        assert!(
            serve.contains(setting),
            "{setting} not in serve's help:\n{serve}"
        );
    }
    // A server setting given to another command is refused, not ignored.
    let out = bin()
        .args([
            "key",
            "create",
            "--tenant",
            "t",
            "--role",
            "admin",
            "--bind",
            "127.0.0.1:1",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
