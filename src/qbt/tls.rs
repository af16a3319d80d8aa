//! TLS set-up and diagnosis: reading `ca_file`, and saying what to do when
//! qBittorrent's certificate is refused.
//!
//! `ca_file` is read here (PEM decoded without help, so that a file with no
//! certificate in it is a configuration error at start-up, not an
//! "UnknownIssuer" later). When a handshake is refused over a certificate,
//! [`explain`] connects once more *without* verification, only to fetch the
//! server's certificate (an unauthenticated `app/webapiVersion`: no password,
//! key or cookie is sent), and tells apart, from the certificate's own bytes:
//! a self-signed CA certificate used as its own server certificate (what
//! `openssl req -x509` makes by default, which TLS libraries refuse as a
//! server certificate even when it is the `ca_file`), and a certificate not
//! signed by a trusted CA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;

use super::QbtError;

/// A `ca_file` bigger than this is not a CA bundle.
const MAX_CA_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The certificates of `ca_file`, as DER.
#[derive(Debug, Clone)]
pub(super) struct CaFile {
    pub(super) path: PathBuf,
    pub(super) certs: Vec<Vec<u8>>,
}

/// Reads `ca_file`: every `CERTIFICATE` PEM block in it. A file without one
/// (garbage, only a private key) is refused.
pub(super) fn read_ca_file(path: &Path) -> Result<CaFile, QbtError> {
    let setup = |m: String| QbtError::Setup(format!("ca_file {}: {m}", path.display()));
    let len = std::fs::metadata(path)
        .map_err(|e| setup(format!("cannot read it: {e}")))?
        .len();
    if len > MAX_CA_FILE_BYTES {
        return Err(setup(format!(
            "is {len} bytes, too big for a CA certificate; point ca_file at the PEM file of the CA that signed qBittorrent's certificate"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| setup(format!("cannot read it: {e}")))?;
    let text = String::from_utf8_lossy(&bytes);
    let certs = pem_certificates(&text).map_err(|n| {
        setup(format!(
            "certificate {n} is damaged (its PEM block is not valid base64 DER); copy the CA certificate again"
        ))
    })?;
    if certs.is_empty() {
        let key = text.contains("PRIVATE KEY-----");
        return Err(setup(format!(
            "holds no PEM certificate (no -----BEGIN CERTIFICATE----- block{}); point ca_file at the PEM certificate of the CA that signed qBittorrent's certificate",
            if key {
                ", only a private key, which must never be given here"
            } else {
                ""
            }
        )));
    }
    Ok(CaFile {
        path: path.to_path_buf(),
        certs,
    })
}

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// The DER of every `CERTIFICATE` block; Err(n) if block n (from 1) is bad.
fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>, usize> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let n = out.len() + 1;
        let end = body.find(END).ok_or(n)?;
        let der = base64_decode(&body[..end]).ok_or(n)?;
        if der_element(&der).is_none_or(|(tag, _, after)| tag != 0x30 || !after.is_empty()) {
            return Err(n);
        }
        out.push(der);
        rest = &body[end + END.len()..];
    }
    Ok(out)
}

/// Standard base64, whitespace ignored, `=` padding optional.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut padding = false;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding = true;
                continue;
            }
            c if c.is_ascii_whitespace() => continue,
            _ => return None,
        };
        if padding {
            return None;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// One DER element: (tag, contents, what follows). Single-byte tags and
/// definite lengths only, which is all X.509 needs at the levels read here.
fn der_element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &d| (acc << 8) | usize::from(d));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// What the server's certificate says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CertFacts {
    /// basicConstraints CA:TRUE.
    pub(super) is_ca: bool,
    /// Issuer equals subject.
    pub(super) self_issued: bool,
}

/// Reads a DER certificate's basicConstraints, issuer and subject.
pub(super) fn cert_facts(der: &[u8]) -> Option<CertFacts> {
    let (0x30, cert, _) = der_element(der)? else {
        return None;
    };
    let (0x30, tbs, _) = der_element(cert)? else {
        return None;
    };
    let mut fields = Vec::new();
    let mut rest = tbs;
    while !rest.is_empty() {
        let (tag, body, after) = der_element(rest)?;
        fields.push((tag, body));
        rest = after;
    }
    // [0] version is optional; then serial, signature, issuer, validity, subject.
    let skip = usize::from(fields.first()?.0 == 0xa0);
    let issuer = fields.get(skip + 2)?;
    let subject = fields.get(skip + 4)?;
    let mut is_ca = false;
    if let Some((_, exts)) = fields.iter().find(|(tag, _)| *tag == 0xa3) {
        let (0x30, mut list, _) = der_element(exts)? else {
            return None;
        };
        while !list.is_empty() {
            let (_, ext, after) = der_element(list)?;
            list = after;
            let (0x06, oid, parts) = der_element(ext)? else {
                return None;
            };
            if oid != [0x55, 0x1d, 0x13] {
                continue; // not basicConstraints (2.5.29.19)
            }
            let (mut tag, mut value, after) = der_element(parts)?;
            if tag == 0x01 {
                // The critical flag; the value follows.
                (tag, value, _) = der_element(after)?;
            }
            if tag != 0x04 {
                return None;
            }
            let (0x30, bc, _) = der_element(value)? else {
                return None;
            };
            is_ca = matches!(der_element(bc), Some((0x01, [v], _)) if *v != 0);
        }
    }
    Some(CertFacts {
        is_ca,
        self_issued: issuer == subject,
    })
}

