//! Encryption of a remote's objects with [age](https://age-encryption.org).
//!
//! Every object is an age file. The remote's `config` object is encrypted
//! to the user's key (a passphrase, through age's scrypt recipient, or the
//! recipients of an age identity file) and holds the remote's own keys:
//!
//! ```json
//! {"qbackup_remote":1,"id":"3f9c…","data_identity":"AGE-SECRET-KEY-1…","name_key":"<64 hex>"}
//! ```
//!
//! - `data_identity`: an X25519 age identity generated when the remote was
//!   created; every other object is encrypted to its recipient (cheap per
//!   object, unlike scrypt). `age -d -i` with it decrypts any object.
//! - `name_key`: 32 random bytes; an object is named by HMAC-SHA256 of its
//!   store-relative path under this key ([`Keys::name`]), so names reveal
//!   neither torrents nor content hashes.

use std::io::BufReader;

use age::secrecy::{ExposeSecret, SecretString};
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use crate::config::remote::Key;

/// log2 of the scrypt cost of a passphrase-sealed `config` object: 2^16
/// takes 64 MiB and about a quarter second to open. Prefer an identity
/// file for a weak passphrase.
pub const SCRYPT_WORK_FACTOR: u8 = 16;

/// The format of the `config` object this qbackup writes and reads.
pub const CONFIG_FORMAT: u32 = 1;

/// The keys of one remote, from its `config` object.
pub struct Keys {
    pub id: String,
    identity: age::x25519::Identity,
    recipient: age::x25519::Recipient,
    name_key: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({}, ***)", self.id)
    }
}

#[derive(Serialize, Deserialize)]
struct ConfigDoc {
    qbackup_remote: u32,
    id: String,
    data_identity: String,
    name_key: String,
}

/// Why a `config` object can't be opened.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The key does not decrypt it.
    WrongKey,
    /// It decrypts but is not a config object this qbackup can read.
    Damaged(String),
    /// Written by a newer qbackup.
    TooNew(u32),
    /// The identity file holds no usable identity.
    BadIdentity(String),
}

impl Keys {
    /// Fresh keys for a new remote.
    pub fn generate() -> Keys {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public();
        let mut name_key = [0u8; 32];
        let mut id = [0u8; 8];
        fill_random(&mut name_key);
        fill_random(&mut id);
        Keys {
            id: hex(&id),
            identity,
            recipient,
            name_key,
        }
    }

    /// The object name of a store-relative path: HMAC-SHA256 under the
    /// name key, hex.
    pub fn name(&self, rel: &str) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.name_key)
            .expect("HMAC takes a key of any length");
        mac.update(rel.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// Encrypts an object's bytes to the remote's data recipient.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        // Encrypting to a recipient into memory fails only on an I/O error
        // of the Vec, which can't happen.
        age::encrypt(&self.recipient, plain).unwrap_or_default()
    }

    /// Decrypts an object; `None` when it is not an age file of this remote
    /// or was changed.
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        age::decrypt(&self.identity, sealed).ok()
    }

    /// The `config` object: these keys, encrypted to the user's key.
    pub fn seal_config(&self, key: &Key) -> Result<Vec<u8>, OpenError> {
        let doc = ConfigDoc {
            qbackup_remote: CONFIG_FORMAT,
            id: self.id.clone(),
            data_identity: self.identity.to_string().expose_secret().to_string(),
            name_key: hex(&self.name_key),
        };
        let plain = serde_json::to_vec(&doc).unwrap_or_default();
        let out = match key {
            Key::Passphrase(p) => {
                let mut r = age::scrypt::Recipient::new(SecretString::from(p.expose().to_string()));
                // A fixed cost: age would calibrate to a second of this
                // machine, 2^18 and more (256 MiB+) on a fast one, which
                // every later copy on a small seedbox must then pay.
                r.set_work_factor(SCRYPT_WORK_FACTOR);
                age::encrypt(&r, &plain).map_err(|e| OpenError::BadIdentity(e.to_string()))?
            }
            Key::Identity(text) => {
                let file = identity_file(text.expose())?;
                let recipients = file
                    .to_recipients()
                    .map_err(|e| OpenError::BadIdentity(e.to_string()))?;
                let enc = age::Encryptor::with_recipients(
                    recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
                )
                .map_err(|e| OpenError::BadIdentity(e.to_string()))?;
                let mut out = Vec::new();
                let mut w = enc
                    .wrap_output(&mut out)
                    .map_err(|e| OpenError::BadIdentity(e.to_string()))?;
                std::io::Write::write_all(&mut w, &plain)
                    .and_then(|()| w.finish().map(|_| ()))
                    .map_err(|e| OpenError::BadIdentity(e.to_string()))?;
                out
            }
        };
        Ok(out)
    }

    /// Opens a `config` object with the user's key.
    pub fn open_config(sealed: &[u8], key: &Key) -> Result<Keys, OpenError> {
        let plain = match key {
            Key::Passphrase(p) => {
                let mut id = age::scrypt::Identity::new(SecretString::from(p.expose().to_string()));
                // age's default limit (2^20 work factor ≈ a second or two);
                // a config object asking for more is refused, not waited on.
                id.set_max_work_factor(20);
                age::decrypt(&id, sealed).map_err(decrypt_error)?
            }
            Key::Identity(text) => {
                let ids = identity_file(text.expose())?
                    .into_identities()
                    .map_err(|e| OpenError::BadIdentity(e.to_string()))?;
                let dec = age::Decryptor::new_buffered(sealed).map_err(decrypt_error)?;
                let mut r = dec
                    .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
                    .map_err(decrypt_error)?;
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut r, &mut out)
                    .map_err(|_| OpenError::Damaged("changed after it was written".into()))?;
                out
            }
        };
        let doc: ConfigDoc = serde_json::from_slice(&plain)
            .map_err(|e| OpenError::Damaged(format!("not a qbackup remote config ({e})")))?;
        if doc.qbackup_remote > CONFIG_FORMAT {
            return Err(OpenError::TooNew(doc.qbackup_remote));
        }
        let identity: age::x25519::Identity = doc
            .data_identity
            .parse()
            .map_err(|_| OpenError::Damaged("its data identity is malformed".into()))?;
        let name_key = unhex32(&doc.name_key)
            .ok_or_else(|| OpenError::Damaged("its name key is malformed".into()))?;
        Ok(Keys {
            id: doc.id,
            recipient: identity.to_public(),
            identity,
            name_key,
        })
    }
}

