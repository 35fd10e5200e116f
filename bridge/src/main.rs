//! `shmstate-bridge`: mirror shmstate objects across hosts through NATS JetStream.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use shmstate_bridge::verify::{hex, SigningIdentity, TrustedKeys};
use shmstate_bridge::{
    connect, export, import, log, Auth, ClientCert, Config, ExportOptions, ImportLimits, ImportOptions, Stats, Tls,
};

/// Exit code for a configuration that the bridge or the server refuses: a
/// server URL that does not parse or carries credentials, an unusable
/// credentials or certificate file, credentials the server rejects, a TLS
/// failure.
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
    /// Serve this bridge's metrics on http://ADDR/metrics (Prometheus text;
    /// e.g. 127.0.0.1:9188). docs/OPERATING.md lists them.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Write the metrics to DIR/shmstate-bridge.prom every 5 s, atomically
    /// (node_exporter's textfile collector).
    #[arg(long, value_name = "DIR")]
    metrics_textfile: Option<PathBuf>,
    #[command(flatten)]
    security: Security,
    #[command(subcommand)]
    command: Command,
}

/// Credentials and TLS. Secrets are read from files, never taken on the
/// command line (other users can read it); a server URL with
/// `user:password@` is refused.
#[derive(Args)]
struct Security {
    /// NATS credentials file (user JWT and NKey seed, as `nsc` writes it).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["nkey", "user", "token_file"])]
    creds: Option<PathBuf>,
    /// File holding a user NKey seed (SU…).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["user", "token_file"])]
    nkey: Option<PathBuf>,
    /// User name (with --password-file).
    #[arg(long, requires = "password_file", conflicts_with = "token_file")]
    user: Option<String>,
    /// File holding the user's password (one line).
    #[arg(long, value_name = "FILE", requires = "user")]
    password_file: Option<PathBuf>,
    /// File holding an authentication token (one line).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// PEM file of the certificate authorities to trust (instead of the
    /// system's); implies --tls-required.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Client certificate, PEM, for mutual TLS (with --tls-key); implies
    /// --tls-required.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The client certificate's private key, PEM.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Refuse to connect without TLS.
    #[arg(long)]
    tls_required: bool,
}

impl Security {
    fn auth(&self) -> Auth {
        if let Some(path) = &self.creds {
            Auth::Creds(path.clone())
        } else if let Some(path) = &self.nkey {
            Auth::NKey(path.clone())
        } else if let (Some(user), Some(password_file)) = (&self.user, &self.password_file) {
            Auth::UserPassword { user: user.clone(), password_file: password_file.clone() }
        } else if let Some(path) = &self.token_file {
            Auth::Token(path.clone())
        } else {
            Auth::None
        }
    }

