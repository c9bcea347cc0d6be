//! The moto server: its Python environment and its process.
//!
//! moto (`moto[server]`, pinned to [`MOTO_REQUIREMENT`]) lives in a virtualenv under the lab's
//! cache directory ([`cache_dir`]); [`ensure_python_env`] creates it on first use, guarded by an
//! `flock`ed lock file so parallel test processes install it once. [`MotoServer::start`] runs it
//! on a free loopback port through a small Python wrapper (`moto_wrapper.py`) that exits when
//! its standard input reaches end-of-file: the lab holds the write end of that pipe, so moto
//! dies with the process that started it even when that process is killed with `SIGKILL`. The
//! wrapper also makes moto's per-resource EC2 tag lookup a dictionary lookup (moto scans every
//! tag of every resource for each one, quadratic at case-study scale). moto's stderr is drained
//! into a bounded ring (the last [`STDERR_TAIL_LINES`] lines) that start-up errors quote.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::LabError;

/// The moto version the lab runs.
pub const MOTO_VERSION: &str = "5.2.1";
/// The pip requirement installed into the lab's virtualenv.
pub const MOTO_REQUIREMENT: &str = "moto[server]==5.2.1";
/// How long [`MotoServer::start`] waits for moto to answer.
pub const READY_DEADLINE: Duration = Duration::from_secs(60);
/// How many of moto's last stderr lines are kept for error reports.
pub const STDERR_TAIL_LINES: usize = 40;
/// How long a process waits for another one's moto install before giving up.
const INSTALL_LOCK_WAIT_SECS: u32 = 900;

/// Runs moto's server, exits as soon as stdin reaches EOF (the parent died or let go) and
/// makes moto's per-resource EC2 tag lookup linear (see the file's comments).
const WRAPPER: &str = include_str!("moto_wrapper.py");

/// Creates the virtualenv unless moto already imports from it; runs under `flock`.
/// `$1` is the virtualenv, `$2` the pip requirement.
const INSTALL_SCRIPT: &str = r#"set -e
if "$1/bin/python" -c "import moto.server" >/dev/null 2>&1; then exit 0; fi
python3 -m venv --clear "$1"
"$1/bin/python" -m pip install --quiet "$2"
"$1/bin/python" -c "import moto.server"
"#;

/// The lab's cache directory: `$PILOTLIGHT_CACHE_DIR`, else `$XDG_CACHE_HOME/pilotlight`, else
/// `$HOME/.cache/pilotlight`.
///
/// # Errors
///
/// [`LabError::NoCacheDir`] when none of those variables is set.
pub fn cache_dir() -> Result<PathBuf, LabError> {
    cache_dir_from(|name| std::env::var_os(name)).ok_or(LabError::NoCacheDir)
}

/// [`cache_dir`] over an injectable environment.
fn cache_dir_from(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let non_empty = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty("PILOTLIGHT_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = non_empty("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("pilotlight"));
    }
    non_empty("HOME").map(|home| PathBuf::from(home).join(".cache").join("pilotlight"))
}

/// The virtualenv that holds moto: `<cache>/moto-<version>`.
///
/// # Errors
///
/// As [`cache_dir`].
pub fn venv_dir() -> Result<PathBuf, LabError> {
    Ok(cache_dir()?.join(format!("moto-{MOTO_VERSION}")))
}

