//! Terminal 1: publishes a small config every second until Ctrl-C.
//!
//! ```text
//! cargo run --example writer            # then, in another terminal:
//! cargo run --example reader
//! ```
//! Remove the object afterwards with `cargo run -p shmstate-cli -- rm example.config`.

use std::time::Duration;

#[shmstate::shared]
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub hosts: Vec<String>,
    pub feature_flags: Vec<(String, bool)>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // open_or_create: restarting the writer continues where the last one stopped.
    let mut w = shmstate::Writer::<Config>::open_or_create("example.config")?;
    for i in 0u64.. {
        let cfg = Config {
            port: 8000 + (i % 100) as u16,
            hosts: (0..3).map(|h| format!("backend-{h}.internal")).collect(),
            feature_flags: vec![("canary".into(), i % 2 == 0), ("gzip".into(), true)],
        };
        let g = w.publish(&cfg)?;
        println!("published generation {g}: port {}", cfg.port);
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}
