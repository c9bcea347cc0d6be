//! The configuration contract through the real binary: every error at once, exit code 64,
//! precedence defaults < file < env < flags, and the example config.

use std::process::Command;

use anyhow::{Result, ensure};

use crate::support::pilotlight_bin;

fn run(args: &[&str], env: &[(&str, &str)]) -> Result<(i32, String, String)> {
    let mut cmd = Command::new(pilotlight_bin()?);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.env_remove("PILOTLIGHT_CONFIG").output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn every_error_at_once_with_exit_code_64() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[api]\nlisten = \"not-an-address\"\nlisen = 1\n\n[reconcile]\ncycle_secs = \"often\"\n\n[bogus]\nx = 1\n",
    )?;
    let (code, _, stderr) = run(&["config", "check", file.to_str().unwrap_or_default()], &[])?;
    ensure!(code == 64, "exit {code}: {stderr}");
    for path in ["api.listen", "api.lisen", "reconcile.cycle_secs", "bogus"] {
        ensure!(stderr.contains(path), "{path} not reported:\n{stderr}");
    }
    // `run` refuses the same file the same way, before touching anything.
    let (code, _, _) = run(&["--config", file.to_str().unwrap_or_default(), "run"], &[])?;
    ensure!(code == 64);
    Ok(())
}

#[test]
fn precedence_file_env_flag() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("p.toml");
    std::fs::write(&file, "[reconcile]\ncycle_secs = 0\n")?;
    let f = file.to_str().unwrap_or_default();
    let (code, _, stderr) = run(&["config", "check", f], &[])?;
    ensure!(
        code == 64 && stderr.contains("reconcile.cycle_secs"),
        "file value must apply: {stderr}"
    );
    let env = [("PILOTLIGHT_RECONCILE__CYCLE_SECS", "30")];
    let (code, _, stderr) = run(&["config", "check", f], &env)?;
    ensure!(code == 0, "env must override the file: {stderr}");
    let (code, _, stderr) = run(
        &["--set", "reconcile.cycle_secs=0", "config", "check", f],
        &env,
    )?;
    ensure!(
        code == 64 && stderr.contains("reconcile.cycle_secs"),
        "flag must override env: {stderr}"
    );
    Ok(())
}

#[test]
fn default_config_is_the_example_and_valid() -> Result<()> {
    let (code, stdout, _) = run(&["config", "default"], &[])?;
    ensure!(code == 0);
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/pilotlight.example.toml"
    ))?;
    ensure!(
        stdout == example,
        "deploy/pilotlight.example.toml differs from `pilotlight config default`"
    );
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("d.toml");
    std::fs::write(&file, &stdout)?;
    let (code, stdout, stderr) = run(&["config", "check", file.to_str().unwrap_or_default()], &[])?;
    ensure!(code == 0 && stdout.contains("valid"), "{stderr}");
    Ok(())
}

#[test]
fn migrate_creates_the_sqlite_store_and_is_idempotent() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("nested").join("pilotlight.db");
    let url = format!("store.url=\"sqlite://{}\"", db.display());
    for _ in 0..2 {
        let (code, stdout, stderr) = run(&["--set", &url, "migrate"], &[])?;
        ensure!(
            code == 0 && stdout.contains("migrations applied"),
            "{code}: {stderr}"
        );
    }
    ensure!(db.exists(), "no database at {}", db.display());
    Ok(())
}
