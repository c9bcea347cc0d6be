//! A PostgreSQL server for tests, shared by the store's suite (`tests/store.rs`) and the
//! end-to-end tests (`tests/e2e/ha.rs` includes this file with `#[path]`).
//!
//! The server is the one named by `PILOTLIGHT_TEST_DATABASE_URL` if set; otherwise this
//! process starts a throwaway cluster once (`initdb` + `pg_ctl`, unix socket only, in a temp
//! dir, through `runuser -u postgres` when running as root) and a watchdog that stops it and
//! deletes its directory when the process exits, however it exits. With neither, the
//! PostgreSQL tests fail and say what to install. [`fresh_database`] gives each test its own
//! database.

// Each includer uses part of this file.
#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use sqlx::{AssertSqlSafe, Connection};

/// A database of its own on the test server; dropped by [`TestDatabase::drop_now`].
#[derive(Debug)]
pub struct TestDatabase {
    /// URL of the database (for `Store::connect` or a daemon's `[store] url`).
    pub url: String,
    /// Its name.
    pub name: String,
    server: String,
}

/// Creates `pl_test_<random>` on the test server (starting the throwaway cluster on first
/// use; blocks while it starts).
///
/// # Panics
/// When no server can be found or started (the message says what to install), or the
/// database cannot be created.
pub async fn fresh_database() -> TestDatabase {
    let server = match tokio::task::spawn_blocking(postgres_server_url).await {
        Ok(url) => url,
        Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
    };
    let name = format!("pl_test_{:016x}", random_u64());
    admin_sql(&server, format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on the test server failed: {e}"));
    TestDatabase {
        url: with_database(&server, &name),
        name,
        server,
    }
}

impl TestDatabase {
    /// Drops the database, whoever is still connected (best effort: a failure is printed).
    pub async fn drop_now(&self) {
        let name = &self.name;
        if let Err(e) = admin_sql(
            &self.server,
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .await
        {
            eprintln!("warning: could not drop test database {name}: {e}");
        }
    }
}

/// Runs one statement on the server's maintenance database (the one in its URL).
pub async fn admin_sql(server_url: &str, sql: String) -> Result<(), sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect(server_url).await?;
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await?;
    conn.close().await
}

/// `url` with its database path replaced by `database` (query parameters kept).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one((
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        SystemTime::now(),
    ))
}

const MISSING_POSTGRES: &str = "the PostgreSQL store tests need a server: install PostgreSQL \
     server binaries: apt-get install postgresql (initdb and pg_ctl on PATH or under \
     /usr/lib/postgresql/*/bin), or set PILOTLIGHT_TEST_DATABASE_URL=postgres://USER@HOST:PORT/DB \
     to an existing server whose user may CREATE DATABASE";

