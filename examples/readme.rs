//! The README's usage example, compiled and run as it stands
//! (`cargo run --example readme`). Writer and reader share one process here;
//! in real use they are different processes.

use std::time::Duration;

#[shmstate::shared] // rkyv Archive/Serialize/Deserialize + Schema
#[derive(Debug, Clone)]
struct Config {
    port: u16,
    hosts: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("readme.config.{}", std::process::id());

    // Publisher process
    let mut w = shmstate::Writer::<Config>::options().remove_on_drop(true).create(&name)?;
    let g = w.publish(&Config { port: 8080, hosts: vec!["a".into()] })?;

    // Any other process
    let mut r = shmstate::Reader::<Config>::open(&name)?;
    let snap = r.read()?; // Snapshot: Deref<Target = ArchivedConfig>
    println!("{} at {}", snap.port, snap.generation());
    assert_eq!(snap.generation(), g);
    let seen = snap.generation();
    w.publish(&Config { port: 8081, hosts: vec![] })?;
    r.wait_newer(seen, Duration::from_secs(1))?; // blocks on a futex until then
    let snap = r.read()?;
    println!("{} at {}", snap.port, snap.generation());
    Ok(())
}
