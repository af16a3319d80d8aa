//! The status page, rendered on the server.

use super::AppState;

pub(super) fn render(_app: &AppState) -> String {
    "<!doctype html><title>qbackup</title>".to_string()
}
