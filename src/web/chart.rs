//! Small inline SVG charts (no script, no outside resources).
