//! The restore baseline for `scripts/bench.sh`: the simplest batched add
//! loop with read-back — log in, then for each batch of .torrent files (as
//! `plain_export` wrote them: `OUT_DIR/<hash>.torrent`) read them, send one
//! `torrents/add` (multipart, paused) and poll `torrents/info?hashes=` every
//! 100 ms until all of them are listed. The same work as `qbackup restore`
//! (which also polls every 100 ms), minus verification, planning, categories
//! and bookkeeping. No retries.
//!
//! ```text
//! plain_add URL PASSWORD_FILE DIR [BATCH]    (BATCH: torrents per request, default 50)
//! ```
//!
//! Prints `{"files":N,"added":A,"missing":M,"duration_ms":T}`; M counts the
//! torrents not listed 60 s after their batch was accepted.

#[path = "common/plain.rs"]
mod plain;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How often a batch is read back (as qbackup restore's `CONFIRM_POLL`).
const POLL: Duration = Duration::from_millis(100);
/// How long an accepted batch may take to be listed.
const CONFIRM_FOR: Duration = Duration::from_secs(60);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (url, password_file, dir, batch) = match args.as_slice() {
        [_, u, p, d] => (u, p, d, 50usize),
        [_, u, p, d, b] => (u, p, d, b.parse().context("BATCH: a number")?),
        _ => bail!("usage: plain_add URL PASSWORD_FILE DIR [BATCH]"),
    };
    if batch == 0 {
        bail!("BATCH must be at least 1");
    }
    let t0 = Instant::now();
    let (client, base) = plain::login(url, password_file).await?;
    let base = base.as_str();
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {dir}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "torrent"))
        .collect();
    files.sort();
    #[derive(serde::Deserialize)]
    struct T {
        hash: String,
    }
    let (mut added, mut missing) = (0usize, 0usize);
    for chunk in files.chunks(batch) {
        let mut form = reqwest::multipart::Form::new()
            .text("paused", "true")
            .text("stopped", "true");
        let mut hashes = Vec::with_capacity(chunk.len());
        for p in chunk {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            hashes.push(name.trim_end_matches(".torrent").to_string());
            let bytes = std::fs::read(p).with_context(|| format!("read {}", p.display()))?;
            let part = reqwest::multipart::Part::bytes(bytes)
                .file_name(name)
                .mime_str("application/x-bittorrent")?;
            form = form.part("torrents", part);
        }
        let r = client
            .post(format!("{base}/api/v2/torrents/add"))
            .multipart(form)
            .send()
            .await?;
        let status = r.status();
        let body = r.text().await?;
        if !status.is_success() {
            bail!("torrents/add: HTTP {status} {body:?}");
        }
        let joined = hashes.join("|");
        let deadline = Instant::now() + CONFIRM_FOR;
        let found = loop {
            let listed: Vec<T> = client
                .get(format!("{base}/api/v2/torrents/info"))
                .query(&[("hashes", joined.as_str())])
                .send()
                .await?
                .json()
                .await?;
            let listed: HashSet<String> = listed.into_iter().map(|t| t.hash).collect();
            let found = hashes.iter().filter(|h| listed.contains(*h)).count();
            if found == hashes.len() || Instant::now() >= deadline {
                break found;
            }
            tokio::time::sleep(POLL).await;
        };
        added += found;
        missing += hashes.len() - found;
    }
    println!(
        "{{\"files\":{},\"added\":{added},\"missing\":{missing},\"duration_ms\":{}}}",
        files.len(),
        t0.elapsed().as_millis()
    );
    Ok(())
}