/// A throwaway cluster, started at most once per test process.
struct Cluster {
    url: String,
    /// Write end of the watchdog's stdin: closed by the kernel when this process exits, which
    /// makes the watchdog stop the server and delete its directory.
    _watchdog: ChildStdin,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

pub fn postgres_server_url() -> String {
    if let Ok(url) = std::env::var("PILOTLIGHT_TEST_DATABASE_URL")
        && !url.trim().is_empty()
    {
        return url;
    }
    match CLUSTER.get_or_init(start_cluster) {
        Ok(cluster) => cluster.url.clone(),
        Err(message) => panic!("{message}"),
    }
}

fn find_postgres_bin_dir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    candidates.extend(versioned.into_iter().map(|(_, dir)| dir));
    candidates.push(PathBuf::from("/usr/local/bin"));
    candidates.push(PathBuf::from("/usr/local/pgsql/bin"));
    candidates
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

fn command_stdout(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// How to run the PostgreSQL binaries: directly, or as the `postgres` user when we are root
/// (`initdb` and `postgres` refuse to run as root).
#[derive(Clone, Copy)]
enum RunAs {
    Me,
    /// `runuser -u postgres --` (util-linux).
    Runuser,
    /// `su postgres -s /bin/sh -c '…'` where runuser is missing.
    Su,
}

impl RunAs {
    fn command(self, program: &Path, args: &[String]) -> Command {
        match self {
            RunAs::Me => {
                let mut command = Command::new(program);
                command.args(args);
                command
            }
            RunAs::Runuser => {
                let mut command = Command::new("runuser");
                command
                    .args(["-u", "postgres", "--"])
                    .arg(program)
                    .args(args);
                command
            }
            RunAs::Su => {
                let mut command = Command::new("su");
                command
                    .args(["postgres", "-s", "/bin/sh", "-c"])
                    .arg(self.shell_line(program, args));
                command
            }
        }
    }

    fn shell_line(self, program: &Path, args: &[String]) -> String {
        let line = std::iter::once(program.display().to_string())
            .chain(args.iter().cloned())
            .map(|word| sh_quote(&word))
            .collect::<Vec<_>>()
            .join(" ");
        match self {
            RunAs::Me => line,
            RunAs::Runuser => format!("runuser -u postgres -- {line}"),
            RunAs::Su => format!("su postgres -s /bin/sh -c {}", sh_quote(&line)),
        }
    }
}

fn run_checked(mut command: Command, what: &str) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

fn start_cluster() -> Result<Cluster, String> {
    let bin = find_postgres_bin_dir().ok_or_else(|| MISSING_POSTGRES.to_owned())?;
    let is_root = command_stdout("id", &["-u"])? == "0";
    let run_as = if !is_root {
        RunAs::Me
    } else if Command::new("runuser").arg("--help").output().is_ok() {
        RunAs::Runuser
    } else {
        RunAs::Su
    };

    let dir = tempfile::Builder::new()
        .prefix("pilotlight-pg-")
        .tempdir()
        .map_err(|e| format!("cannot create a temp dir for PostgreSQL: {e}"))?
        .keep();
    if is_root {
        let uid = command_stdout("id", &["-u", "postgres"]).map_err(|e| {
            format!("running as root, the throwaway cluster needs a `postgres` user: {e}")
        })?;
        let gid = command_stdout("id", &["-g", "postgres"])?;
        let parse = |id: &str| id.parse::<u32>().map_err(|e| format!("bad id {id:?}: {e}"));
        std::os::unix::fs::chown(&dir, Some(parse(&uid)?), Some(parse(&gid)?))
            .map_err(|e| format!("cannot chown {} to postgres: {e}", dir.display()))?;
    }
    let data = dir.join("data");
    let log = dir.join("postgres.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|e| format!("cannot find a free port: {e}"))?
        .port();
    let text = |path: &Path| path.display().to_string();

    let mut initdb = run_as.command(
        &bin.join("initdb"),
        &[
            "-D".into(),
            text(&data),
            "-U".into(),
            "postgres".into(),
            "-A".into(),
            "trust".into(),
            "-E".into(),
            "UTF8".into(),
            "--locale=C".into(),
            "--no-sync".into(),
        ],
    );
    initdb.current_dir(&dir);
    if let Err(e) = run_checked(initdb, "initdb") {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }

    // The watchdog: blocks on stdin until this process is gone, then stops the server and
    // removes the directory. It ignores the terminal's signals so Ctrl-C cannot skip cleanup.
    let stop = run_as.shell_line(
        &bin.join("pg_ctl"),
        &[
            "-D".into(),
            text(&data),
            "-m".into(),
            "fast".into(),
            "-w".into(),
            "stop".into(),
        ],
    );
    let script = format!(
        "trap '' INT TERM HUP; cat >/dev/null; {stop} >/dev/null 2>&1; rm -rf {}",
        sh_quote(&text(&dir))
    );
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the PostgreSQL watchdog: {e}"))?;
    let watchdog_stdin = watchdog
        .stdin
        .take()
        .ok_or_else(|| "the watchdog has no stdin".to_owned())?;

    let mut start = run_as.command(
        &bin.join("pg_ctl"),
        &[
            "-D".into(),
            text(&data),
            "-l".into(),
            text(&log),
            "-w".into(),
            "-t".into(),
            "60".into(),
            "-o".into(),
            format!(
                "-k {} -p {port} -c listen_addresses='' -c fsync=off -c max_connections=200",
                text(&dir)
            ),
            "start".into(),
        ],
    );
    start.current_dir(&dir);
    if let Err(e) = run_checked(start, "pg_ctl start") {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(format!("{e}\nserver log:\n{log}"));
    }
    Ok(Cluster {
        url: format!(
            "postgres://postgres@localhost:{port}/postgres?host={}",
            text(&dir)
        ),
        _watchdog: watchdog_stdin,
    })
}
