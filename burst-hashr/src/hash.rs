//! The String Hashr hash, bit for bit as the original worker computes it.
//!
//! `base64(sha256(input + hex(random_bytes(len(input))) + hour))`, where `len` counts UTF-16
//! code units (JavaScript's `String.length`), `hex` is lower case, `hour` is the decimal hour
//! of the day 0-23 without padding, the SHA-256 input is the UTF-8 encoding of the whole
//! string and base64 uses the standard alphabet with padding (always 44 characters).
//!
//! The hour is the server's **local** hour, as Node's `new Date().getHours()`: the time zone
//! comes from `TZ` or `/etc/localtime` (UTC in most containers). Set `TZ` on the worker to
//! pin it.

use base64::Engine;
use chrono::Timelike;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Length of every hash (without prefix): base64 of 32 bytes.
pub const HASH_LEN: usize = 44;

/// The hash of `input` salted with `salt_hex` (hex of random bytes) and `hour`.
///
/// ```
/// let h = burst_hashr::hash::hash_with("abc", "0a0b0c", 7);
/// assert_eq!(h.len(), burst_hashr::hash::HASH_LEN);
/// ```
pub fn hash_with(input: &str, salt_hex: &str, hour: u32) -> String {
    let mut hasher = Sha256::new();
    hasher.update(input.as_bytes());
    hasher.update(salt_hex.as_bytes());
    hasher.update(hour.to_string().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hasher.finalize())
}

/// `len(input)` random bytes as lower-case hex, with `len` in UTF-16 code units as
/// JavaScript counts them.
pub fn random_salt(input: &str, rng: &mut impl RngCore) -> String {
    let mut bytes = vec![0u8; input.encode_utf16().count()];
    rng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The message the worker publishes: `prefix` followed by the salted hash of `input`.
pub fn message(prefix: &str, input: &str, hour: u32, rng: &mut impl RngCore) -> String {
    let salt = random_salt(input, rng);
    let mut out = String::with_capacity(prefix.len() + HASH_LEN);
    out.push_str(prefix);
    out.push_str(&hash_with(input, &salt, hour));
    out
}

/// The server's local hour of the day (0-23), as `new Date().getHours()` in Node.
pub fn local_hour() -> u32 {
    chrono::Local::now().hour()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn matches_a_reference_digest() {
        // echo -n helloabcdef5 | sha256sum | xxd -r -p | base64
        assert_eq!(
            hash_with("hello", "abcdef", 5),
            "vYqRN2Tx3eCJc9L2luQjWLKSZYQJYaVjLw9braPx9iA="
        );
    }

    #[test]
    fn salt_length_counts_utf16_units() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(random_salt("abc", &mut rng).len(), 6);
        // "é" is one UTF-16 unit (two UTF-8 bytes); "😀" is two UTF-16 units.
        assert_eq!(random_salt("é", &mut rng).len(), 2);
        assert_eq!(random_salt("😀", &mut rng).len(), 4);
        assert_eq!(random_salt("", &mut rng), "");
    }

    #[test]
    fn message_has_prefix_and_44_char_base64() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let m = message("bursty-", "hi", 23, &mut rng);
        let hash = m.strip_prefix("bursty-").unwrap();
        assert_eq!(hash.len(), HASH_LEN);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(hash)
            .unwrap();
        assert_eq!(raw.len(), 32);
    }

    #[test]
    fn hour_is_a_valid_hour() {
        assert!(local_hour() < 24);
    }
}
