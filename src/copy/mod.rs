//! Copies of the store on a remote: upload what it lacks, check it, read it back, apply retention.
