//! Torrents whose export coincided with qBittorrent hanging: remembered so
//! later runs export them last (see `backup`).
