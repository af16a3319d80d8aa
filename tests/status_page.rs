//! The status page in a real headless browser (Debian's `chromium`) over
//! real backups of a real qbittorrent-nox: a partial run's warnings are
//! shown by torrent name, nothing secret is on the page (not in the HTML
//! served, not in the DOM the browser built), a screenshot goes into
//! `target/test-output/status_page/` (and into `docs/status-page.png` with
//! `QBACKUP_UPDATE_SCREENSHOT=1`), and the token guards every path but
//! `/healthz`.

mod agent;
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use agent::{Agent, add_generated, magnet_fixture};
use qbackup::config::Secret;
use qbackup::daemon::status::{DaemonStatus, TaskStatus};
use qbackup::web::AppState;
use support::{AddOpts, FIXTURE_PASSKEY, PASSWORD, Qbt};

const TOKEN: &str = "page-token-7f3a9c1e5b";
/// A torrent name that is markup: it must show as text.
const HOSTILE_NAME: &str = "<b>Evil</b> & \"Co\" <script>alert(1)</script>";

/// The web server on 127.0.0.1:0, in this process, until dropped.
struct Server {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    fn start(state: AppState) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(qbackup::web::serve(listener, state, async {
            let _ = rx.await;
        }));
        Server {
            rt,
            addr,
            stop: Some(tx),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// (status, headers, body) of GET `path`, with `Authorization: Bearer`
    /// when `bearer` is given.
    fn get(&self, path: &str, bearer: Option<&str>) -> (u16, reqwest::header::HeaderMap, String) {
        let url = self.url(path);
        self.rt.block_on(async {
            let c = reqwest::Client::builder().no_proxy().build().unwrap();
            let mut req = c.get(&url);
            if let Some(t) = bearer {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            (status, headers, r.text().await.unwrap())
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Debian's chromium: found on PATH, or installed with apt-get when running
/// as root. Panics when it can't be had: this test never skips.
fn chromium() -> PathBuf {
    let find = || {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join("chromium"))
            .find(|p| p.is_file())
    };
    if let Some(p) = find() {
        return p;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("chromium is missing: installing it with apt-get (Debian package)");
        for args in [
            &["update", "-qq"][..],
            &["install", "-y", "-qq", "chromium"][..],
        ] {
            let _ = Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .status();
        }
        if let Some(p) = find() {
            return p;
        }
    }
    panic!(
        "chromium is not installed and could not be: run scripts/install-deps.sh (apt-get install chromium)"
    );
}

/// Runs headless chromium on `url` with `args` (a throwaway profile); its
/// stdout.
fn browse(profile: &Path, args: &[&str], url: &str) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `target/test-output/status_page/`, created.
fn output_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-output/status_page");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A magnet link nobody seeds, named [`HOSTILE_NAME`], with the fixture
/// tracker (and its passkey).
fn hostile_magnet() -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "magnet:?xt=urn:btih:{}&dn={}&tr={}",
        support::sha1_hex(b"qbackup status page hostile magnet"),
        enc(HOSTILE_NAME),
        enc(support::FIXTURE_ANNOUNCE)
    )
}

/// Nothing secret in `text` (the served HTML, or the browser's DOM).
fn assert_no_secrets(what: &str, text: &str, sid: Option<&str>) {
    let mut bad = vec![
        PASSWORD,
        FIXTURE_PASSKEY,
        "passkey",
        "magnet:",
        "SID=",
        TOKEN,
        "127.0.0.1:9/announce",
    ];
    bad.extend(sid);
    for b in bad {
        assert!(!text.contains(b), "{what} contains {b:?}");
    }
}

/// The qBittorrent session cookie a login gets (to grep the page for it).
fn session_cookie(q: &Qbt) -> Option<String> {
    let out = Command::new("curl")
        .args(["-s", "-i", "--noproxy", "*", "--data"])
        .arg(format!("username=admin&password={PASSWORD}"))
        .arg(format!(
            "{}/api/v2/auth/login",
            q.url().trim_end_matches('/')
        ))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))?;
    let value = line.split_once("SID=")?.1.split(';').next()?;
    Some(value.to_string())
}

#[test]
fn the_page_in_headless_chromium_shows_the_partial_runs_warnings_and_no_secret() {
    let q = Qbt::start();
    // Private-tracker torrents (their announce URL carries a passkey).
    add_generated(&q, "page-private", 4, 77);
    let a = Agent::for_qbt(&q);
    let first = a.run(&["run", "--json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    std::thread::sleep(Duration::from_millis(1100));
    add_generated(&q, "page-more", 3, 78);
    let second = a.run(&["run", "--json"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    std::thread::sleep(Duration::from_millis(1100));
    // Two magnets without metadata: the next run is partial.
    let (uri, _) = magnet_fixture();
    q.add_magnet(&uri, &AddOpts::default());
    q.add_magnet(&hostile_magnet(), &AddOpts::default());
    q.wait_for_count(9, Duration::from_secs(20));
    let third = a.run(&["run", "--json"]);
    assert_eq!(third.code, 3, "{}\n{}", third.stdout, third.stderr);
    let partial = third.json();
    assert_eq!(partial["warnings"], 2);
    let run_id = partial["run_id"].as_str().unwrap().to_string();

    // The daemon binds 127.0.0.1 unless configured otherwise.
    let config = qbackup::config::Config::load(&a.config).unwrap();
    assert_eq!(config.daemon.listen.to_string(), "127.0.0.1:9184");
    assert!(config.daemon.token.is_none());

    // The next slot, as the daemon would say it: a few hours on.
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let next_at = (time::OffsetDateTime::now_utc() + time::Duration::minutes(5 * 60 + 42))
        .replace_nanosecond(0)
        .unwrap();
    let next = next_at.format(rfc3339).unwrap();
    let next_shown = next_at
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        ))
        .unwrap();
    let status = DaemonStatus {
        started_at: Some("2026-11-30T00:00:00Z".into()),
        tasks: vec![TaskStatus {
            task: "run:test".into(),
            instance: Some("test".into()),
            schedule: "0 */6 * * *".into(),
            next: Some(next.clone()),
            running: false,
            last_outcome: Some("partial".into()),
            last_finished: partial["finished_at"].as_str().map(Into::into),
        }],
    };
    let server = Server::start(AppState::new(
        a.store.clone(),
        std::sync::Arc::new(std::sync::RwLock::new(status)),
        Some(Secret::new(TOKEN)),
    ));

    // The token: every path but /healthz needs it.
    for path in ["/", "/metrics", "/?token=wrong", "/nothing-here"] {
        let (code, headers, body) = server.get(path, None);
        assert_eq!(code, 401, "{path}: {body}");
        assert!(headers.contains_key("www-authenticate"), "{path}");
        assert!(!body.contains(TOKEN));
    }
    assert_eq!(server.get("/", Some("wrong-token")).0, 401);
    assert_eq!(server.get("/healthz", None).0, 200);
    assert_eq!(server.get("/metrics", Some(TOKEN)).0, 200);
    assert_eq!(server.get(&format!("/metrics?token={TOKEN}"), None).0, 200);
    assert_eq!(server.get("/nothing-here", Some(TOKEN)).0, 404);

    // The HTML as served.
    let (code, headers, html) = server.get("/", Some(TOKEN));
    assert_eq!(code, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-store");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let sid = session_cookie(&q);
    assert_no_secrets("the served HTML", &html, sid.as_deref());
    for bad in ["<script", "src=", "href=", "<link", "url("] {
        assert!(!html.contains(bad), "{bad:?} in the served HTML");
    }
    assert!(
        html.contains("&lt;b&gt;Evil&lt;/b&gt; &amp; &quot;Co&quot; &lt;script&gt;"),
        "the hostile name is escaped:\n{html}"
    );

    // The DOM a real browser builds from it (the token in the query, as
    // a bookmark would have it).
    let profile = tempfile::tempdir().unwrap();
    let page_url = server.url(&format!("/?token={TOKEN}"));
    let dom = browse(profile.path(), &["--dump-dom"], &page_url);
    assert!(dom.contains("qbackup status"), "{dom}");
    assert_no_secrets("the DOM", &dom, sid.as_deref());
    // The partial run's warnings, by torrent name, in its warnings table.
    let warnings_start = dom
        .find(&format!("Warnings of run <code>{run_id}</code>"))
        .unwrap_or_else(|| panic!("the partial run's warnings are listed:\n{dom}"));
    let table = &dom[warnings_start..];
    let table = &table[..table.find("</table>").unwrap()];
    assert!(
        table.contains("<td class=\"torrent\">qbackup magnet fixture (no peers)</td>"),
        "{table}"
    );
    // The markup name is text in the DOM, not elements.
    assert!(
        table
            .contains("&lt;b&gt;Evil&lt;/b&gt; &amp; \"Co\" &lt;script&gt;alert(1)&lt;/script&gt;"),
        "{table}"
    );
    assert!(
        !dom.contains("<b>Evil</b>") && !dom.contains("<script>"),
        "{dom}"
    );
    assert_eq!(
        table.matches("Magnet without metadata").count(),
        2,
        "{table}"
    );
    // The counts, the next scheduled run and both charts.
    assert!(dom.contains(&next_shown), "next run shown:\n{dom}");
    assert!(dom.contains("aria-label=\"Torrents stored\""), "{dom}");
    assert!(dom.contains("aria-label=\"Warnings per run\""), "{dom}");
    assert_eq!(
        dom.matches("<circle").count(),
        3,
        "one point per finished run"
    );
    assert!(
        dom.contains("status-partial") && dom.contains("status-success"),
        "{dom}"
    );

    // A screenshot for people (and the docs).
    let shot = output_dir().join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,1600",
        ],
        &page_url,
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        png.len() > 20_000,
        "a page, not a blank: {} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
    if std::env::var_os("QBACKUP_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/status-page.png");
        std::fs::copy(&shot, &docs).unwrap();
        eprintln!("copied to {}", docs.display());
    }
}
