//! Base64url without padding (RFC 4648 §5), for tokens in HTTP headers.
//!
//! ```
//! use accordant_sync::token::SessionToken;
//! let t = SessionToken::new();
//! assert_eq!(t.to_text(), "AQAA"); // version 1, no replica, no key
//! ```

use super::TokenError;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The text length of `n` bytes.
pub(crate) fn encoded_len(n: usize) -> usize {
    n / 3 * 4 + [0, 2, 3][n % 3]
}

pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(encoded_len(bytes.len()));
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn value(c: u8) -> Result<u32, TokenError> {
    Ok(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return Err(TokenError::NotBase64),
    }))
}

/// Decodes; the caller bounds the length first.
pub(crate) fn decode(s: &str) -> Result<Vec<u8>, TokenError> {
    let s = s.as_bytes();
    if s.len() % 4 == 1 {
        return Err(TokenError::NotBase64);
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 2);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = chunk.len() - 1;
        // Canonical: the bits below the last byte must be zero.
        if keep < 3 && (n & (0xff_ffff >> (8 * keep))) != 0 {
            return Err(TokenError::NotBase64);
        }
        out.extend_from_slice(&bytes[..keep]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rfc4648_vectors_and_round_trips() {
        // RFC 4648 §10, without padding.
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), enc);
            assert_eq!(decode(enc).unwrap(), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)).unwrap(), all);
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
        assert!(decode("Zh").is_err(), "non-canonical trailing bits");
        assert!(decode("Z").is_err());
        assert!(decode("Zm9=").is_err());
    }
}
