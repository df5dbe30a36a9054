//! The fakesnow emulator started on 127.0.0.1 behind
//! `fakesnow_adapter.py` (beside this crate's Cargo.toml), configs pointing at it or at the Snowpipe Streaming double, and RSA keys.
//!
//! The emulator comes from the venv `.ci/setup.d/30-fakesnow.sh` installs (`$MILLIONX_FAKESNOW_VENV`, default
//! `/opt/millionx/venv`); when it is missing [`Fakesnow::start`] fails, so the tests fail rather than skip.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

use millionx_dataflow::config::ConnectorConfig as _;
use millionx_sink_snowflake::config::{AuthConfig, SecretSource, SnowflakeConfig};

/// Where the fakesnow venv lives.
pub fn venv_dir() -> PathBuf {
    std::env::var_os("MILLIONX_FAKESNOW_VENV").map_or_else(|| PathBuf::from("/opt/millionx/venv"), PathBuf::from)
}

/// The adapter script.
pub fn adapter_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fakesnow_adapter.py")
}

/// A free TCP port on 127.0.0.1.
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// A running emulator; killed on drop.
#[derive(Debug)]
pub struct Fakesnow {
    port: u16,
    db_dir: Option<PathBuf>,
    child: Option<Child>,
    log: PathBuf,
}

impl Fakesnow {
    /// Starts the emulator on a free port with in-memory storage and waits until it accepts logins.
    ///
    /// # Errors
    /// When the venv is missing, the process cannot start, or it is not ready within 60 s.
    pub fn start() -> Result<Fakesnow, String> {
        Self::start_with(None)
    }

    /// Like [`Fakesnow::start`], keeping databases as DuckDB files in `db_dir` so they survive [`Fakesnow::restart`].
    ///
    /// # Errors
    /// As [`Fakesnow::start`].
    pub fn start_persistent(db_dir: &Path) -> Result<Fakesnow, String> {
        Self::start_with(Some(db_dir.to_path_buf()))
    }