    fn tls(&self) -> Tls {
        let client_cert = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(ClientCert { cert: cert.clone(), key: key.clone() }),
            _ => None,
        };
        Tls { ca: self.tls_ca.clone(), client_cert, required: self.tls_required }
    }
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
        #[arg(long)]
        prefix: Option<String>,
        /// Keys or globs to import ('*' for every key). Without a pattern,
        /// --prefix is required: an importer takes keys into a name space
        /// of its own or an explicit list, never every name on the host.
        patterns: Vec<String>,
        /// Also publish into existing local objects that are not mirrors (a
        /// local program created them). Off: such a key is refused.
        #[arg(long)]
        into_local_objects: bool,
        /// Largest snapshot accepted (bytes; K, M, G suffixes are powers of
        /// 1024). Default 64M.
        #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
        max_value_bytes: Option<u64>,
        /// Local objects this importer creates or opens at most. Default
        /// 1000, fewer if the open-file limit cannot hold them (3 each).
        #[arg(long, value_name = "N")]
        max_objects: Option<usize>,
        /// Shared memory the imported objects may hold together (bytes; K,
        /// M, G suffixes). Default half of /dev/shm.
        #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
        max_shm_bytes: Option<u64>,
        /// Seconds one object-store fetch may take before it is refused.
        /// Default 60.
        #[arg(long, value_name = "SECONDS")]
        fetch_timeout: Option<u64>,
        /// Accept only values signed by one of the Ed25519 public keys in
        /// FILE (one per line, 64 hex digits, then an optional name).
        #[arg(long, value_name = "FILE")]
        trusted_keys: Option<std::path::PathBuf>,
        /// Keep the generation order seen in FILE (written at most every
        /// second), so that a restarted importer refuses rollbacks too.
        #[arg(long, value_name = "FILE")]
        state_file: Option<std::path::PathBuf>,
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
    config.auth = cli.security.auth();
    config.tls = cli.security.tls();
    if let Some(host) = cli.host {
        config.host = host;
    }
    if config.host.is_empty() || config.host.len() > 255 {
        log!("--host must be 1 to 255 bytes (envelopes carry it), not {:?}", config.host);
        return ExitCode::from(EXIT_USAGE);
    }
    let stats = Arc::new(Stats::default());
    let mode = if matches!(cli.command, Command::Export { .. }) { "export" } else { "import" };
    let render = {
        let (stats, host) = (stats.clone(), config.host.clone());
        move || shmstate_bridge::metrics::render(&stats, mode, &host)
    };
    if let Some(addr) = cli.metrics_listen {
        match shmstate_bridge::metrics::listen(addr, render.clone()) {
            Ok(bound) => log!("metrics: serving http://{bound}/metrics"),
            Err(e) => {
                log!("--metrics-listen {addr}: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    if let Some(dir) = cli.metrics_textfile.clone() {
        shmstate_bridge::metrics::keep_writing(dir, std::time::Duration::from_secs(5), render);
    }
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
                    let nats = connect(&config).await.map_err(|e| (EXIT_USAGE, e.to_string()))?;
                    export(config, nats, ExportOptions { patterns, signing }, stats)
                        .await
                        .map_err(|e| (EXIT_REFUSED, e.to_string()))
                }
                Command::Import {
                    prefix,
                    patterns,
                    trusted_keys,
                    into_local_objects,
                    max_value_bytes,
                    max_objects,
                    max_shm_bytes,
                    fetch_timeout,
                    state_file,
                } => {
                    if patterns.is_empty() && prefix.is_none() {
                        return Err((
                            EXIT_USAGE,
                            "import: name the keys to import (e.g. 'cfg.*', or '*' for every key) or give --prefix: \
                             an importer that takes every key under its own name could replace any object of this \
                             host"
                                .to_string(),
                        ));
                    }
                    let mut limits = ImportLimits::default();
                    limits.max_value_bytes = max_value_bytes.unwrap_or(limits.max_value_bytes);
                    limits.max_objects = max_objects.unwrap_or(limits.max_objects);
                    limits.max_shm_bytes = max_shm_bytes.unwrap_or(limits.max_shm_bytes);
                    limits.fetch_timeout = fetch_timeout.map_or(limits.fetch_timeout, std::time::Duration::from_secs);
                    let trusted_keys = match trusted_keys {
                        Some(path) => Some(TrustedKeys::from_file(&path).map_err(|e| (EXIT_USAGE, e))?),
                        None => None,
                    };
                    let nats = connect(&config).await.map_err(|e| (EXIT_USAGE, e.to_string()))?;
                    let prefix = prefix.unwrap_or_default();
                    if let Some(path) = &state_file {
                        let mut check = shmstate_bridge::verify::Verifier::new(None);
                        shmstate_bridge::import::load_state(path, &mut check).map_err(|e| (EXIT_USAGE, e))?;
                    }
                    let options =
                        ImportOptions { patterns, prefix, trusted_keys, into_local_objects, limits, state_file };
                    import(nats, options, stats).await;
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

/// A byte count: digits, then an optional K, M, G or T (powers of 1024).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let (digits, shift) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 30),
        Some(b'T' | b't') => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a byte count (e.g. 65536, 64M, 2G)"))?;
    n.checked_mul(1 << shift).ok_or_else(|| format!("{s:?} is more than 2^64 bytes"))
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
