//! Faults for the remote-copy tests (tests/remote_faults.rs), next to the
//! real servers of [`super::remote`]:
//!
//! - [`FaultProxy`]: an HTTP/1.1 proxy on 127.0.0.1 in front of a real S3
//!   server (s3s-fs) that forwards requests byte for byte (SigV4 signatures
//!   stay valid: the Host header is not rewritten and s3s-fs checks the one
//!   it receives) or answers `503 Service Unavailable` as a [`Fault`] says:
//!   to the first attempt of every PUT, to every Nth request, to everything,
//!   or holds requests until released (to catch a copy in the middle).
//! - Remotes keyed by an age identity file ([`append_identity_remote`],
//!   `age-keygen`), their `config` object opened with the `age` CLI
//!   ([`open_remote_config`]), and object names computed from store paths
//!   ([`object_name`], HMAC-SHA256 under the remote's name key; and the same
//!   with `openssl dgst`, [`openssl_hmac`]), so a test can find and damage
//!   one chosen blob, chunk or run object on the remote.
//! - Byte-level damage: [`flip_byte`], [`truncate_half`].
//!
//! Needs the Debian packages `age` (age, age-keygen) and `openssl`.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::write_private_file;

// ---------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------

/// What the proxy does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    Pass,
    /// 503 to the first request of each (method, path) whose method is
    /// listed; later attempts (the retries) are forwarded.
    FirstAttempt(Vec<&'static str>),
    /// 503 to every `n`th request (the nth, 2nth, …), of any method.
    EveryNth(usize),
    /// 503 to every request whose method is listed (every request if the
    /// list is empty).
    Always(Vec<&'static str>),
    /// Requests whose method is listed wait until [`FaultProxy::release`]
    /// (or another fault is set), then are forwarded.
    Hold(Vec<&'static str>),
}

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// The status the client got (0: the server sent nothing parseable).
    pub status: u16,
    /// The proxy answered it itself (a 503), the server never saw it.
    pub injected: bool,
}

#[derive(Default)]
struct State {
    fault: Option<Fault>,
    count: usize,
    first_seen: HashSet<(String, String)>,
    held: usize,
    seen: Vec<Seen>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    upstream: u16,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True: answer 503. Blocks while a Hold fault holds this request.
    fn decide(&self, method: &str, target: &str) -> bool {
        let mut st = self.lock();
        st.count += 1;
        let n = st.count;
        let listed = |m: &[&'static str]| lists(m, method);
        match st.fault.clone().unwrap_or(Fault::Pass) {
            Fault::Pass => false,
            Fault::FirstAttempt(m) => {
                listed(&m) && st.first_seen.insert((method.to_string(), path_of(target)))
            }
            Fault::EveryNth(k) => k > 0 && n.is_multiple_of(k),
            Fault::Always(m) => listed(&m),
            Fault::Hold(m) => {
                if !listed(&m) {
                    return false;
                }
                st.held += 1;
                self.changed.notify_all();
                while matches!(&st.fault, Some(Fault::Hold(m)) if lists(m, method)) {
                    st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                st.held -= 1;
                false
            }
        }
    }

    fn record(&self, seen: Seen) {
        self.lock().seen.push(seen);
        self.changed.notify_all();
    }
}

/// True when `methods` holds `method`, or is empty (every method).
fn lists(methods: &[&str], method: &str) -> bool {
    methods.is_empty() || methods.contains(&method)
}

/// The path of a request target, without its query.
fn path_of(target: &str) -> String {
    target.split('?').next().unwrap_or(target).to_string()
}

/// An HTTP/1.1 proxy on 127.0.0.1 in front of `127.0.0.1:upstream` that
/// injects [`Fault`]s. Forwarded requests go on a fresh connection with
/// `Connection: close` (so the response ends at EOF and the client opens a
/// new connection for the next one); an injected 503 keeps the client's
/// connection open, as a real server's would. Stops accepting on drop.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy forwarding to `127.0.0.1:upstream` with `fault`.
    pub fn start(upstream: u16, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                fault: Some(fault),
                ..State::default()
            }),
            changed: Condvar::new(),
            upstream,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        FaultProxy {
            port,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// From now on, `fault` (releases held requests unless it holds them too).
    pub fn set(&self, fault: Fault) {
        let mut st = self.shared.lock();
        st.fault = Some(fault);
        st.first_seen.clear();
        self.shared.changed.notify_all();
    }

    /// Lets held requests through and forwards everything from now on.
    pub fn release(&self) {
        self.set(Fault::Pass);
    }

    /// Every request so far, in the order they were answered.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.lock().seen.clone()
    }

    /// Requests answered with an injected 503.
    pub fn injected(&self) -> usize {
        self.seen().iter().filter(|s| s.injected).count()
    }

    /// Forgets the requests seen so far.
    pub fn clear_seen(&self) {
        self.shared.lock().seen.clear();
    }

    /// Requests waiting in a [`Fault::Hold`] now.
    pub fn held(&self) -> usize {
        self.shared.lock().held
    }

    /// Waits until at least `n` requests are held; panics after `timeout`.
    pub fn wait_held(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        while st.held < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the proxy held {} requests after {timeout:?}, waiting for {n}",
                st.held
            );
            st = self
                .shared
                .changed
                .wait_timeout(st, left.min(Duration::from_millis(200)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.release();
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request read off a connection: its method, target, the head as
/// received and the raw body.
struct Request {
    method: String,
    target: String,
    head: Vec<u8>,
    body: Vec<u8>,
}

/// Bytes read from a connection but not consumed yet.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Reads more bytes into the buffer; false at EOF or on an error.
    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 16 * 1024];
        match self.stream.read(&mut tmp) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
        }
    }

    /// The next `n` bytes.
    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill() {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// The next line, with its CRLF.
    fn line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                return Some(self.buf.drain(..i + 2).collect());
            }
            if self.buf.len() > 64 * 1024 || !self.fill() {
                return None;
            }
        }
    }

    /// The next request, or None when the client is done.
    fn request(&mut self) -> Option<Request> {
        let mut head = Vec::new();
        loop {
            let l = self.line()?;
            let end = l == b"\r\n";
            head.extend_from_slice(&l);
            if end {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let target = first.next().unwrap_or("").to_string();
        let mut length = 0usize;
        let mut chunked = false;
        for l in lines {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse().ok()?;
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
        let body = if chunked {
            // Kept as sent (the framing too): it is forwarded unchanged.
            let mut raw = Vec::new();
            loop {
                let size_line = self.line()?;
                raw.extend_from_slice(&size_line);
                let size_text = String::from_utf8_lossy(&size_line);
                let size_hex = size_text.trim().split(';').next().unwrap_or("");
                let size = usize::from_str_radix(size_hex, 16).ok()?;
                if size == 0 {
                    loop {
                        let t = self.line()?;
                        let end = t == b"\r\n";
                        raw.extend_from_slice(&t);
                        if end {
                            break;
                        }
                    }
                    break;
                }
                raw.extend_from_slice(&self.take(size + 2)?);
            }
            raw
        } else {
            self.take(length)?
        };
        Some(Request {
            method,
            target,
            head,
            body,
        })
    }
}

/// The S3 error a 503 carries (OpenDAL reads its code; `SlowDown` and 503
/// are retried with backoff).
const BODY_503: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>ServiceUnavailable</Code><Message>injected by the qbackup test proxy</Message><RequestId>qbackup-fault-proxy</RequestId></Error>";

fn serve(client: TcpStream, shared: &Shared) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(300)));
    let mut conn = Conn {
        stream: client,
        buf: Vec::new(),
    };
    while let Some(req) = conn.request() {
        if shared.decide(&req.method, &req.target) {
            let body = if req.method == "HEAD" { "" } else { BODY_503 };
            let resp = format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nx-amz-request-id: qbackup-fault-proxy\r\n\r\n{body}",
                if req.method == "HEAD" {
                    0
                } else {
                    BODY_503.len()
                }
            );
            shared.record(Seen {
                method: req.method.clone(),
                target: req.target.clone(),
                status: 503,
                injected: true,
            });
            if conn.stream.write_all(resp.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        let resp = forward(shared.upstream, &req);
        let status = resp
            .as_ref()
            .ok()
            .and_then(|r| {
                String::from_utf8_lossy(&r[..r.len().min(32)])
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
            })
            .unwrap_or(0);
        shared.record(Seen {
            method: req.method.clone(),
            target: req.target.clone(),
            status,
            injected: false,
        });
        if let Ok(r) = resp {
            let _ = conn.stream.write_all(&r);
        }
        // The response said `Connection: close`: so do we.
        let _ = conn.stream.shutdown(Shutdown::Both);
        return;
    }
}

