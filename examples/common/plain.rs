//! What the plain baselines of `scripts/bench.sh` share: one keep-alive
//! client and one login, as simple as a hand-written script would do it.

use anyhow::{Result, bail};

/// A gzip, cookie-keeping client logged in as `admin` with the first line of
/// `password_file`; returns it with the base URL (no trailing slash).
pub async fn login(url: &str, password_file: &str) -> Result<(reqwest::Client, String)> {
    let password = std::fs::read_to_string(password_file)?.trim().to_string();
    let base = url.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .gzip(true)
        .build()?;
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
    Ok((client, base))
}
