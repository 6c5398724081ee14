//! Who may do what. Alertmanager proves itself with the credentials its
//! `http_config` can send (a bearer token or basic auth), read from files
//! at start-up and compared in constant time; those may only post alerts.
//! People are the users of `[server] users_file` (bcrypt hashes, as in
//! Prometheus's web config), each with the roles that say what they may do.

use crate::config::AuthConfig;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
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
    #[error("[server] users_file {path}: {why}")]
    Users { path: PathBuf, why: String },
}

/// What a caller may do.
#[derive(
    Clone,
    Copy,
    Debug,
    Deserialize,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Post alerts: Alertmanager's credentials, or a user's.
    Post,
    /// Read runs, plans and the audit trail.
    Read,
    /// Approve or reject a plan, reload the config.
    Decide,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Post => "post",
            Role::Read => "read",
            Role::Decide => "decide",
        }
    }
}

/// Who sent a request, once their credentials are checked.
#[derive(Clone, Debug, PartialEq)]
pub enum Caller {
    /// Alertmanager's token or basic auth: alerts only.
    Alertmanager,
    User {
        name: String,
        roles: Vec<Role>,
    },
    /// `insecure_no_auth`: anyone, for anything.
    Anyone,
}

impl Caller {
    pub fn may(&self, role: Role) -> bool {
        match self {
            Caller::Alertmanager => role == Role::Post,
            Caller::User { roles, .. } => roles.contains(&role),
            Caller::Anyone => true,
        }
    }

    /// How the audit trail names the caller.
    pub fn describe(&self) -> String {
        match self {
            Caller::Alertmanager => "Alertmanager's credentials".into(),
            Caller::User { name, .. } => format!("user {name}"),
            Caller::Anyone => "no credentials (insecure_no_auth)".into(),
        }
    }
}

/// The accepted credentials, kept only as digests and bcrypt hashes.
pub struct Credentials {
    token: Option<[u8; 32]>,
    basic: Option<[u8; 32]>,
    open: bool,
    users: Users,
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
            users: Users::default(),
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
        let users = match &config.users_file {
            Some(path) => Users::load(path, config.basic.as_ref().map(|(name, _)| name.as_str()))?,
            None => Users::default(),
        };
        Ok(Credentials {
            token,
            basic,
            open: config.insecure_no_auth && token.is_none() && basic.is_none(),
            users,
        })
    }

    /// Who an `Authorization` header value proves the caller is; `None`
    /// when it proves nothing.
    pub fn identify(&self, authorization: Option<&[u8]>) -> Option<Caller> {
        if self.open {
            return Some(Caller::Anyone);
        }
        let value = std::str::from_utf8(authorization?).ok()?;
        // Exact credentials: HTTP parsers already strip the header's outer whitespace.
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return matches(self.token, rest.as_bytes()).then_some(Caller::Alertmanager);
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        if matches(self.basic, &decoded) {
            return Some(Caller::Alertmanager);
        }
        let (name, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        self.users.check(name, password)
    }

    /// The `WWW-Authenticate` challenge for a refused request.
    pub fn challenge(&self) -> &'static str {
        if self.token.is_none() && (self.basic.is_some() || !self.users.by_name.is_empty()) {
            "Basic realm=\"remedy\""
        } else {
            "Bearer realm=\"remedy\""
        }
    }
}

fn matches(expected: Option<[u8; 32]>, given: &[u8]) -> bool {
    expected.is_some_and(|expected| bool::from(expected.ct_eq(&digest(given))))
}

/// `[server] users_file`: Prometheus's `basic_auth_users` (name to bcrypt
/// hash) and each user's roles.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    basic_auth_users: BTreeMap<String, String>,
    #[serde(default)]
    roles: BTreeMap<String, Vec<Role>>,
}

struct User {
    hash: String,
    roles: Vec<Role>,
}

