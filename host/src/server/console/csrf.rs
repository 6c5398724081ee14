//! The console's forms carry a token only remedy can make: an HMAC of the
//! user's name under a key drawn when `remedy serve` starts. A page on
//! another site can make the browser send the user's basic auth, but not
//! this token, so it cannot approve anything in their name.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Read;
use subtle::ConstantTimeEq;

pub struct CsrfKey([u8; 32]);

impl CsrfKey {
    /// A fresh key from the kernel's random source.
    pub fn new() -> std::io::Result<CsrfKey> {
        let mut key = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        Ok(CsrfKey(key))
    }

    fn mac(&self, user: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(b"remedy console csrf\0");
        mac.update(user.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The token `user`'s forms carry.
    pub fn token(&self, user: &str) -> String {
        hex::encode(self.mac(user))
    }

    /// Whether `given` is `user`'s token.
    pub fn holds(&self, user: &str, given: &str) -> bool {
        let expected = self.token(user);
        given.len() == expected.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_the_users_and_this_processs_only() {
        let key = CsrfKey::new().unwrap();
        let alice = key.token("alice");
        assert!(key.holds("alice", &alice));
        assert!(!key.holds("bob", &alice), "another user's token");
        assert!(!key.holds("alice", &alice[..63]));
        assert!(!key.holds("alice", ""));
        assert!(!key.holds("alice", &alice.to_uppercase()));
        let restarted = CsrfKey::new().unwrap();
        assert!(
            !restarted.holds("alice", &alice),
            "a token of another start"
        );
    }
}
