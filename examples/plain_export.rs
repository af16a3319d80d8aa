//! The baseline for `scripts/bench.sh`: the simplest possible backup loop —
//! log in, list, export every torrent one after the other and write each to a
//! file. No verification, no throttle, no retries, no history.
//!
//! ```text
//! plain_export URL PASSWORD_FILE OUT_DIR
//! ```

use std::time::Instant;

use anyhow::{Context, Result, bail};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, password_file, out] = args.as_slice() else {
        bail!("usage: plain_export URL PASSWORD_FILE OUT_DIR");
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
        hash: String,
    }
    let list: Vec<T> = client
        .get(format!("{base}/api/v2/torrents/info"))
        .send()
        .await?
        .json()
        .await?;
    std::fs::create_dir_all(out)?;
    let mut ok = 0;
    for t in &list {
        let r = client
            .get(format!("{base}/api/v2/torrents/export"))
            .query(&[("hash", &t.hash)])
            .send()
            .await?;
        if r.status().is_success() {
            let bytes = r.bytes().await?;
            std::fs::write(format!("{out}/{}.torrent", t.hash), &bytes).context("write")?;
            ok += 1;
        }
    }
    println!(
        "{{\"listed\":{},\"exported\":{},\"duration_ms\":{}}}",
        list.len(),
        ok,
        t0.elapsed().as_millis()
    );
    Ok(())
}
