//! The baseline for `scripts/bench.sh`: the simplest possible backup loop —
//! log in, list, and for every torrent one after the other: export it and
//! write it to a file, and read its files and trackers (the state a first
//! qbackup run captures). No verification, no throttle, no retries, no
//! history.
//!
//! ```text
//! plain_export URL PASSWORD_FILE OUT_DIR
//! ```

#[path = "common/plain.rs"]
mod plain;

use std::time::Instant;

use anyhow::{Context, Result, bail};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, password_file, out] = args.as_slice() else {
        bail!("usage: plain_export URL PASSWORD_FILE OUT_DIR");
    };
    let t0 = Instant::now();
    let (client, base) = plain::login(url, password_file).await?;
    let base = base.as_str();
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
        for ep in ["files", "trackers"] {
            let r = client
                .get(format!("{base}/api/v2/torrents/{ep}"))
                .query(&[("hash", &t.hash)])
                .send()
                .await?;
            let _state: serde_json::Value = r.json().await?;
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
