//! What the bridge presents to NATS: who it is (a `.creds` file, an NKey seed,
//! a user and password, or a token) and how it checks the server (TLS).
//!
//! Secrets come from files only, never from the command line (other users
//! see argv in `/proc/PID/cmdline`), and no log line or error carries one: a
//! file is named by its path, never quoted, and server URLs are shown with
//! any user info replaced by `***` ([`redact_url`]). A URL that carries a
//! user or password is refused ([`crate::connect::ConnectError::CredentialsInUrl`]).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use async_nats::ConnectOptions;

use crate::connect::ConnectError;
use crate::log;

/// How the bridge authenticates to the servers: one method, secrets in files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// No credentials (a server without authorization).
    #[default]
    None,
    /// A NATS credentials file: a user JWT and its NKey seed (operator mode,
    /// as `nsc generate creds` writes it).
    Creds(PathBuf),
    /// A file holding a user NKey seed (`SU…`), for a server whose config
    /// lists the user's public key.
    NKey(PathBuf),
    /// A user name (not a secret) and a file holding the password.
    UserPassword {
        /// The user.
        user: String,
        /// A file whose content (less a final newline) is the password.
        password_file: PathBuf,
    },
    /// A file whose content (less a final newline) is the token.
    Token(PathBuf),
}

/// How the bridge checks the servers (and proves itself to them with a
/// client certificate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// PEM file of the certificate authorities to trust instead of the
    /// system's.
    pub ca: Option<PathBuf>,
    /// Client certificate and its key (mutual TLS).
    pub client_cert: Option<ClientCert>,
    /// Refuse a connection without TLS. Implied by `ca` and `client_cert`:
    /// a CA or a client certificate on a plain connection would protect
    /// nothing, so the bridge never falls back to one.
    pub required: bool,
}

/// A client certificate and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate (chain), PEM.
    pub cert: PathBuf,
    /// Its private key, PEM (a secret: keep it mode 0600).
    pub key: PathBuf,
}

impl Tls {
    /// Whether every connection must be TLS.
    pub fn is_required(&self) -> bool {
        self.required || self.ca.is_some() || self.client_cert.is_some()
    }
}

impl Auth {
    /// Whether the server sees the secret itself (a password or a token), as
    /// opposed to a signature (NKey, JWT).
    fn sends_secret(&self) -> bool {
        matches!(self, Auth::UserPassword { .. } | Auth::Token(_))
    }
}

/// The secrets and checked TLS files, read once at start: a wrong path or a
/// malformed file fails then, with the file's name. `Debug` shows no secret.
#[derive(Clone)]
pub(crate) struct Loaded {
    secret: Secret,
    tls: Tls,
}

#[derive(Clone)]
enum Secret {
    None,
    Creds(PathBuf, String),
    NKey(String),
    UserPassword(String, String),
    Token(String),
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let method = match &self.secret {
            Secret::None => "none",
            Secret::Creds(..) => "creds",
            Secret::NKey(_) => "nkey",
            Secret::UserPassword(..) => "user and password",
            Secret::Token(_) => "token",
        };
        f.debug_struct("Loaded").field("auth", &method).field("tls", &self.tls).finish()
    }
}

/// Reads and checks every file `auth` and `tls` name.
pub(crate) fn load(auth: &Auth, tls: &Tls) -> Result<Loaded, ConnectError> {
    let secret = match auth {
        Auth::None => Secret::None,
        Auth::Creds(path) => {
            let text = read_secret("credentials file", path)?;
            // Parsed now for the error; parsed again for each connection.
            ConnectOptions::new().credentials(&text).map_err(|e| bad_file("credentials file", path, e.to_string()))?;
            Secret::Creds(path.clone(), text)
        }
        Auth::NKey(path) => {
            let seed = read_secret("NKey seed file", path)?.trim().to_string();
            if !seed.starts_with("SU") || nkeys::KeyPair::from_seed(&seed).is_err() {
                return Err(bad_file("NKey seed file", path, "does not hold a user NKey seed (SU…)".into()));
            }
            Secret::NKey(seed)
        }
        Auth::UserPassword { user, password_file } => {
            if user.is_empty() {
                return Err(ConnectError::Usage("the user name is empty".into()));
            }
            let password = one_line("password file", read_secret("password file", password_file)?, password_file)?;
            Secret::UserPassword(user.clone(), password)
        }
        Auth::Token(path) => Secret::Token(one_line("token file", read_secret("token file", path)?, path)?),
    };
    if let Some(ca) = &tls.ca {
        check_pem("CA file", ca, "CERTIFICATE")?;
    }
    if let Some(ClientCert { cert, key }) = &tls.client_cert {
        check_pem("client certificate", cert, "CERTIFICATE")?;
        read_secret("client key", key)?;
        check_pem("client key", key, "PRIVATE KEY")?;
    }
    Ok(Loaded { secret, tls: tls.clone() })
}