    fn start_with(db_dir: Option<PathBuf>) -> Result<Fakesnow, String> {
        let python = venv_dir().join("bin/python");
        if !python.exists() {
            return Err(format!(
                "fakesnow venv missing: {} (run `bash .ci/setup.d/30-fakesnow.sh` as root, or set MILLIONX_FAKESNOW_VENV)",
                python.display()
            ));
        }
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let log = std::env::temp_dir().join(format!("millionx-fakesnow-{port}.log"));
        let mut f = Fakesnow { port, db_dir, child: None, log };
        f.spawn()?;
        Ok(f)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(&self.log).map_err(|e| format!("log file: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("log file: {e}"))?;
        let mut cmd = Command::new(venv_dir().join("bin/python"));
        cmd.arg(adapter_script()).arg("--port").arg(self.port.to_string());
        if let Some(dir) = &self.db_dir {
            cmd.arg("--db-dir").arg(dir);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot start fakesnow: {e}"))?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(60))
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                    return Err(format!("fakesnow exited with {status}: {log}"));
                }
            }
            if login_probe(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("fakesnow not ready on port {} within {limit:?}", self.port))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the process (an outage); [`Fakesnow::restart`] brings it back on the same port.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same port (and database folder).
    ///
    /// # Errors
    /// As [`Fakesnow::start`].
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }

    /// A `sql_batch` config for this emulator: the password (the emulator accepts any) read from a file
    /// next to the log, fast retries.
    pub fn config(&self) -> SnowflakeConfig {
        let password = self.log.with_extension("password");
        if let Err(e) = std::fs::write(&password, "test\n") {
            panic!("cannot write {}: {e}", password.display());
        }
        let mut c = SnowflakeConfig::from_toml(&format!(
            "account = \"fakesnow\"\nhost = \"{}\"\nuser = \"millionx\"\n[auth]\ntype = \"password\"\n\
             password = {{ file = \"{}\" }}\n[retry]\nmax_retries = 30\n\
             initial_backoff_ms = 50\nmax_backoff_ms = 1000\n",
            self.url(),
            password.display()
        ))
        .unwrap_or_else(|e| panic!("built-in test config: {e}"));
        c.sql.statement_timeout_ms = 60_000;
        c
    }
}

impl Drop for Fakesnow {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True when a login-request on `port` answers HTTP 200.
fn login_probe(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let body = r#"{"data":{"ACCOUNT_NAME":"probe","LOGIN_NAME":"probe","PASSWORD":"probe"}}"#;
    let req = format!(
        "POST /session/v1/login-request HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.starts_with("HTTP/1.1 200")
}

/// A fresh 2048-bit RSA key pair as (PKCS#8 private PEM, SPKI public PEM).
///
/// # Errors
/// When generation or encoding fails.
pub fn generate_key_pair() -> Result<(String, String), String> {
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|e| e.to_string())?;
    let private = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| e.to_string())?.to_string();
    let public = key.to_public_key().to_public_key_pem(LineEnding::LF).map_err(|e| e.to_string())?;
    Ok((private, public))
}

/// A `snowpipe_streaming` config for a double at `url`, with the private key read from `key_file`.
pub fn streaming_config(url: &str, key_file: &Path) -> SnowflakeConfig {
    let mut c = SnowflakeConfig::from_toml(&format!(
        "account = \"testorg-acct\"\nhost = \"{url}\"\nuser = \"millionx\"\nmethod = \"snowpipe_streaming\"\n\
         [auth]\ntype = \"key_pair\"\nprivate_key = {{ file = \"{}\" }}\n[retry]\nmax_retries = 20\n\
         initial_backoff_ms = 20\nmax_backoff_ms = 500\n[streaming]\ncommit_poll_ms = 20\ncommit_timeout_ms = 20000\n",
        key_file.display()
    ))
    .unwrap_or_else(|e| panic!("built-in test config: {e}"));
    c.auth = AuthConfig::KeyPair {
        private_key: SecretSource { env: None, file: Some(key_file.to_path_buf()) },
        passphrase: None,
    };
    c
}

/// A TCP proxy in front of a server that, once, forwards a request containing a marker and then closes the
/// connection instead of returning the answer: the server did the work, the client saw a network failure
/// (a timeout as the client experiences it).
#[derive(Debug)]
pub struct DropResponseProxy {
    addr: SocketAddr,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
    _thread: std::thread::JoinHandle<()>,
}

impl DropResponseProxy {
    /// Proxies to `upstream` (`http://host:port`), dropping the answer to the first request holding `marker`.
    ///
    /// # Errors
    /// When the upstream URL is not `http://host:port` or no port can be bound.
    pub fn start(upstream: &str, marker: &str) -> Result<DropResponseProxy, String> {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let target = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let dropped = Arc::new(AtomicU64::new(0));
        let armed = Arc::new(AtomicBool::new(true));
        let marker = marker.as_bytes().to_vec();
        let counter = Arc::clone(&dropped);
        let thread = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                        continue;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let hit = Arc::new(AtomicBool::new(false));
                    let (armed2, hit2, marker2) = (Arc::clone(&armed), Arc::clone(&hit), marker.clone());
                    tokio::spawn(async move {
                        let mut seen: Vec<u8> = Vec::new();
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = cr.read(&mut buf).await {
                            if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            seen.extend_from_slice(&buf[..n]);
                            if armed2.load(Ordering::SeqCst) && seen.windows(marker2.len()).any(|w| w == marker2) {
                                hit2.store(true, Ordering::SeqCst);
                            }
                            if seen.len() > (1 << 20) {
                                seen.drain(..seen.len() - marker2.len());
                            }
                        }
                    });
                    let (armed3, counter3) = (Arc::clone(&armed), Arc::clone(&counter));
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = sr.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            if hit.load(Ordering::SeqCst) && armed3.swap(false, Ordering::SeqCst) {
                                counter3.fetch_add(1, Ordering::SeqCst);
                                break; // drops both halves: the client sees the connection close
                            }
                            if cw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            });
        });
        Ok(DropResponseProxy { addr, dropped, _thread: thread })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::SeqCst)
    }
}
