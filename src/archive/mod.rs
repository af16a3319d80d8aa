//! Portable one-file archives of a run (`qbackup archive export|import`) and `store move`.