fn moto_importable(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import moto.server"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure moto is installed in the lab's virtualenv and returns its Python interpreter.
/// Blocks (for a minute or two) while installing; concurrent callers in other processes wait
/// on the same lock and then reuse the result.
///
/// # Errors
///
/// [`LabError::PythonEnv`] when the virtualenv cannot be created or pip fails (typically no
/// `python3-venv`), [`LabError::Io`] when the cache directory or the `flock` command is
/// unusable.
pub fn ensure_python_env() -> Result<PathBuf, LabError> {
    let venv = venv_dir()?;
    let python = venv.join("bin").join("python");
    if moto_importable(&python) {
        return Ok(python);
    }
    let cache = venv.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&cache)
        .map_err(|e| LabError::io(format!("creating cache directory {}", cache.display()), e))?;
    let lock = cache.join(format!("moto-{MOTO_VERSION}.lock"));
    tracing::info!(venv = %venv.display(), requirement = MOTO_REQUIREMENT, "installing moto");
    let output = Command::new("flock")
        .arg("-w")
        .arg(INSTALL_LOCK_WAIT_SECS.to_string())
        .arg(&lock)
        .args(["sh", "-c", INSTALL_SCRIPT, "sh"])
        .arg(&venv)
        .arg(MOTO_REQUIREMENT)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            LabError::io(
                format!(
                    "running `flock {}` (util-linux) to install moto",
                    lock.display()
                ),
                e,
            )
        })?;
    if output.status.success() && moto_importable(&python) {
        return Ok(python);
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(LabError::PythonEnv {
        venv,
        requirement: MOTO_REQUIREMENT.to_owned(),
        output_tail: tail_lines(&text, 20),
    })
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A free TCP port on 127.0.0.1 (bound and released; the caller retries if it is taken
/// meanwhile).
fn free_loopback_port() -> Result<u16, LabError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| LabError::io("binding 127.0.0.1:0 to find a free port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| LabError::io("reading the free port's address", e))?
        .port();
    Ok(port)
}

/// The last lines moto wrote to stderr.
#[derive(Debug, Clone, Default)]
struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == STDERR_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn text(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// A running moto server on loopback. Dropping it kills the process.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    /// Held open: moto exits when this pipe closes.
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
    stderr: StderrTail,
}

impl MotoServer {
    /// Installs moto if needed ([`ensure_python_env`]) and starts it on a free loopback port
    /// with `MOTO_EC2_LOAD_DEFAULT_AMIS=false`, waiting until `GET /moto-api/config` answers.
    /// Blocking: call it from `spawn_blocking` in async code.
    ///
    /// # Errors
    ///
    /// As [`ensure_python_env`]; [`LabError::MotoExited`] / [`LabError::MotoNotReady`] (with
    /// moto's stderr tail) when it does not come up within [`READY_DEADLINE`] after three
    /// port choices.
    pub fn start() -> Result<MotoServer, LabError> {
        let python = ensure_python_env()?;
        Self::start_with(&python)
    }

    /// Starts moto with the given Python interpreter (one that can `import moto.server`).
    ///
    /// # Errors
    ///
    /// As [`MotoServer::start`], minus the installation.
    pub fn start_with(python: &Path) -> Result<MotoServer, LabError> {
        const ATTEMPTS: u32 = 3;
        // A port found free can be taken before moto binds it; moto then exits at once.
        let mut attempt = 1;
        loop {
            let port = free_loopback_port()?;
            let mut server = Self::spawn(python, port)?;
            match server.wait_ready(READY_DEADLINE) {
                Ok(()) => {
                    tracing::info!(addr = %server.addr, pid = server.pid(), "moto is ready");
                    return Ok(server);
                }
                Err(LabError::MotoExited { .. }) if attempt < ATTEMPTS => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    fn spawn(python: &Path, port: u16) -> Result<MotoServer, LabError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut child = Command::new(python)
            .args(["-c", WRAPPER, "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .env("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
            .env("MOTO_PORT", port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| LabError::io(format!("starting moto with {}", python.display()), e))?;
        let stdin = child.stdin.take();
        let stderr = StderrTail::default();
        if let Some(pipe) = child.stderr.take() {
            let tail = stderr.clone();
            // moto logs every request to stderr; drain it so the pipe never fills up.
            std::thread::Builder::new()
                .name(format!("moto-stderr-{port}"))
                .spawn(move || {
                    for line in BufReader::new(pipe).lines() {
                        match line {
                            Ok(line) => tail.push(line),
                            Err(_) => break,
                        }
                    }
                })
                .map_err(|e| LabError::io("starting the moto stderr reader thread", e))?;
        }
        Ok(MotoServer {
            child,
            stdin,
            addr,
            stderr,
        })
    }

    fn wait_ready(&mut self, deadline: Duration) -> Result<(), LabError> {
        let start = Instant::now();
        loop {
            if let Ok((status, _)) = http_call(self.addr, "GET", "/moto-api/config")
                && (200..300).contains(&status)
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(LabError::MotoExited {
                    addr: self.addr,
                    status: status.to_string(),
                    stderr_tail: self.stderr_tail(),
                });
            }
            if start.elapsed() >= deadline {
                return Err(LabError::MotoNotReady {
                    addr: self.addr,
                    deadline_secs: deadline.as_secs(),
                    stderr_tail: self.stderr_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// moto's address (127.0.0.1 and its port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// moto's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines moto wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        self.stderr.text()
    }

    /// Clears every account and region of moto (`POST /moto-api/reset`). This is global: do
    /// not call it while other tests share this server.
    ///
    /// # Errors
    ///
    /// [`LabError::Io`] when moto cannot be reached, [`LabError::MotoApi`] on a non-2xx answer.
    pub fn reset(&self) -> Result<(), LabError> {
        let (status, _) = http_call(self.addr, "POST", "/moto-api/reset")
            .map_err(|e| LabError::io(format!("POST /moto-api/reset on {}", self.addr), e))?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(LabError::MotoApi {
                addr: self.addr,
                method: "POST",
                path: "/moto-api/reset",
                status,
            })
        }
    }

    /// Kills moto (by PID, `SIGKILL`) and reaps it.
    ///
    /// # Errors
    ///
    /// [`LabError::Io`] when the kill or the wait fails for a reason other than the process
    /// being gone already.
    pub fn stop(&mut self) -> Result<(), LabError> {
        self.stdin.take();
        if self
            .child
            .try_wait()
            .map_err(|e| LabError::io(format!("checking moto pid {}", self.pid()), e))?
            .is_some()
        {
            return Ok(());
        }
        self.child
            .kill()
            .map_err(|e| LabError::io(format!("killing moto pid {}", self.pid()), e))?;
        self.child
            .wait()
            .map_err(|e| LabError::io(format!("reaping moto pid {}", self.pid()), e))?;
        Ok(())
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "stopping moto");
        }
    }
}

/// A minimal blocking HTTP/1.1 exchange with an empty body; returns the status and the body.
fn http_call(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::other("malformed HTTP status line"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn cache_dir_prefers_explicit_then_xdg_then_home() {
        let all = env_of(&[
            ("PILOTLIGHT_CACHE_DIR", "/c"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(cache_dir_from(all), Some(PathBuf::from("/c")));
        let xdg = env_of(&[
            ("PILOTLIGHT_CACHE_DIR", ""),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(cache_dir_from(xdg), Some(PathBuf::from("/x/pilotlight")));
        let home = env_of(&[("HOME", "/h")]);
        assert_eq!(
            cache_dir_from(home),
            Some(PathBuf::from("/h/.cache/pilotlight"))
        );
        assert_eq!(cache_dir_from(env_of(&[])), None);
    }

    #[test]
    fn stderr_tail_is_bounded() {
        let tail = StderrTail::default();
        for i in 0..(STDERR_TAIL_LINES + 5) {
            tail.push(format!("line {i}"));
        }
        let text = tail.text();
        assert_eq!(text.lines().count(), STDERR_TAIL_LINES);
        assert!(text.starts_with("line 5\n"));
        assert!(text.ends_with(&format!("line {}", STDERR_TAIL_LINES + 4)));
    }

    #[test]
    fn tail_lines_keeps_the_end() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
    }

    #[test]
    fn http_call_reports_refused_connections() {
        let port = free_loopback_port().expect("port");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(http_call(addr, "GET", "/").is_err());
    }
}
