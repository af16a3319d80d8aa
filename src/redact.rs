//! Keeping secrets out of anything a person or a webhook sees.

/// Replaces the query string and user info of any URL inside `s`: tracker
/// URLs carry passkeys there (`announce?passkey=…`, `/announce/KEY` is left,
/// but qbackup never prints tracker URLs in the first place).
pub fn urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, word) in s.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if word.contains("://") || word.starts_with("magnet:") {
            let cut = word.find('?').unwrap_or(word.len());
            out.push_str(&word[..cut]);
            if cut < word.len() {
                out.push_str("?…");
            }
        } else {
            out.push_str(word);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_strings_are_dropped() {
        assert_eq!(
            super::urls("tracker http://t/announce?passkey=SECRET failed"),
            "tracker http://t/announce?… failed"
        );
        assert_eq!(super::urls("magnet:?xt=urn:btih:aa&tr=x"), "magnet:?…");
        assert_eq!(super::urls("plain words"), "plain words");
    }
}

/// A magnet link with only its hash and name: tracker parameters (`tr=`)
/// can carry passkeys.
pub fn magnet(uri: &str) -> String {
    let Some(query) = uri.strip_prefix("magnet:?") else {
        return String::new();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| p.starts_with("xt=") || p.starts_with("dn="))
        .collect();
    format!("magnet:?{}", kept.join("&"))
}

#[cfg(test)]
mod magnet_tests {
    #[test]
    fn trackers_are_dropped() {
        assert_eq!(
            super::magnet("magnet:?xt=urn:btih:ab&dn=x&tr=http%3A%2F%2Ft%2F%3Fpasskey%3DS"),
            "magnet:?xt=urn:btih:ab&dn=x"
        );
        assert_eq!(super::magnet(""), "");
    }
}

/// A tracker URL with only its scheme, host and port: the path, query and
/// user info can carry passkeys (`/announce?passkey=…`, `/KEY/announce`).
/// Anything that is not `scheme://host…` becomes `…`.
pub fn tracker(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "…".into();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let tail = if end < rest.len() { "/…" } else { "" };
    format!("{scheme}://{host}{tail}")
}

#[cfg(test)]
mod tracker_tests {
    #[test]
    fn only_scheme_host_and_port_are_kept() {
        let cases = [
            (
                "https://t.example/announce?passkey=S",
                "https://t.example/…",
            ),
            (
                "http://t.example:8080/S3CRET/announce",
                "http://t.example:8080/…",
            ),
            ("udp://u:p@t.example:80", "udp://t.example:80"),
            ("http://t.example?passkey=S", "http://t.example/…"),
            ("not a url with passkey=S", "…"),
        ];
        for (url, want) in cases {
            assert_eq!(super::tracker(url), want, "{url}");
        }
    }
}
