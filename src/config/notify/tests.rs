use super::*;

fn parse(toml_text: &str) -> Result<Vec<Target>, String> {
    #[derive(Deserialize)]
    struct W {
        notify: Vec<RawTarget>,
    }
    let w: W = toml::from_str(toml_text).map_err(|e| e.to_string())?;
    let mut warnings = Vec::new();
    resolve(
        w.notify,
        &["box", "nas"],
        Path::new("/etc/qbackup"),
        &mut warnings,
    )
}

#[test]
fn defaults() {
    let t = &parse("[[notify]]\nname = \"ops\"\nformat = \"webhook\"\nurl = \"https://h/hook\"\n")
        .unwrap()[0];
    assert_eq!(t.on, OnSet::DEFAULT);
    assert_eq!(t.urls, ["https://h/hook"]);
    assert_eq!(t.repeat_after, Some(Duration::from_secs(24 * 3600)));
    assert_eq!(t.max_warnings, DEFAULT_MAX_WARNINGS);
    assert_eq!(t.delivery.retries, DEFAULT_RETRIES);
    assert!(t.wants_instance("anything"));
}

#[test]
fn healthchecks_urls_derive_from_the_ping_url() {
    let t = &parse(
        "[[notify]]\nname = \"hc\"\nformat = \"healthchecks\"\nurl = \"https://hc-ping.com/abc\"\n",
    )
    .unwrap()[0];
    let p = t.pings.as_ref().unwrap();
    assert_eq!(p.success, "https://hc-ping.com/abc");
    assert_eq!(p.fail, "https://hc-ping.com/abc/fail");
    assert_eq!(p.start.as_deref(), Some("https://hc-ping.com/abc/start"));
    assert_eq!(t.on, OnSet::ALL);
    assert!(!t.format.suppresses_repeats());
    let t = &parse(
        "[[notify]]\nname = \"k\"\nformat = \"healthchecks\"\nsuccess_url = \"http://k/push?status=up\"\nfail_url = \"http://k/push?status=down\"\npartial_ping = \"success\"\n",
    )
    .unwrap()[0];
    let p = t.pings.as_ref().unwrap();
    assert_eq!(p.start, None);
    assert!(p.partial_is_success);
}

#[test]
fn gotify_url_gets_message_path() {
    assert_eq!(
        gotify_message_url("https://g.lan/"),
        "https://g.lan/message"
    );
    assert_eq!(
        gotify_message_url("https://g.lan/message"),
        "https://g.lan/message"
    );
    assert_eq!(join_path("http://h/a?x=1", "start"), "http://h/a/start?x=1");
}

#[test]
fn invalid_targets_name_the_target_in_one_line() {
    let t = |rest: &str| format!("[[notify]]\nname = \"ops\"\n{rest}\n");
    let cases = [
        (
            t("format = \"email\"\nurl = \"http://h\""),
            "unknown format",
        ),
        (t("format = \"webhook\""), "needs a url"),
        (t("format = \"webhook\"\nurl = \"ftp://h\""), "http://"),
        (
            t("format = \"webhook\"\nurl = \"http://u:p@h\""),
            "user name",
        ),
        (
            t("format = \"webhook\"\nurl = \"http://h\"\nurls = [\"http://h\"]"),
            "not both",
        ),
        (
            t("format = \"webhook\"\nurl = \"http://h\"\non = [\"sometimes\"]"),
            "unknown outcome",
        ),
        (
            t("format = \"webhook\"\nurl = \"http://h\"\non = []"),
            "on is empty",
        ),
        (
            t("format = \"webhook\"\nurl = \"http://h\"\ninstances = [\"zzz\"]"),
            "\"zzz\"",
        ),
        (
            t("format = \"discord\"\nurl = \"http://h\"\nsecret_env = \"S\""),
            "takes no secret",
        ),
        (
            t("format = \"gotify\"\nurl = \"http://h\""),
            "application token",
        ),
        (
            t("format = \"webhook\"\nurl = \"http://h\"\nsecret_env = \"S\"\nsecret = \"x\""),
            "more than one",
        ),
        (
            t("format = \"ntfy\"\nurl = \"http://h/t\"\npriority = 9"),
            "1 to 5",
        ),
        (
            t("format = \"slack\"\nurl = \"http://h\"\npriority = 1"),
            "only for ntfy",
        ),
        (
            t("format = \"webhook\"\nurl = \"http://h\"\nrepeat_after_hours = -1"),
            "repeat_after_hours",
        ),
        (
            t("format = \"webhook\"\nurl = \"http://h\"\nretries = 99"),
            "retries",
        ),
        (
            t("format = \"webhook\"\nurl = \"http://h\"\ntimeout_secs = 0"),
            "timeout_secs",
        ),
        (t("format = \"healthchecks\""), "needs url"),
        (
            t("format = \"webhook\"\nurl = \"http://h\"\nfail_url = \"http://h\""),
            "only for format healthchecks",
        ),
        (
            t("format = \"healthchecks\"\nurl = \"http://h\"\npartial_ping = \"maybe\""),
            "partial_ping",
        ),
        (
            format!(
                "{}{}",
                t("format = \"webhook\"\nurl = \"http://h\""),
                t("format = \"slack\"\nurl = \"http://h\"")
            ),
            "twice",
        ),
    ];
    for (text, needle) in cases {
        let e = parse(&text).unwrap_err();
        assert!(e.contains(needle), "{text:?}: {e}");
        assert!(e.starts_with("notify \"ops\""), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn inline_secret_is_warned_and_hidden() {
    #[derive(Deserialize)]
    struct W {
        notify: Vec<RawTarget>,
    }
    let w: W = toml::from_str(
        "[[notify]]\nname = \"a\"\nformat = \"webhook\"\nurl = \"http://h\"\nsecret = \"s3cr3t-value\"\n",
    )
    .unwrap();
    let mut warnings = Vec::new();
    let t = resolve(w.notify, &[], Path::new("/"), &mut warnings).unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(!format!("{t:?}").contains("s3cr3t-value"));
}
