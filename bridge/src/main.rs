//! `shmstate-bridge`: mirror shmstate objects across hosts through NATS JetStream.

use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use shmstate_bridge::verify::{hex, SigningIdentity, TrustedKeys};
use shmstate_bridge::{connect, export, import, log, Config, ExportOptions, ImportOptions, Stats};

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
        /// Sign every envelope with the Ed25519 key in FILE (64 hex digits,
        /// mode 0600; `keygen` makes one). Importers pin its public key.
        #[arg(long, value_name = "FILE")]
        signing_key: Option<std::path::PathBuf>,
    },
    /// Make a signing key: writes the secret to FILE (mode 0600) and prints
    /// the public key, for the importers' `--trusted-keys` file.
    Keygen {
        /// Where to write the secret key (must not exist).
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// Publish the bucket's values into local objects.
    Import {
        /// Prepended to each key to make the local object's name.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Keys or globs to import (default: all).
        patterns: Vec<String>,
        /// Accept only values signed by one of the Ed25519 public keys in
        /// FILE (one per line, 64 hex digits, then an optional name).
        #[arg(long, value_name = "FILE")]
        trusted_keys: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Keygen { out } = &cli.command {
        return keygen(out);
    }
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
            // Key files are read before connecting: a bad one is a usage error now.
            match cli.command {
                Command::Export { patterns, signing_key } => {
                    let signing = match signing_key {
                        Some(path) => Some(Arc::new(SigningIdentity::from_file(&path).map_err(|e| (EXIT_USAGE, e))?)),
                        None => None,
                    };
                    let nats = connect(&config).await.map_err(|e| (EXIT_USAGE, e))?;
                    export(config, nats, ExportOptions { patterns, signing }, stats)
                        .await
                        .map_err(|e| (EXIT_REFUSED, e.to_string()))
                }
                Command::Import { prefix, patterns, trusted_keys } => {
                    let trusted_keys = match trusted_keys {
                        Some(path) => Some(TrustedKeys::from_file(&path).map_err(|e| (EXIT_USAGE, e))?),
                        None => None,
                    };
                    let nats = connect(&config).await.map_err(|e| (EXIT_USAGE, e))?;
                    import(nats, ImportOptions { patterns, prefix, trusted_keys }, stats).await;
                    Ok(())
                }
                Command::Keygen { .. } => unreachable!("handled above"),
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
        "exported {}, imported {}, refused {}, retries {}, re-watches {}, reclaimed {}, not exported {}",
        stats.exported.load(Relaxed),
        stats.imported.load(Relaxed),
        stats.refused.load(Relaxed),
        stats.retries.load(Relaxed),
        stats.rewatches.load(Relaxed),
        stats.reclaimed.load(Relaxed),
        stats.not_exported.load(Relaxed)
    );
    code
}

/// `keygen --out FILE`.
fn keygen(out: &std::path::Path) -> ExitCode {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let written = SigningIdentity::generate().and_then(|id| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(out)?;
        writeln!(file, "{}", id.secret_hex())?;
        Ok(id)
    });
    match written {
        Ok(id) => {
            println!("{} {}", hex(&id.public_key()), config_host());
            ExitCode::SUCCESS
        }
        Err(e) => {
            log!("keygen: {}: {e}", out.display());
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// The default host name, as a name for the printed public key.
fn config_host() -> String {
    shmstate_bridge::connect::host_name()
}
