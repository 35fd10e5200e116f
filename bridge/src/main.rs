//! `shmstate-bridge`: mirror shmstate objects across hosts through NATS JetStream.

use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use shmstate_bridge::{connect, export, import, log, Config, ImportOptions, Stats};

/// Exit code for a server URL that does not parse.
const EXIT_USAGE: u8 = 2;
/// Exit code when another exporter owns an object (one writer per object).
const EXIT_REFUSED: u8 = 3;

#[derive(Parser)]
#[command(version, about = "Mirror shmstate objects across hosts through NATS JetStream")]
struct Cli {
    /// NATS server URL; repeat for a cluster (the client fails over).
    #[arg(long = "server", default_value = "nats://127.0.0.1:4222")]
    servers: Vec<String>,
    /// JetStream key-value bucket (created if missing, with the object store
    /// `<bucket>-large`).
    #[arg(long, default_value = "shmstate")]
    bucket: String,
    /// Replicas of the buckets when this process creates them.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// This host's name in exported envelopes (default: the kernel's host name).
    #[arg(long)]
    host: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Put every new generation of local objects into the bucket.
    Export {
        /// Object names or globs (`*`, `?`), e.g. 'cfg.*'.
        #[arg(required = true)]
        patterns: Vec<String>,
    },
    /// Publish the bucket's values into local objects.
    Import {
        /// Prepended to each key to make the local object's name.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Keys or globs to import (default: all).
        patterns: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = Config::new(cli.servers[0].clone());
    config.servers = cli.servers;
    config.bucket = cli.bucket;
    config.replicas = cli.replicas;
    if let Some(host) = cli.host {
        config.host = host;
    }
    if config.host.is_empty() || config.host.len() > 255 {
        log!("--host must be 1 to 255 bytes (envelopes carry it), not {:?}", config.host);
        return ExitCode::from(EXIT_USAGE);
    }
    let stats = Arc::new(Stats::default());
    let work = {
        let stats = stats.clone();
        async move {
            let nats = connect(&config).await.map_err(|e| (EXIT_USAGE, e))?;
            match cli.command {
                Command::Export { patterns } => {
                    export(config, nats, patterns, stats).await.map_err(|e| (EXIT_REFUSED, e.to_string()))
                }
                Command::Import { prefix, patterns } => {
                    import(nats, ImportOptions { patterns, prefix }, stats).await;
                    Ok(())
                }
            }
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    let code = tokio::select! {
        result = work => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err((code, e)) => {
                log!("{e}");
                ExitCode::from(code)
            }
        },
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
        _ = term.recv() => ExitCode::SUCCESS,
    };
    log!(
        "exported {}, imported {}, refused {}, retries {}, re-watches {}",
        stats.exported.load(Relaxed),
        stats.imported.load(Relaxed),
        stats.refused.load(Relaxed),
        stats.retries.load(Relaxed),
        stats.rewatches.load(Relaxed)
    );
    code
}