impl Loaded {
    /// `options` with the credentials and TLS settings applied.
    pub(crate) fn apply(&self, options: ConnectOptions) -> Result<ConnectOptions, ConnectError> {
        let mut options = match &self.secret {
            Secret::None => options,
            Secret::Creds(path, text) => {
                options.credentials(text).map_err(|e| bad_file("credentials file", path, e.to_string()))?
            }
            Secret::NKey(seed) => options.nkey(seed.clone()),
            Secret::UserPassword(user, password) => options.user_and_password(user.clone(), password.clone()),
            Secret::Token(token) => options.token(token.clone()),
        };
        if let Some(ca) = &self.tls.ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some(ClientCert { cert, key }) = &self.tls.client_cert {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options.require_tls(self.tls.is_required()))
    }
}

/// Says so when a password or token would cross the network in clear: TLS
/// not required and a server that is not on this host.
pub(crate) fn warn_if_cleartext(auth: &Auth, tls: &Tls, servers: &[async_nats::ServerAddr]) {
    if !auth.sends_secret() || tls.is_required() {
        return;
    }
    for server in servers {
        let local = matches!(server.host(), "localhost" | "127.0.0.1" | "::1" | "[::1]");
        if !server.tls_required() && !local {
            log!(
                "warning: the password or token goes to {}:{} in clear unless the server requires TLS; add \
                 --tls-required (or --tls-ca)",
                server.host(),
                server.port()
            );
        }
    }
}

/// A URL as it may be shown: the user info (`user:password@`, `token@`)
/// replaced by `***@`. Works on text that does not parse as a URL too.
pub fn redact_url(url: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..authority_start], &rest[at..]),
        None => url.to_string(),
    }
}

fn bad_file(what: &'static str, path: &Path, reason: String) -> ConnectError {
    ConnectError::File { what, path: path.to_path_buf(), reason }
}

/// A secret file's content, with a warning when other users may read it.
fn read_secret(what: &'static str, path: &Path) -> Result<String, ConnectError> {
    let meta = std::fs::metadata(path).map_err(|e| bad_file(what, path, e.to_string()))?;
    if !meta.is_file() {
        return Err(bad_file(what, path, "is not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        log!(
            "warning: {what} {} has mode {mode:04o}: other users may read it (chmod 600, or systemd's \
             LoadCredential=)",
            path.display()
        );
    }
    let bytes = std::fs::read(path).map_err(|e| bad_file(what, path, e.to_string()))?;
    String::from_utf8(bytes).map_err(|_| bad_file(what, path, "is not UTF-8 text".into()))
}

/// A password or token: the file's content less one final newline; one line,
/// not empty.
fn one_line(what: &'static str, text: String, path: &Path) -> Result<String, ConnectError> {
    let secret = text.strip_suffix('\n').map(|s| s.strip_suffix('\r').unwrap_or(s)).unwrap_or(&text);
    if secret.is_empty() {
        return Err(bad_file(what, path, "is empty".into()));
    }
    if secret.contains(['\n', '\r']) {
        return Err(bad_file(what, path, "holds more than one line".into()));
    }
    Ok(secret.to_string())
}

/// A PEM file that holds at least one `-----BEGIN …{label}-----` block.
fn check_pem(what: &'static str, path: &Path, label: &str) -> Result<(), ConnectError> {
    let bytes = std::fs::read(path).map_err(|e| bad_file(what, path, e.to_string()))?;
    let text = String::from_utf8_lossy(&bytes);
    let found = text.lines().any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{label}-----")));
    if found {
        Ok(())
    } else {
        Err(bad_file(what, path, format!("holds no PEM {label} block")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_user_info_only() {
        assert_eq!(redact_url("nats://alice:s3cret@10.0.0.1:4222"), "nats://***@10.0.0.1:4222");
        assert_eq!(redact_url("tls://tok@host"), "tls://***@host");
        assert_eq!(redact_url("alice:s3cret@host:4222"), "***@host:4222");
        assert_eq!(redact_url("nats://a:b@c@host:x/p@q"), "nats://***@host:x/p@q");
        assert_eq!(redact_url("nats://host:4222"), "nats://host:4222");
        assert_eq!(redact_url("nats://host/a@b"), "nats://host/a@b");
    }

    #[test]
    fn a_secret_is_one_line_less_its_final_newline() {
        let p = Path::new("f");
        assert_eq!(one_line("f", "pw\n".into(), p).unwrap(), "pw");
        assert_eq!(one_line("f", "pw\r\n".into(), p).unwrap(), "pw");
        assert_eq!(one_line("f", "p w ".into(), p).unwrap(), "p w ");
        assert!(one_line("f", "\n".into(), p).is_err());
        assert!(one_line("f", "a\nb\n".into(), p).is_err());
    }
}
