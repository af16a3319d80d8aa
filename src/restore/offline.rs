//! The offline restore: a run's torrents and resume data written into a
//! stopped qBittorrent's profile (`restore --offline --profile DIR`).