/// Sends `req` to the server on a new connection with `Connection: close`
/// and returns its whole response.
fn forward(upstream: u16, req: &Request) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", upstream))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let text = String::from_utf8_lossy(&req.head).into_owned();
    let mut head = String::new();
    for l in text.split("\r\n").filter(|l| !l.is_empty()) {
        if l.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        head.push_str(l);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(&req.body)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// Remotes keyed by an age identity file
// ---------------------------------------------------------------------------

/// `age-keygen -o path` (0600): a new age identity file.
pub fn age_keygen(path: &Path) {
    let _ = fs::remove_file(path);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run age-keygen (Debian package age)");
    assert!(
        out.status.success(),
        "age-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read(path).expect("read the new identity");
    write_private_file(path, &text).expect("identity file 0600");
}

/// The identity file [`append_identity_remote`] writes for remote `name`:
/// next to the config, `NAME.agekey`.
pub fn identity_file(config: &Path, name: &str) -> PathBuf {
    config
        .parent()
        .expect("config has a directory")
        .join(format!("{name}.agekey"))
}

/// Appends a `[[remote]]` block keyed by a new age identity file (made with
/// `age-keygen`) to `config`: `name`, `server_lines` (as for
/// [`super::remote::append_remote`]), `identity_file`, `extra`. Returns the
/// identity file.
pub fn append_identity_remote(
    config: &Path,
    name: &str,
    server_lines: &str,
    extra: &str,
) -> PathBuf {
    let key = identity_file(config, name);
    age_keygen(&key);
    let mut block = format!(
        "\n[[remote]]\nname = {name:?}\n{server_lines}identity_file = {:?}\n{extra}",
        key.display().to_string()
    );
    if !block.ends_with('\n') {
        block.push('\n');
    }
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(config)
        .unwrap_or_else(|e| panic!("open {}: {e}", config.display()));
    f.write_all(block.as_bytes()).expect("append [[remote]]");
    key
}

/// `age -d -i identity file`: the plaintext, or age's stderr.
pub fn age_decrypt(identity: &Path, file: &Path) -> Result<Vec<u8>, String> {
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("run age (Debian package age)");
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A remote's own keys, from its `config` object.
#[derive(Debug, Clone)]
pub struct RemoteKeys {
    /// The `config` object's JSON.
    pub doc: serde_json::Value,
    /// `name_key`, 64 hex digits.
    pub name_key: String,
    /// A 0600 file holding `data_identity` (what `age -d -i` takes).
    pub data_key: PathBuf,
}

/// Opens `objects_dir/config` with `age -d -i identity` and writes its data
/// identity to `data_key` (0600).
pub fn open_remote_config(objects_dir: &Path, identity: &Path, data_key: &Path) -> RemoteKeys {
    let plain = age_decrypt(identity, &objects_dir.join("config"))
        .unwrap_or_else(|e| panic!("age -d -i IDENTITY config: {e}"));
    let doc: serde_json::Value =
        serde_json::from_slice(&plain).expect("the config object holds JSON");
    let name_key = doc["name_key"]
        .as_str()
        .expect("config: name_key")
        .to_string();
    let data = doc["data_identity"]
        .as_str()
        .expect("config: data_identity")
        .to_string();
    write_private_file(data_key, format!("{data}\n").as_bytes()).expect("write data key");
    RemoteKeys {
        doc,
        name_key,
        data_key: data_key.to_path_buf(),
    }
}

/// HMAC-SHA256 of `rel` under the hex key `name_key`, hex: the name of the
/// object holding store path `rel`.
pub fn object_name(name_key: &str, rel: &str) -> String {
    use hmac::{KeyInit, Mac};
    let key = hex_decode(name_key).expect("name_key is hex");
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(rel.as_bytes());
    super::hex(&mac.finalize().into_bytes())
}

/// The same with `openssl dgst -sha256 -mac HMAC -macopt hexkey:KEY`, as
/// docs/offsite.md tells users to.
pub fn openssl_hmac(name_key: &str, rel: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-mac", "HMAC", "-macopt"])
        .arg(format!("hexkey:{name_key}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(rel.as_bytes())
        .expect("write to openssl");
    let out = child.wait_with_output().expect("openssl");
    assert!(
        out.status.success(),
        "openssl dgst: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "HMAC-SHA2-256(stdin)= 3f…" (the label differs between versions).
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .unwrap_or("")
        .to_string()
}

/// Where the object of store path `rel` is under a remote's tree: run files
/// under `runs/`, everything else under `data/hh/`.
pub fn object_path(objects_dir: &Path, name_key: &str, rel: &str) -> PathBuf {
    let h = object_name(name_key, rel);
    if rel.starts_with("runs/") {
        objects_dir.join("runs").join(h)
    } else {
        objects_dir.join("data").join(&h[..2]).join(h)
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

// ---------------------------------------------------------------------------
// Damage
// ---------------------------------------------------------------------------

/// Flips one bit of the byte at the middle of the file.
pub fn flip_byte(path: &Path) {
    let mut b = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(!b.is_empty(), "{} is empty", path.display());
    let i = b.len() / 2;
    b[i] ^= 0x20;
    fs::write(path, b).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Cuts the file to half its length.
pub fn truncate_half(path: &Path) {
    let b = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    fs::write(path, &b[..b.len() / 2]).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Regular files under `dir/top` as store-relative paths (`top/…`), sorted.
pub fn store_files(store: &Path, top: &str) -> Vec<String> {
    super::remote::walk_files(&store.join(top))
        .into_iter()
        .filter_map(|p| p.strip_prefix(store).ok().map(|r| r.display().to_string()))
        .collect()
}