fn identity_file(text: &str) -> Result<age::IdentityFile<age::NoCallbacks>, OpenError> {
    age::IdentityFile::from_buffer(BufReader::new(text.as_bytes())).map_err(|_| {
        OpenError::BadIdentity("it is not an age identity file (age-keygen makes one)".into())
    })
}

fn decrypt_error(e: age::DecryptError) -> OpenError {
    match e {
        age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed => {
            OpenError::WrongKey
        }
        age::DecryptError::ExcessiveWork { .. } => {
            OpenError::Damaged("asks for more scrypt work than qbackup allows".into())
        }
        other => OpenError::Damaged(format!("not a readable age file: {other}")),
    }
}

/// Random bytes from the kernel.
pub fn fill_random(buf: &mut [u8]) {
    use std::io::Read;
    // /dev/urandom never fails on Linux once booted; a zero key would be
    // caught by nobody, so fail loudly instead.
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("reading /dev/urandom");
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn config_round_trips_and_a_wrong_passphrase_is_told() {
        let keys = Keys::generate();
        let key = Key::Passphrase(Secret::new("correct horse"));
        let sealed = keys.seal_config(&key).unwrap();
        let back = Keys::open_config(&sealed, &key).unwrap();
        assert_eq!(back.id, keys.id);
        assert_eq!(back.name("blobs/ab/x"), keys.name("blobs/ab/x"));
        let obj = keys.seal(b"payload");
        assert_eq!(back.open(&obj).as_deref(), Some(&b"payload"[..]));
        let wrong = Key::Passphrase(Secret::new("battery staple"));
        assert_eq!(
            Keys::open_config(&sealed, &wrong).unwrap_err(),
            OpenError::WrongKey
        );
    }

    #[test]
    fn identity_files_open_what_they_sealed() {
        let id = age::x25519::Identity::generate();
        let text = format!("# created: now\n{}\n", id.to_string().expose_secret());
        let key = Key::Identity(Secret::new(text));
        let keys = Keys::generate();
        let sealed = keys.seal_config(&key).unwrap();
        assert_eq!(Keys::open_config(&sealed, &key).unwrap().id, keys.id);
        let other = age::x25519::Identity::generate();
        let other = Key::Identity(Secret::new(other.to_string().expose_secret().to_string()));
        assert_eq!(
            Keys::open_config(&sealed, &other).unwrap_err(),
            OpenError::WrongKey
        );
        let junk = Key::Identity(Secret::new("not a key"));
        assert!(matches!(
            Keys::open_config(&sealed, &junk),
            Err(OpenError::BadIdentity(_))
        ));
    }

    #[test]
    fn names_depend_on_the_key_and_hide_the_path() {
        let (a, b) = (Keys::generate(), Keys::generate());
        let rel = "blobs/e7/e746aa.torrent";
        assert_ne!(a.name(rel), b.name(rel));
        assert_eq!(a.name(rel).len(), 64);
        assert!(!a.name(rel).contains("e746"));
        // A changed object does not open.
        let mut obj = a.seal(b"x");
        let n = obj.len();
        obj[n - 1] ^= 1;
        assert!(a.open(&obj).is_none());
        assert!(b.open(&a.seal(b"x")).is_none());
    }
}
