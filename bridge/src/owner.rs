//! One exporter per key, fleet-wide, without a lock of our own.
//!
//! Every exporter process has a random id, written into each envelope it puts,
//! and answers requests on `shmstate-bridge.exporter.<bucket>.<id>` for as long
//! as it lives. An exporter claims a key with a revision-checked write (the
//! key-value store's `create`/`update`): the key is free when it is absent, or
//! when the exporter named in its envelope does not answer (dead). Two
//! claimants racing for the same revision: one write fails and that one
//! re-reads the key, finds the winner alive and is refused.
//!
//! The responder subscribes before the exporter's first write, so anyone who
//! reads an envelope naming it finds it answering (up to the time the
//! subscription takes to reach the other servers of a cluster).

use std::hash::{BuildHasher, Hasher};

use async_nats::{Client, RequestErrorKind};
use futures::StreamExt;

/// This process's exporter id: random, non-zero.
pub(crate) fn new_id() -> u64 {
    // `RandomState` is seeded from the OS's random source per process.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish() | 1
}

fn subject(bucket: &str, id: u64) -> String {
    format!("shmstate-bridge.exporter.{bucket}.{id:016x}")
}

/// Answers liveness requests for exporter `id` until the returned task is
/// aborted (or the process dies).
pub(crate) async fn answer(client: &Client, bucket: &str, id: u64) -> Result<tokio::task::JoinHandle<()>, String> {
    let mut requests = client.subscribe(subject(bucket, id)).await.map_err(|e| e.to_string())?;
    // The subscription must be known to the server before a claim is written.
    client.flush().await.map_err(|e| e.to_string())?;
    let client = client.clone();
    Ok(tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            if let Some(reply) = request.reply {
                let _ = client.publish(reply, std::process::id().to_string().into()).await;
            }
        }
    }))
}

/// Whether exporter `id` answers. No responders, or none in time: dead.
pub(crate) async fn is_alive(client: &Client, bucket: &str, id: u64) -> Result<bool, String> {
    match client.request(subject(bucket, id), "".into()).await {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.kind(), RequestErrorKind::NoResponders | RequestErrorKind::TimedOut) => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}
