//! Remote copies end to end, against real servers on 127.0.0.1: s3s-fs (an
//! S3 API over a directory, built from crates.io), OpenSSH's sshd (SFTP) and
//! a plain directory. See tests/support/remote.rs for the servers.

mod agent;
mod support;

use std::process::{Command, Stdio};

use support::remote::{S3_ACCESS_KEY, S3_BUCKET, S3_REGION, S3_SECRET_KEY, S3Server, Sshd};

// ---------------------------------------------------------------------------
// The fixtures themselves
// ---------------------------------------------------------------------------

/// `curl --aws-sigv4` against the test S3 server: (HTTP status, body).
fn curl_s3(
    s3: &S3Server,
    method: &str,
    key: &str,
    body: Option<&[u8]>,
    secret: &str,
) -> (u16, Vec<u8>) {
    let url = format!("{}/{S3_BUCKET}/{key}", s3.endpoint());
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}"])
        .args(["--aws-sigv4", &format!("aws:amz:{S3_REGION}:s3")])
        .args(["--user", &format!("{S3_ACCESS_KEY}:{secret}")])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(["-X", method]);
    if body.is_some() {
        cmd.args(["--data-binary", "@-"]);
    }
    let mut child = cmd
        .arg(&url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(b) = body {
            stdin.write_all(b).expect("write body");
        }
    }
    let out = child.wait_with_output().expect("curl");
    assert!(
        out.status.success(),
        "curl {method} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut stdout = out.stdout;
    let nl = stdout
        .iter()
        .rposition(|&c| c == b'\n')
        .expect("status line");
    let code: u16 = String::from_utf8_lossy(&stdout[nl + 1..])
        .trim()
        .parse()
        .expect("status");
    stdout.truncate(nl);
    (code, stdout)
}

/// The S3 server answers signed requests (and refuses a wrong secret), keeps
/// objects as files under its data dir, counts requests by operation, and
/// refuses connections once stopped.
#[test]
fn s3_server_fixture_stores_objects_as_files_and_counts_requests() {
    let mut s3 = S3Server::start();
    let (code, body) = curl_s3(
        &s3,
        "PUT",
        "smoke/a/object-1",
        Some(b"hello remote"),
        S3_SECRET_KEY,
    );
    assert_eq!(code, 200, "PUT: {}", String::from_utf8_lossy(&body));
    let (code, body) = curl_s3(&s3, "GET", "smoke/a/object-1", None, S3_SECRET_KEY);
    assert_eq!((code, body.as_slice()), (200, &b"hello remote"[..]));
    let (code, _) = curl_s3(&s3, "GET", "smoke/a/object-1", None, "not-the-secret");
    assert_eq!(code, 403, "a wrong secret is refused");
    assert_eq!(
        std::fs::read(s3.bucket_dir().join("smoke/a/object-1")).expect("object file"),
        b"hello remote"
    );
    let ops = s3.ops();
    assert_eq!(ops.get("PutObject"), Some(&1), "{ops:?}");
    assert_eq!(ops.get("GetObject"), Some(&1), "{ops:?}");
    assert_eq!(s3.write_ops(), 1);
    // The metadata s3s-fs keeps beside the bucket names the key in base64,
    // which the secrets search decodes.
    let found = support::remote::find_needles(
        &s3.data_dir(),
        &[("key".to_string(), b"smoke/a/object-1".to_vec())],
    );
    assert!(
        found.iter().any(|f| f.contains("in the name .bucket-")),
        "{found:?}"
    );

    let before = support::remote::tree_snapshot(&s3.data_dir());
    s3.stop();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", s3.port())).is_err(),
        "a stopped server refuses connections"
    );
    s3.restart();
    let (code, body) = curl_s3(&s3, "GET", "smoke/a/object-1", None, S3_SECRET_KEY);
    assert_eq!((code, body.as_slice()), (200, &b"hello remote"[..]));
    assert!(
        support::remote::snapshot_diff(&before, &support::remote::tree_snapshot(&s3.data_dir()))
            .is_empty()
    );
}

/// sshd lets the test key in (and only it), serves SFTP on the remote root.
#[test]
fn sshd_fixture_serves_sftp_with_the_test_key() {
    let mut sshd = Sshd::start();
    let root = sshd.root();
    std::fs::write(root.join("hello.txt"), b"hi").unwrap();
    let (ok, out, err) = sshd.sftp_batch(&format!(
        "cd {}\nmkdir made-by-sftp\nls -1\n",
        root.display()
    ));
    assert!(ok, "sftp failed: {err}\n{}", sshd.log_tail(30));
    assert!(out.contains("hello.txt"), "{out}");
    assert!(root.join("made-by-sftp").is_dir());

    // Another key is refused.
    let other = tempfile::tempdir().unwrap();
    let key = other.path().join("other");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", ""])
        .arg("-f")
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let mut opts = sshd.ssh_options();
    let i = opts.iter().position(|o| o == "-i").unwrap();
    opts[i + 1] = key.display().to_string();
    let out = Command::new("ssh")
        .args(&opts)
        .arg("-p")
        .arg(sshd.port().to_string())
        .arg(format!("{}@127.0.0.1", sshd.user()))
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a key that is not authorized logged in"
    );

    sshd.stop();
    let (ok, _, _) = sshd.sftp_batch("ls\n");
    assert!(!ok, "sftp to a stopped sshd succeeded");
}
