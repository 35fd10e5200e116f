//! Connecting to NATS and opening the buckets, retrying with back-off until
//! the servers answer (saying so on stderr meanwhile). Credentials and TLS
//! are in `credentials`; what the server refuses (credentials, TLS, a bad
//! URL) ends `connect` with an error instead of a retry.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store, stream::StorageType};
use async_nats::{ConnectErrorKind, Event, ServerAddr, ServerError};

pub use crate::credentials::{redact_url, Auth, ClientCert, Tls};
use crate::{credentials, log};

/// Where the bridge meets the fleet.
#[derive(Debug, Clone)]
pub struct Config {
    /// Server URLs (`nats://host:port`); the client fails over between them.
    pub servers: Vec<String>,
    /// Key-value bucket: one key per object.
    pub bucket: String,
    /// Replicas of the buckets when the bridge creates them (3 in a cluster).
    pub replicas: usize,
    /// This host's name, written into every exported envelope.
    pub host: String,
    /// Credentials (default: none). Secrets are read from files.
    pub auth: Auth,
    /// TLS (default: whatever the server asks for, checked against the
    /// system's certificate authorities).
    pub tls: Tls,
}

impl Config {
    /// One server, bucket `shmstate`, one replica, this machine's host name,
    /// no credentials, TLS if the server asks for it.
    pub fn new(server: impl Into<String>) -> Self {
        Config {
            servers: vec![server.into()],
            bucket: "shmstate".into(),
            replicas: 1,
            host: host_name(),
            auth: Auth::None,
            tls: Tls::default(),
        }
    }

    /// The object-store bucket for snapshots above the server's max payload.
    pub fn object_bucket(&self) -> String {
        format!("{}-large", self.bucket)
    }
}

/// A connection and the two buckets.
#[derive(Clone)]
pub struct Nats {
    /// The client (reconnects by itself after a lost connection).
    pub client: async_nats::Client,
    /// Key-value bucket.
    pub kv: kv::Store,
    /// Object store for large snapshots.
    pub objects: object_store::ObjectStore,
}

impl Nats {
    /// Largest message the server takes (1 MiB by default).
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }
}

/// Why `connect` gave up. No variant carries a secret: URLs are redacted
/// and files are named by their path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// A server URL does not parse (user info redacted).
    BadUrl {
        /// The URL, user info replaced by `***`.
        url: String,
        /// Why.
        reason: String,
    },
    /// A server URL carries a user, password or token: the command line is
    /// visible to every user of the host, and URLs are logged.
    CredentialsInUrl {
        /// The URL, user info replaced by `***`.
        url: String,
    },
    /// A credentials, key or certificate file cannot be used.
    File {
        /// Which file (`"password file"`, `"CA file"`, …).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why (never its content).
        reason: String,
    },
    /// Options that do not go together.
    Usage(String),
    /// The server refused the credentials, or TLS failed (a certificate
    /// not trusted, TLS required and the server does not offer it, …):
    /// retrying cannot help.
    Refused {
        /// The servers tried (redacted).
        servers: String,
        /// The client's or the server's reason.
        reason: String,
    },
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::BadUrl { url, reason } => write!(f, "server URL {url:?}: {reason}"),
            ConnectError::CredentialsInUrl { url } => write!(
                f,
                "server URL {url:?} carries credentials, which other users can read in the command line and \
                 which would be logged: refused; give the password with --user and --password-file, a token with \
                 --token-file (library: Config::auth)"
            ),
            ConnectError::File { what, path, reason } => write!(f, "{what} {}: {reason}", path.display()),
            ConnectError::Usage(why) => f.write_str(why),
            ConnectError::Refused { servers, reason } => {
                write!(f, "nats: cannot connect to {servers}, and retrying cannot help: {reason}")
            }
        }
    }
}

impl std::error::Error for ConnectError {}

/// The server URLs, parsed; user info in any of them is refused.
fn parse_servers(urls: &[String]) -> Result<Vec<ServerAddr>, ConnectError> {
    if urls.is_empty() {
        return Err(ConnectError::Usage("no server URL".into()));
    }
    urls.iter()
        .map(|url| {
            let shown = redact_url(url);
            if shown != *url {
                return Err(ConnectError::CredentialsInUrl { url: shown });
            }
            let addr = url
                .parse::<ServerAddr>()
                .map_err(|e| ConnectError::BadUrl { url: shown.clone(), reason: e.to_string() })?;
            if addr.username().is_some() || addr.password().is_some() {
                return Err(ConnectError::CredentialsInUrl { url: shown });
            }
            Ok(addr)
        })
        .collect()
}

