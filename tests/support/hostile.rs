//! A hostile qBittorrent on 127.0.0.1 for tests: replies written straight to
//! the socket, so they can lie (a `Content-Length` of 2^44), never end (an
//! endless chunked body) or stall. One request per connection.
//!
//! [`Hostile::start`] takes a route from request path to [`Reply`];
//! [`qbt45`] answers the endpoints a run needs before the one under test
//! like a qBittorrent 4.5.2 would (any login is accepted).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What the server sends for one request.
pub enum Reply {
    /// A well-formed reply with this status and body.
    Full { status: u16, body: Vec<u8> },
    /// These bytes exactly (status line, headers, any body), then close.
    Raw(Vec<u8>),
    /// These bytes exactly, then silence with the connection open (for 60 s).
    Stall(Vec<u8>),
    /// 200, chunked: `prefix` once, then `repeat` again and again until
    /// the client goes away.
    Endless { prefix: Vec<u8>, repeat: Vec<u8> },
}

pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
    Reply::Full {
        status: 200,
        body: body.into(),
    }
}

/// A reply's head with a `Content-Length` that is a lie: it announces
/// `announced` bytes and sends `body`, then closes.
pub fn lying_length(announced: u64, body: &[u8]) -> Reply {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {announced}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(body);
    Reply::Raw(out)
}

/// A qBittorrent 4.5.2's replies to login, versions, categories and tags.
pub fn qbt45(path: &str) -> Option<Reply> {
    let ep = path.trim_start_matches("/api/v2/");
    Some(match ep {
        "auth/login" => ok("Ok."),
        "app/version" => ok("v4.5.2"),
        "app/webapiVersion" => ok("2.8.19"),
        "torrents/categories" => ok("{}"),
        "torrents/tags" => ok("[]"),
        _ => return None,
    })
}

pub type Route = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

pub struct Hostile {
    pub port: u16,
    sent: Arc<AtomicU64>,
}

impl Hostile {
    pub fn start(route: Route) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind hostile server");
        let port = listener.local_addr().expect("addr").port();
        let sent = Arc::new(AtomicU64::new(0));
        let sent2 = sent.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (route, sent) = (route.clone(), sent2.clone());
                std::thread::spawn(move || serve(conn, &route, &sent));
            }
        });
        Hostile { port, sent }
    }

    /// The base URL, `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Body bytes written so far, over all connections.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

/// Reads one request's head and body; returns its path.
fn read_request(conn: &TcpStream) -> Option<String> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let target = line.split_whitespace().nth(1)?.to_string();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(target.split('?').next().unwrap_or("").to_string())
}

fn serve(mut conn: TcpStream, route: &Route, sent: &AtomicU64) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(path) = read_request(&conn) else {
        return;
    };
    match route(&path) {
        Reply::Full { status, body } => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nSet-Cookie: SID=hostile; HttpOnly\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
            sent.fetch_add(body.len() as u64, Ordering::SeqCst);
        }
        Reply::Raw(bytes) => {
            let _ = conn.write_all(&bytes);
        }
        Reply::Stall(bytes) => {
            let _ = conn.write_all(&bytes);
            let _ = conn.flush();
            std::thread::sleep(Duration::from_secs(60));
        }
        Reply::Endless { prefix, repeat } => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            if conn.write_all(head.as_bytes()).is_err() {
                return;
            }
            let chunk = |data: &[u8]| {
                let mut c = format!("{:x}\r\n", data.len()).into_bytes();
                c.extend_from_slice(data);
                c.extend_from_slice(b"\r\n");
                c
            };
            if !prefix.is_empty() && conn.write_all(&chunk(&prefix)).is_err() {
                return;
            }
            sent.fetch_add(prefix.len() as u64, Ordering::SeqCst);
            let body = chunk(&repeat);
            while conn.write_all(&body).is_ok() {
                sent.fetch_add(repeat.len() as u64, Ordering::SeqCst);
            }
        }
    }
    let _ = conn.flush();
}