/// The users, and the credentials already proven: bcrypt is slow on
/// purpose, too slow to pay again on every request of a console.
#[derive(Default)]
struct Users {
    by_name: HashMap<String, User>,
    /// An unknown name is checked against this, so it takes as long as a known one.
    decoy: String,
    proven: Mutex<HashMap<[u8; 32], String>>,
}

/// Proven credentials kept at most; past it the memory starts again.
const MAX_PROVEN: usize = 1024;

impl Users {
    fn load(path: &Path, alertmanager_user: Option<&str>) -> Result<Users, AuthError> {
        let fail = |why: String| AuthError::Users {
            path: path.to_path_buf(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let file: UsersFile = toml::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let mut problems = Vec::new();
        for name in file.roles.keys() {
            if !file.basic_auth_users.contains_key(name) {
                problems.push(format!(
                    "[roles] names {name}, who is not in [basic_auth_users]"
                ));
            }
        }
        let mut by_name = HashMap::new();
        for (name, hash) in file.basic_auth_users {
            let roles = file.roles.get(&name).cloned().unwrap_or_default();
            if name.is_empty() || name.contains(':') {
                problems.push(format!(
                    "user {name:?}: a name must be non-empty and hold no `:`"
                ));
            } else if Some(name.as_str()) == alertmanager_user {
                problems.push(format!(
                    "user {name}: the name of [server] basic_auth, which is Alertmanager's"
                ));
            } else if hash.parse::<bcrypt::HashParts>().is_err() {
                problems.push(format!("user {name}: the password is not a bcrypt hash; make one with `remedy hash-password`"));
            } else if roles.is_empty() {
                problems.push(format!(
                    "user {name}: no roles; give them some of post, read, decide in [roles]"
                ));
            }
            by_name.insert(name, User { hash, roles });
        }
        if !problems.is_empty() {
            return Err(fail(problems.join("; ")));
        }
        let decoy = bcrypt::hash("remedy decoy", bcrypt::DEFAULT_COST - 2)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Users {
            by_name,
            decoy,
            proven: Mutex::default(),
        })
    }

    fn check(&self, name: &str, password: &str) -> Option<Caller> {
        let key = digest(format!("{name}:{password}").as_bytes());
        let known = self.proven.lock().unwrap().contains_key(&key);
        let user = self.by_name.get(name);
        if !known {
            let hash = user.map_or(self.decoy.as_str(), |u| u.hash.as_str());
            if !bcrypt::verify(password, hash).unwrap_or(false) || user.is_none() {
                return None;
            }
            let mut proven = self.proven.lock().unwrap();
            if proven.len() >= MAX_PROVEN {
                proven.clear();
            }
            proven.insert(key, name.to_string());
        }
        user.map(|u| Caller::User {
            name: name.to_string(),
            roles: u.roles.clone(),
        })
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
            ..Default::default()
        })
        .unwrap();
        assert!(credentials.identify(Some(b"Bearer s3cret")) == Some(Caller::Alertmanager));
        assert!(credentials.identify(Some(b"bearer s3cret")) == Some(Caller::Alertmanager));
        assert!(credentials.identify(Some(&basic("am:hunter2"))) == Some(Caller::Alertmanager));
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
                credentials.identify(Some(refused)).is_none(),
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
        assert!(credentials.identify(None).is_none());
    }

    #[test]
    fn a_bearer_token_is_not_a_basic_password() {
        let token = secret_file("am:hunter2");
        let credentials = Credentials::load(&AuthConfig {
            token_file: Some(token.path().into()),
            ..Default::default()
        })
        .unwrap();
        assert!(credentials.identify(Some(&basic("am:hunter2"))).is_none());
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
        assert_eq!(open.identify(None), Some(Caller::Anyone));
        let empty = secret_file("\n");
        let error = Credentials::load(&AuthConfig {
            token_file: Some(empty.path().into()),
            ..Default::default()
        })
        .err()
        .unwrap();
        assert!(error.to_string().contains("is empty"), "{error}");
    }

    /// A users file with alice (read, decide) and bob (read), hashed at the
    /// lowest cost so the test is quick.
    fn users(extra: &str) -> tempfile::NamedTempFile {
        let hash = |password| bcrypt::hash(password, 4).unwrap();
        secret_file(&format!(
            "[basic_auth_users]\nalice = \"{}\"\nbob = \"{}\"\n{extra}\n[roles]\nalice = [\"read\", \"decide\"]\nbob = [\"read\"]\n",
            hash("wonderland"),
            hash("builder")
        ))
    }

    fn with_users(file: &tempfile::NamedTempFile) -> Result<Credentials, AuthError> {
        let token = secret_file("s3cret");
        Credentials::load(&AuthConfig {
            token_file: Some(token.path().into()),
            users_file: Some(file.path().into()),
            ..Default::default()
        })
    }

    #[test]
    fn users_are_who_their_password_proves_with_their_roles_only() {
        let credentials = with_users(&users("")).unwrap();
        let alice = credentials
            .identify(Some(&basic("alice:wonderland")))
            .unwrap();
        assert_eq!(alice.describe(), "user alice");
        assert!(alice.may(Role::Read) && alice.may(Role::Decide) && !alice.may(Role::Post));
        let bob = credentials.identify(Some(&basic("bob:builder"))).unwrap();
        assert!(bob.may(Role::Read) && !bob.may(Role::Decide));
        // Proven once, the same credentials are known without bcrypt; wrong
        // ones never are.
        assert_eq!(credentials.identify(Some(&basic("bob:builder"))), Some(bob));
        for refused in [
            "alice:builder",
            "bob:wonderland",
            "alice:",
            "mallory:wonderland",
            "alice:wonderland ",
            "Alice:wonderland",
            "alice",
        ] {
            assert!(
                credentials.identify(Some(&basic(refused))).is_none(),
                "{refused}"
            );
        }
    }

    #[test]
    fn alertmanagers_credentials_may_only_post() {
        let credentials = with_users(&users("")).unwrap();
        let alertmanager = credentials.identify(Some(b"Bearer s3cret")).unwrap();
        assert!(alertmanager.may(Role::Post));
        assert!(!alertmanager.may(Role::Read) && !alertmanager.may(Role::Decide));
    }

    #[test]
    fn a_users_file_with_mistakes_is_refused_naming_each() {
        let broken = secret_file(
            "[basic_auth_users]\ncarol = \"plaintext\"\ndave = \"$2b$04$abcdefghijklmnopqrstuuK2Hkl5B0p2nVf6S5n0mQ3G1Cxq9r3q6\"\n\
             [roles]\ncarol = [\"read\"]\nerin = [\"read\"]\n",
        );
        let why = with_users(&broken).err().unwrap().to_string();
        for expected in [
            "carol: the password is not a bcrypt hash",
            "dave: no roles",
            "[roles] names erin",
        ] {
            assert!(why.contains(expected), "{why}");
        }
        let unknown_role = secret_file(
            "[basic_auth_users]\nfrank = \"$2b$04$abcdefghijklmnopqrstuuK2Hkl5B0p2nVf6S5n0mQ3G1Cxq9r3q6\"\n[roles]\nfrank = [\"admin\"]\n",
        );
        let why = with_users(&unknown_role).err().unwrap().to_string();
        assert!(why.contains("admin"), "{why}");
    }

    #[test]
    fn the_example_users_file_loads_and_its_passwords_are_what_it_says() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/users.toml");
        let token = secret_file("s3cret");
        let credentials = Credentials::load(&AuthConfig {
            token_file: Some(token.path().into()),
            users_file: Some(example),
            ..Default::default()
        })
        .unwrap();
        let oncall = credentials
            .identify(Some(&basic("oncall:change-me")))
            .unwrap();
        assert!(oncall.may(Role::Decide));
        let dashboard = credentials
            .identify(Some(&basic("dashboard:change-me")))
            .unwrap();
        assert!(dashboard.may(Role::Read) && !dashboard.may(Role::Decide));
    }
}
