//! Who may post alerts and read runs: the credentials Alertmanager's
//! `http_config` can send (a bearer token or basic auth), read from files at
//! start-up and compared in constant time.

use crate::config::AuthConfig;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "[server] has no credentials: set token_file or basic_auth so only Alertmanager can post alerts \
         (or insecure_no_auth = true, for a test on loopback)"
    )]
    Missing,
    #[error("[server] {key}: cannot read {path}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("[server] {key}: {path} is empty")]
    Empty { key: &'static str, path: PathBuf },
}

/// The accepted credentials, kept only as digests.
pub struct Credentials {
    token: Option<[u8; 32]>,
    basic: Option<[u8; 32]>,
    open: bool,
}

fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

fn read_secret(key: &'static str, path: &Path) -> Result<String, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })?;
    // Files written with `echo` end in a newline that is not part of the secret.
    let secret = text.trim_end_matches(['\n', '\r']).to_string();
    if secret.is_empty() {
        return Err(AuthError::Empty {
            key,
            path: path.to_path_buf(),
        });
    }
    Ok(secret)
}

impl Credentials {
    /// Credentials no caller has: for `remedy agent`, whose endpoints
    /// (health and metrics) ask for none.
    pub fn nobody() -> Credentials {
        Credentials {
            token: None,
            basic: None,
            open: false,
        }
    }

    pub fn load(config: &AuthConfig) -> Result<Credentials, AuthError> {
        let token = match &config.token_file {
            Some(path) => Some(digest(read_secret("token_file", path)?.as_bytes())),
            None => None,
        };
        let basic = match &config.basic {
            Some((user, path)) => {
                let password = read_secret("basic_auth.password_file", path)?;
                Some(digest(format!("{user}:{password}").as_bytes()))
            }
            None => None,
        };
        if token.is_none() && basic.is_none() && !config.insecure_no_auth {
            return Err(AuthError::Missing);
        }
        Ok(Credentials {
            token,
            basic,
            open: token.is_none() && basic.is_none(),
        })
    }

    /// Whether an `Authorization` header value is accepted.
    pub fn allows(&self, authorization: Option<&[u8]>) -> bool {
        if self.open {
            return true;
        }
        let Some(value) = authorization.and_then(|v| std::str::from_utf8(v).ok()) else {
            return false;
        };
        // Exact credentials: HTTP parsers already strip the header's outer whitespace.
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let (expected, given) = if scheme.eq_ignore_ascii_case("bearer") {
            (self.token, digest(rest.as_bytes()))
        } else if scheme.eq_ignore_ascii_case("basic") {
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else {
                return false;
            };
            (self.basic, digest(&decoded))
        } else {
            return false;
        };
        expected.is_some_and(|expected| bool::from(expected.ct_eq(&given)))
    }

    /// The `WWW-Authenticate` challenge for a refused request.
    pub fn challenge(&self) -> &'static str {
        if self.token.is_none() && self.basic.is_some() {
            "Basic realm=\"remedy\""
        } else {
            "Bearer realm=\"remedy\""
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn secret_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    fn basic(user_password: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
        .into_bytes()
    }

    #[test]
    fn a_token_and_basic_auth_are_checked_exactly() {
        let token = secret_file("s3cret\n");
        let password = secret_file("hunter2");
        let credentials = Credentials::load(&AuthConfig {
            token_file: Some(token.path().into()),
            basic: Some(("am".into(), password.path().into())),
            insecure_no_auth: false,
        })
        .unwrap();
        assert!(credentials.allows(Some(b"Bearer s3cret")));
        assert!(credentials.allows(Some(b"bearer s3cret")));
        assert!(credentials.allows(Some(&basic("am:hunter2"))));
        for refused in [
            &b"Bearer s3cret\n"[..],
            b"Bearer s3cre",
            b"Bearer s3cretx",
            b"Bearer ",
            b"s3cret",
            b"Token s3cret",
            &basic("am:hunter")[..],
            &basic("AM:hunter2")[..],
            &basic("am:s3cret")[..],
            b"Basic !!!notbase64",
            b"Bearer \xff\xfe",
        ] {
            assert!(
                !credentials.allows(Some(refused)),
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
        assert!(!credentials.allows(None));
    }

    #[test]
    fn a_bearer_token_is_not_a_basic_password() {
        let token = secret_file("am:hunter2");
        let credentials = Credentials::load(&AuthConfig {
            token_file: Some(token.path().into()),
            ..Default::default()
        })
        .unwrap();
        assert!(!credentials.allows(Some(&basic("am:hunter2"))));
    }

    #[test]
    fn no_credentials_is_refused_unless_asked_for() {
        assert!(matches!(
            Credentials::load(&AuthConfig::default()),
            Err(AuthError::Missing)
        ));
        let open = Credentials::load(&AuthConfig {
            insecure_no_auth: true,
            ..Default::default()
        })
        .unwrap();
        assert!(open.allows(None));
        let empty = secret_file("\n");
        let error = Credentials::load(&AuthConfig {
            token_file: Some(empty.path().into()),
            ..Default::default()
        })
        .err()
        .unwrap();
        assert!(error.to_string().contains("is empty"), "{error}");
    }
}
