//! A baseline for `scripts/bench.sh`: one `torrents/info` listing and
//! nothing else — log in, list every torrent (gzip, as qbackup asks for it),
//! parse the JSON. What a backup run that finds nothing new can't avoid.
//!
//! ```text
//! plain_list URL PASSWORD_FILE
//! ```
//!
//! Prints `{"listed":N,"bytes":B,"duration_ms":T}` (B: the decompressed body).

#[path = "common/plain.rs"]
mod plain;

use std::time::Instant;

use anyhow::{Result, bail};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, password_file] = args.as_slice() else {
        bail!("usage: plain_list URL PASSWORD_FILE");
    };
    let t0 = Instant::now();
    let (client, base) = plain::login(url, password_file).await?;
    let base = base.as_str();
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
