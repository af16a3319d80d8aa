//! Calls that change a torrent after it was added: renames, file
//! priorities, trackers, limits, flags, comment, queue position, start.
//! Each is one form POST; what the target's version takes is decided by the
//! caller (the restore plan), not here.

use super::Client;

impl Client {}
