//! Terminal 2: prints each new snapshot published by `examples/writer.rs`.

use std::time::Duration;

use shmstate::{Generation, WaitError};

#[shmstate::shared]
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub hosts: Vec<String>,
    pub feature_flags: Vec<(String, bool)>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut r = shmstate::Reader::<Config>::open("example.config")?;
    let mut last = Generation::NONE;
    loop {
        match r.wait_newer(last, Duration::from_secs(5)) {
            Ok(_) => {}
            Err(WaitError::Timeout { .. }) => continue,
            Err(WaitError::WriterDead { .. }) => {
                println!("the writer is gone; last generation {last}");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        let snap = r.read()?; // zero-copy view into shared memory
        let hosts: Vec<&str> = snap.hosts.iter().map(|h| h.as_str()).collect();
        println!("generation {}: port {} hosts {:?}", snap.generation(), snap.port, hosts);
        last = snap.generation();
    }
}
