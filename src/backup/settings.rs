//! Settings shared by many torrents, stored once each: a run keeps a
//! number per torrent (see `entries.rs`), not a [`Settings`] of its own.

use std::collections::HashMap;

use crate::state::Settings;

/// Settings as an interning key: equal when every field is, the ratio
/// compared by its bits.
#[derive(Debug, Clone)]
struct SettingsKey(Settings);

impl PartialEq for SettingsKey {
    fn eq(&self, o: &Self) -> bool {
        let (a, b) = (&self.0, &o.0);
        a.ratio_limit.to_bits() == b.ratio_limit.to_bits()
            && Settings {
                ratio_limit: 0.0,
                ..a.clone()
            } == Settings {
                ratio_limit: 0.0,
                ..b.clone()
            }
    }
}

impl Eq for SettingsKey {}

impl std::hash::Hash for SettingsKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let s = &self.0;
        s.download_path.hash(h);
        s.ratio_limit.to_bits().hash(h);
        s.seeding_time_limit.hash(h);
        s.inactive_seeding_time_limit.hash(h);
        s.share_limit_action.hash(h);
        s.up_limit.hash(h);
        s.dl_limit.hash(h);
        (s.seq_dl, s.f_l_piece_prio, s.super_seeding, s.force_start).hash(h);
        s.comment.hash(h);
        s.queue_position.hash(h);
    }
}

/// Settings stored once each; number 0 is the default.
#[derive(Debug)]
pub(super) struct SettingsSet {
    numbers: HashMap<SettingsKey, u32>,
    list: Vec<Settings>,
}

impl SettingsSet {
    pub(super) fn new() -> SettingsSet {
        let mut s = SettingsSet {
            numbers: HashMap::new(),
            list: Vec::new(),
        };
        s.intern(Settings::default());
        s
    }

    /// `settings`' number; its queue position and comment are not kept
    /// (see [`Entry`]).
    pub(super) fn intern(&mut self, settings: Settings) -> u32 {
        let key = SettingsKey(Settings {
            queue_position: 0,
            comment: None,
            ..settings
        });
        if let Some(&n) = self.numbers.get(&key) {
            return n;
        }
        let n = self.list.len() as u32;
        self.list.push(key.0.clone());
        self.numbers.insert(key, n);
        n
    }

    pub(super) fn get(&self, n: u32, queue_position: i64, comment: Option<String>) -> Settings {
        Settings {
            queue_position,
            comment,
            ..self.list.get(n as usize).cloned().unwrap_or_default()
        }
    }
}

#[cfg(test)]
impl SettingsSet {
    /// How many distinct settings are stored.
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }
}
