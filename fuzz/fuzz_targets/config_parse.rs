//! `Config::parse` on arbitrary UTF-8 text, with no environment (so a config
//! without `[store] path` is refused before its instances are validated),
//! then the lookups the commands do on a config that parsed.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use qbackup::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/qbackup/config.toml");
    let Ok(config) = Config::parse(path, text, |_| None) else {
        return;
    };
    for i in &config.instances {
        let found = config
            .instance(&i.name)
            .expect("a configured instance is found");
        assert_eq!(found.name, i.name);
        assert!(i.url.ends_with('/'), "{:?}", i.url);
    }
    for t in &config.notify {
        for i in &config.instances {
            let _ = t.wants_instance(&i.name);
        }
    }
    let _ = format!("{config:?}");
});
