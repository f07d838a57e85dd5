//! The HMAC-SHA256 signature the `http` handler puts on each request so the
//! application can check the request came from Drover.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the signature: `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub(crate) const SIGNATURE_HEADER: &str = "x-drover-signature";

/// The header value for `body` signed with `secret`.
pub(crate) fn sign(secret: &[u8], body: &[u8]) -> String {
    #[allow(clippy::expect_used)] // HMAC accepts keys of any length
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