/// Whether a failed request's causes include a TLS handshake that was
/// refused: tokio-rustls reports those as an `io::Error` of kind
/// `InvalidData` (a refused certificate among them), which hyper-rustls
/// wraps in another `io::Error`, whose `source()` skips it: so the walk
/// also looks inside every `io::Error`.
pub(super) fn is_handshake_refusal(e: &reqwest::Error) -> bool {
    fn walk(mut cur: Option<&(dyn std::error::Error + 'static)>, depth: usize) -> bool {
        while let Some(err) = cur {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::InvalidData {
                    return true;
                }
                let inner = io
                    .get_ref()
                    .map(|e| e as &(dyn std::error::Error + 'static));
                if depth < 8 && walk(inner, depth + 1) {
                    return true;
                }
            }
            cur = err.source();
        }
        false
    }
    walk(Some(e), 0)
}

/// Why the server's certificate was refused and what to do, or None when
/// the server can't be reached even without verification (then it was not
/// the certificate).
pub(super) async fn explain(base: &Url, ca: Option<&CaFile>, timeout: Duration) -> Option<String> {
    let mut url = base.clone();
    url.set_path(&format!("{}api/v2/app/webapiVersion", base.path()));
    let client = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .tls_info(true)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("qbackup/", env!("CARGO_PKG_VERSION")))
        .build()
        .ok()?;
    let resp = client.get(url).send().await.ok()?;
    let der = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()?
        .peer_certificate()?
        .to_vec();
    drop(resp);
    let host = base.host_str().unwrap_or("the server");
    Some(advice(&der, host, ca))
}

/// The advice for a refused certificate `der` of `host`.
pub(super) fn advice(der: &[u8], host: &str, ca: Option<&CaFile>) -> String {
    let facts = cert_facts(der);
    let in_ca_file = ca.is_some_and(|c| c.certs.iter().any(|x| x == der));
    if facts.is_some_and(|f| f.is_ca && f.self_issued) {
        return format!(
            "qBittorrent's TLS certificate{} is a self-signed CA certificate (CA:TRUE, what `openssl req -x509` makes by default), which TLS libraries refuse as a server certificate even when it is the ca_file; make it again with `-addext basicConstraints=critical,CA:FALSE` added to `openssl req -x509 ...` and set ca_file to the new certificate, or give qBittorrent a server certificate signed by a separate CA and set ca_file to that CA",
            if in_ca_file {
                " (the one in ca_file)"
            } else {
                ""
            }
        );
    }
    match ca {
        Some(c) if in_ca_file => format!(
            "qBittorrent's TLS certificate is the one in ca_file {} and was still refused: check that its subjectAltName names {host} and that it has not expired",
            c.path.display()
        ),
        Some(c) => format!(
            "qBittorrent's TLS certificate was refused: it is not signed by a CA in ca_file {}, does not name {host} in its subjectAltName, or has expired; set ca_file to the CA that signed the server's certificate",
            c.path.display()
        ),
        None => format!(
            "qBittorrent's TLS certificate is not signed by a CA this system trusts (or does not name {host}, or has expired); set ca_file to the CA that signed the server's certificate"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_table() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVs\nbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("AAEC/w==").unwrap(), [0, 1, 2, 255]);
        assert!(base64_decode("aGVs*bG8").is_none());
        assert!(base64_decode("aG=Vs").is_none());
        assert!(base64_decode("").is_none());
    }

    #[test]
    fn pem_blocks_are_found_and_checked() {
        let pem = format!("junk\n{BEGIN}\nMAMCAQE=\n{END}\nmore\n{BEGIN}\nMAA=\n{END}\n");
        assert_eq!(
            pem_certificates(&pem),
            Ok(vec![vec![0x30, 3, 2, 1, 1], vec![0x30, 0]])
        );
        assert_eq!(pem_certificates("no certificate here"), Ok(vec![]));
        let key = "-----BEGIN PRIVATE KEY-----\nMAMCAQE=\n-----END PRIVATE KEY-----\n";
        assert_eq!(pem_certificates(key), Ok(vec![]));
        assert_eq!(pem_certificates(&format!("{BEGIN}\n!!\n{END}")), Err(1));
        assert_eq!(pem_certificates(&format!("{BEGIN}\nMAMCAQE=\n")), Err(1));
        // Base64 fine, but not one DER SEQUENCE.
        assert_eq!(
            pem_certificates(&format!("{BEGIN}\naGVsbG8=\n{END}")),
            Err(1)
        );
    }

    #[test]
    fn ca_file_without_a_certificate_is_a_setup_error() {
        let d = tempfile::tempdir().unwrap();
        for (name, text, needle) in [
            (
                "garbage.pem",
                "hello, not a certificate\n",
                "holds no PEM certificate",
            ),
            (
                "key.pem",
                "-----BEGIN PRIVATE KEY-----\nMAMCAQE=\n-----END PRIVATE KEY-----\n",
                "only a private key",
            ),
            ("empty.pem", "", "holds no PEM certificate"),
        ] {
            let p = d.path().join(name);
            std::fs::write(&p, text).unwrap();
            let e = read_ca_file(&p).unwrap_err();
            assert!(matches!(e, QbtError::Setup(_)), "{e:?}");
            let m = e.to_string();
            assert!(m.contains(needle) && m.contains(name), "{m}");
            assert!(!m.contains("MAMCAQE"), "{m}");
        }
        let e = read_ca_file(&d.path().join("missing.pem")).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    /// A minimal DER certificate: version, serial, algorithm, issuer,
    /// validity, subject, key, and optionally basicConstraints.
    fn cert(issuer: &[u8], subject: &[u8], ca: Option<bool>, critical: bool) -> Vec<u8> {
        fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut v = vec![tag];
            if body.len() < 0x80 {
                v.push(body.len() as u8);
            } else {
                v.extend([0x82, (body.len() >> 8) as u8, body.len() as u8]);
            }
            v.extend_from_slice(body);
            v
        }
        let mut tbs = tlv(0xa0, &tlv(0x02, &[2]));
        tbs.extend(tlv(0x02, &[7]));
        tbs.extend(tlv(0x30, &tlv(0x06, &[1, 2, 3])));
        tbs.extend(tlv(0x30, issuer));
        tbs.extend(tlv(0x30, &[]));
        tbs.extend(tlv(0x30, subject));
        tbs.extend(tlv(0x30, &[0; 200]));
        if let Some(ca) = ca {
            let bc = if ca { tlv(0x01, &[0xff]) } else { vec![] };
            let mut ext = tlv(0x06, &[0x55, 0x1d, 0x13]);
            if critical {
                ext.extend(tlv(0x01, &[0xff]));
            }
            ext.extend(tlv(0x04, &tlv(0x30, &bc)));
            let mut other = tlv(0x06, &[0x55, 0x1d, 0x11]);
            other.extend(tlv(0x04, &[1, 2]));
            let mut exts = tlv(0x30, &other);
            exts.extend(tlv(0x30, &ext));
            tbs.extend(tlv(0xa3, &tlv(0x30, &exts)));
        }
        let mut c = tlv(0x30, &tbs);
        c.extend(tlv(0x30, &tlv(0x06, &[1, 2, 3])));
        c.extend(tlv(0x03, &[0, 1]));
        tlv(0x30, &c)
    }

    #[test]
    fn certificate_facts() {
        let facts = |issuer: &[u8], ca, critical| {
            cert_facts(&cert(issuer, b"me", ca, critical)).expect("parses")
        };
        let cases = [
            (&b"me"[..], Some(true), true, true, true),
            (b"me", Some(true), false, true, true),
            (b"me", Some(false), true, false, true),
            (b"me", None, false, false, true),
            (b"my CA", Some(false), true, false, false),
            (b"my CA", Some(true), true, true, false),
        ];
        for (issuer, ca, critical, is_ca, self_issued) in cases {
            assert_eq!(
                facts(issuer, ca, critical),
                CertFacts { is_ca, self_issued },
                "{ca:?} {critical}"
            );
        }
        assert_eq!(cert_facts(b""), None);
        assert_eq!(cert_facts(&[0x30, 0x05, 0x30]), None);
    }

    #[test]
    fn advice_says_what_to_do() {
        let self_ca = cert(b"me", b"me", Some(true), true);
        let leaf = cert(b"my CA", b"me", Some(false), true);
        let ca = CaFile {
            path: "/etc/qbackup/ca.pem".into(),
            certs: vec![self_ca.clone()],
        };
        let m = advice(&self_ca, "127.0.0.1", Some(&ca));
        assert!(
            m.contains("CA:TRUE") && m.contains("CA:FALSE") && m.contains("the one in ca_file"),
            "{m}"
        );
        let m = advice(&self_ca, "127.0.0.1", None);
        assert!(
            m.contains("CA:TRUE") && !m.contains("the one in ca_file"),
            "{m}"
        );
        let m = advice(&leaf, "127.0.0.1", None);
        assert!(
            m.contains("set ca_file to the CA that signed the server's certificate"),
            "{m}"
        );
        let m = advice(&leaf, "127.0.0.1", Some(&ca));
        assert!(
            m.contains("/etc/qbackup/ca.pem") && m.contains("set ca_file"),
            "{m}"
        );
        let ca = CaFile {
            certs: vec![leaf.clone()],
            ..ca
        };
        let m = advice(&leaf, "127.0.0.1", Some(&ca));
        assert!(m.contains("subjectAltName names 127.0.0.1"), "{m}");
    }
}
