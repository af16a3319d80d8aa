//! A remote: object storage, SFTP or a directory, every object encrypted with age.
