//! The README's usage example as a program (`cargo run --example readme`).
//! It is also a doctest of the crate docs; keep the two identical.

use std::time::Duration;

#[shmstate::shared] // rkyv Archive/Serialize/Deserialize + Schema
#[derive(Debug, Clone)]
struct Config {
    port: u16,
    hosts: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("myapp.config.{}", std::process::id());

    // Publisher process. `open_or_create` creates the object, or takes it over
    // from an earlier writer that has exited, so a second run works too.
    let mut w = shmstate::Writer::<Config>::open_or_create(&name)?;
    let g = w.publish(&Config { port: 8080, hosts: vec!["a".into()] })?;

    // Any other process (the same one here, so that this example runs alone).
    let mut r = shmstate::Reader::<Config>::open(&name)?;
    let snap = r.read()?; // Snapshot: Deref<Target = ArchivedConfig>
    println!("{} at {}", snap.port, snap.generation());
    assert_eq!(snap.generation(), g);
    // `snap` borrows `r`: keep the generation, not the snapshot, to wait.
    let seen = snap.generation();

    w.publish(&Config { port: 8081, hosts: vec![] })?;
    r.wait_newer(seen, Duration::from_secs(1))?; // blocks on a futex
    assert_eq!(r.read()?.port, 8081);

    // Objects outlive their processes until removed.
    shmstate::remove(&name)?;
    Ok(())
}
