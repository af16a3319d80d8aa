//! A baseline for `scripts/bench.sh`: one `torrents/info` listing and
//! nothing else — log in, list every torrent (gzip, as qbackup asks for it),
//! parse the JSON. What a backup run that finds nothing new can't avoid.
//!
//! ```text
//! plain_list URL PASSWORD_FILE
//! ```
//!
//! Prints `{"listed":N,"bytes":B,"duration_ms":T}` (B: the decompressed body).

use std::time::Instant;

use anyhow::{Result, bail};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, password_file] = args.as_slice() else {
        bail!("usage: plain_list URL PASSWORD_FILE");
    };
    let password = std::fs::read_to_string(password_file)?.trim().to_string();
    let base = url.trim_end_matches('/');
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .gzip(true)
        .build()?;
    let t0 = Instant::now();
    let login = client
        .post(format!("{base}/api/v2/auth/login"))
        .form(&[("username", "admin"), ("password", password.as_str())])
        .send()
        .await?
        .text()
        .await?;
    if login != "Ok." {
        bail!("login failed");
    }
    #[derive(serde::Deserialize)]
    struct T {
        #[allow(dead_code)]
        hash: String,
    }
    let body = client
        .get(format!("{base}/api/v2/torrents/info"))
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let list: Vec<T> = serde_json::from_slice(&body)?;
    println!(
        "{{\"listed\":{},\"bytes\":{},\"duration_ms\":{}}}",
        list.len(),
        body.len(),
        t0.elapsed().as_millis()
    );
    Ok(())
}
