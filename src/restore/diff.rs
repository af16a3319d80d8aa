//! A backup compared with a live instance, field by field (`qbackup diff`).