/// Connections lost, in this process (`shmstate_bridge_disconnects_total`).
/// SYNC(stats): Relaxed, a statistic.
pub static DISCONNECTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Connects to `config.servers` and opens (or creates) the buckets, retrying
/// every step with back-off (100 ms doubling to 5 s) while the servers are
/// unreachable or JetStream is not ready. Fails at once for what retrying
/// cannot mend: a server URL that does not parse or carries credentials, a
/// credentials or certificate file that cannot be used, credentials the
/// server refuses, a TLS failure (see [`ConnectError`]).
pub async fn connect(config: &Config) -> Result<Nats, ConnectError> {
    let servers = parse_servers(&config.servers)?;
    let loaded = credentials::load(&config.auth, &config.tls)?;
    credentials::warn_if_cleartext(&config.auth, &config.tls, &servers);
    let shown = config.servers.iter().map(|s| redact_url(s)).collect::<Vec<_>>().join(",");
    let mut backoff = Backoff::new();
    let client = loop {
        let bucket = config.bucket.clone();
        let options = loaded
            .apply(async_nats::ConnectOptions::new())?
            .name(format!("shmstate-bridge@{}", config.host))
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(Duration::from_secs(5)))
            .max_reconnects(None)
            .event_callback(move |event| {
                if matches!(event, Event::Disconnected) {
                    DISCONNECTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let line = describe(&event, &bucket);
                async move { log!("nats: {line}") }
            });
        match async_nats::connect_with_options(servers.clone(), options).await {
            Ok(client) => break client,
            Err(e) => {
                let (reason, permanent) = connect_failure(&e, config.tls.is_required());
                if permanent {
                    return Err(ConnectError::Refused { servers: shown, reason });
                }
                let wait = backoff.next();
                log!("nats: cannot connect to {shown} ({reason}); retrying in {wait:?}");
                tokio::time::sleep(wait).await;
            }
        }
    };
    let info = client.server_info();
    log!("nats: connected to server {} at {}:{}", info.server_name, info.host, info.port);
    let js = jetstream::new(client.clone());
    let kv_config = kv::Config {
        bucket: config.bucket.clone(),
        description: "shmstate objects mirrored by shmstate-bridge".into(),
        history: 1,
        num_replicas: config.replicas,
        storage: StorageType::File,
        ..Default::default()
    };
    let kv = open_or_create(
        &format!("key-value bucket {:?}", config.bucket),
        || js.get_key_value(&config.bucket),
        || js.create_key_value(kv_config.clone()),
    )
    .await;
    let name = config.object_bucket();
    let objects_config = object_store::Config {
        bucket: name.clone(),
        num_replicas: config.replicas,
        storage: StorageType::File,
        ..Default::default()
    };
    let objects = open_or_create(
        &format!("object store {name:?}"),
        || js.get_object_store(&name),
        || js.create_object_store(objects_config.clone()),
    )
    .await;
    Ok(Nats { client, kv, objects })
}

/// Opens a bucket, or creates it if it cannot be opened, retrying both with
/// back-off until one succeeds (JetStream may still be electing a leader).
async fn open_or_create<S, E1, E2, G, C>(what: &str, get: impl Fn() -> G, create: impl Fn() -> C) -> S
where
    G: std::future::Future<Output = Result<S, E1>>,
    C: std::future::Future<Output = Result<S, E2>>,
    E2: std::fmt::Display,
{
    let mut backoff = Backoff::new();
    loop {
        if let Ok(store) = get().await {
            return store;
        }
        match create().await {
            Ok(store) => return store,
            Err(e) => {
                let wait = backoff.next();
                log!("nats: cannot open {what} ({e}); retrying in {wait:?}");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// The client's connect error with its cause (async-nats keeps the cause in
/// `source`), and whether retrying cannot help: credentials refused, or TLS
/// failed (rustls reports a failed handshake as `InvalidData`: an untrusted
/// certificate, a missing client certificate, a server without TLS).
fn connect_failure(e: &async_nats::ConnectError, tls_required: bool) -> (String, bool) {
    let source = std::error::Error::source(e);
    let mut reason = e.to_string();
    if let Some(source) = source.map(|s| s.to_string()) {
        if !reason.contains(&source) {
            reason = format!("{reason}: {source}");
        }
    }
    let tls_failed = e.kind() == ConnectErrorKind::Tls
        || (e.kind() == ConnectErrorKind::Io
            && source
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData));
    match e.kind() {
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
            reason.push_str(" (the server does not accept these credentials, or needs some)");
            (reason, true)
        }
        _ if tls_failed => {
            if tls_required {
                reason.push_str(
                    " (TLS is required here, by --tls-required, --tls-ca or --tls-cert: check that the server has \
                     TLS enabled and that its certificate is signed by the CA given)",
                );
            } else {
                reason.push_str(
                    " (the server asked for TLS: give its CA with --tls-ca, and --tls-cert if it verifies clients)",
                );
            }
            (reason, true)
        }
        _ => (reason, false),
    }
}

/// One client event as a log line; a permissions violation says what the
/// user may not do.
fn describe(event: &Event, bucket: &str) -> String {
    let Event::ServerError(ServerError::Other(message)) = event else { return event.to_string() };
    if !message.to_lowercase().starts_with("permissions violation") {
        return event.to_string();
    }
    let subject = message.split('"').nth(1).unwrap_or("");
    let kv = format!("$KV.{bucket}.");
    let direct_get = format!("$JS.API.DIRECT.GET.KV_{bucket}.{kv}");
    let what = if let Some(key) = subject.strip_prefix(&direct_get) {
        format!("key {key:?} of bucket {bucket:?} is outside this user's permissions (it may not read it)")
    } else if let Some(key) = subject.strip_prefix(&kv) {
        format!("key {key:?} of bucket {bucket:?} is outside this user's permissions (it may not write it)")
    } else {
        "the user's permissions do not allow it".to_string()
    };
    format!("the server refused: {message}: {what} (docs/ACROSS_HOSTS.md, \"Permissions\")")
}

/// 100 ms doubling to 5 s.
#[derive(Debug)]
pub(crate) struct Backoff(Duration);

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff(Duration::from_millis(100))
    }

    /// The next wait.
    pub(crate) fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        wait
    }
}

/// This machine's host name (`uname -n`), or `"unknown"`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
