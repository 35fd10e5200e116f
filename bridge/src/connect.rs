//! Connecting to NATS and opening the buckets, retrying with back-off until
//! the servers answer (saying so on stderr meanwhile).

use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store, stream::StorageType};

use crate::log;

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
}

impl Config {
    /// One server, bucket `shmstate`, one replica, this machine's host name.
    pub fn new(server: impl Into<String>) -> Self {
        Config { servers: vec![server.into()], bucket: "shmstate".into(), replicas: 1, host: host_name() }
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

/// Connects to `config.servers` and opens (or creates) the buckets, retrying
/// every step with back-off (100 ms doubling to 5 s) for as long as it takes.
/// Fails only for a server URL that does not parse.
pub async fn connect(config: &Config) -> Result<Nats, String> {
    let servers = config
        .servers
        .iter()
        .map(|url| url.parse::<async_nats::ServerAddr>().map_err(|e| format!("server URL {url:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut backoff = Backoff::new();
    let client = loop {
        let options = async_nats::ConnectOptions::new()
            .name(format!("shmstate-bridge@{}", config.host))
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(Duration::from_secs(5)))
            .max_reconnects(None)
            .event_callback(|event| async move { log!("nats: {event}") });
        match async_nats::connect_with_options(servers.clone(), options).await {
            Ok(client) => break client,
            Err(e) => {
                let wait = backoff.next();
                log!("nats: cannot connect to {} ({e}); retrying in {wait:?}", config.servers.join(","));
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
