//! Real `nats-server` processes on loopback ports (JetStream, temporary store
//! directories, killed at the end), bridge processes, and helpers. No test
//! skips: a missing `nats-server` fails with how to get it.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The snapshot type the tests mirror.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
pub struct Routes {
    pub version: u64,
    pub name: String,
    pub weights: Vec<u32>,
}

impl Routes {
    pub fn new(version: u64, len: usize) -> Self {
        Routes {
            version,
            name: format!("routes v{version}"),
            weights: (0..len as u32).map(|i| i ^ version as u32).collect(),
        }
    }
}

/// A unique object name, removed (with its mirror under `prefix`) on drop.
pub struct Names {
    pub source: String,
    pub prefix: String,
}

impl Names {
    pub fn new(test: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let source = format!("br{}-{n}-{test}", std::process::id());
        let prefix = format!("hostb{}-{n}.", std::process::id());
        let names = Names { source, prefix };
        names.remove();
        names
    }

    /// The mirror's local name on "host B" (a name prefix: both hosts share
    /// this machine's /dev/shm).
    pub fn mirror(&self) -> String {
        format!("{}{}", self.prefix, self.source)
    }

    fn remove(&self) {
        let _ = shmstate::remove(&self.source);
        let _ = shmstate::remove(&self.mirror());
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Path of `nats-server` (>= 2.10): `$NATS_SERVER`, then `PATH`, then Debian's place.
pub fn nats_server_bin() -> PathBuf {
    let path = find_nats_server();
    let out = Command::new(&path).arg("--version").output().expect("run nats-server --version");
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let minor = version.split("v2.").nth(1).and_then(|v| v.split('.').next()?.parse::<u32>().ok());
    assert!(
        minor.is_some_and(|m| m >= 10),
        "{} is {version:?}; the bridge needs nats-server >= 2.10: run `bash scripts/test-all.sh` (it installs one) \
         or set NATS_SERVER",
        path.display()
    );
    path
}

fn find_nats_server() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return p.into();
    }
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("nats-server")).collect::<Vec<_>>())
        .unwrap_or_default();
    for c in
        candidates.into_iter().chain([PathBuf::from("/usr/sbin/nats-server"), PathBuf::from("/usr/bin/nats-server")])
    {
        if c.is_file() {
            return c;
        }
    }
    panic!("nats-server not found: run `bash scripts/test-all.sh` (it installs it) or set NATS_SERVER")
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One `nats-server` with JetStream.
pub struct NatsServer {
    pub port: u16,
    pub cluster_port: Option<u16>,
    dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// A single server on a free port.
    pub fn start() -> Self {
        Self::on_port(free_port())
    }

    /// A single server on `port`.
    pub fn on_port(port: u16) -> Self {
        let mut s =
            NatsServer { port, cluster_port: None, dir: tempfile::tempdir().unwrap(), args: Vec::new(), child: None };
        s.args = s.base_args("single");
        s.launch();
        s
    }

    /// Three servers in one JetStream cluster.
    pub fn cluster() -> Vec<NatsServer> {
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let mut servers: Vec<NatsServer> = ports
            .iter()
            .enumerate()
            .map(|(i, &(port, cluster))| {
                let mut s = NatsServer {
                    port,
                    cluster_port: Some(cluster),
                    dir: tempfile::tempdir().unwrap(),
                    args: Vec::new(),
                    child: None,
                };
                let routes: Vec<String> =
                    ports.iter().filter(|p| p.1 != cluster).map(|p| format!("nats://127.0.0.1:{}", p.1)).collect();
                s.args = s.base_args(&format!("n{i}"));
                s.args.extend([
                    "--cluster_name".into(),
                    "shmstate-test".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{cluster}"),
                    "--routes".into(),
                    routes.join(","),
                ]);
                s
            })
            .collect();
        for s in &mut servers {
            s.spawn();
        }
        for s in &servers {
            wait_port(s.port);
        }
        servers
    }

    fn base_args(&self, name: &str) -> Vec<String> {
        vec![
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            self.port.to_string(),
            "-js".into(),
            "-sd".into(),
            self.dir.path().display().to_string(),
            "--server_name".into(),
            name.into(),
        ]
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        self.child = Some(
            Command::new(nats_server_bin())
                .args(&self.args)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start nats-server"),
        );
    }

    fn launch(&mut self) {
        self.spawn();
        wait_port(self.port);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and store directory.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `shmstate-bridge` process; its stderr goes to a file read by `log()`.
pub struct Bridge {
    child: Option<Child>,
    log: tempfile::NamedTempFile,
}

impl Bridge {
    /// `shmstate-bridge --server URL... --bucket B --host H <args>`.
    pub fn spawn(servers: &[String], bucket: &str, host: &str, args: &[&str]) -> Bridge {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmstate-bridge"));
        for s in servers {
            cmd.args(["--server", s]);
        }
        let replicas = if servers.len() >= 3 { "3" } else { "1" };
        cmd.args(["--bucket", bucket, "--host", host, "--replicas", replicas]).args(args);
        let child = cmd.stdout(Stdio::null()).stderr(log.reopen().unwrap()).spawn().expect("start shmstate-bridge");
        Bridge { child: Some(child), log }
    }

    /// As `spawn`, run through `wrapper` (e.g. `sh -c 'ulimit -v N && exec "$0" "$@"'`).
    pub fn spawn_wrapped(wrapper: &[&str], servers: &[String], bucket: &str, host: &str, args: &[&str]) -> Bridge {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..]).arg(env!("CARGO_BIN_EXE_shmstate-bridge"));
        for s in servers {
            cmd.args(["--server", s]);
        }
        cmd.args(["--bucket", bucket, "--host", host]).args(args);
        let child = cmd.stdout(Stdio::null()).stderr(log.reopen().unwrap()).spawn().expect("start the wrapper");
        Bridge { child: Some(child), log }
    }

    /// The exit code if the process has exited (`Some(None)`: by a signal).
    pub fn try_exit(&mut self) -> Option<Option<i32>> {
        self.child.as_mut().unwrap().try_wait().unwrap().map(|s| s.code())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Waits for the process to exit by itself; its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "bridge still running; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` until it returns `Some`, failing with `what` after `within`
/// (a deadline against hangs, not a measurement).
pub fn eventually<T>(within: Duration, what: impl Fn() -> String, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting: {}", what());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The mirror's current value, if it exists and has one.
pub fn mirror_value(name: &str) -> Option<Routes> {
    let mut reader = shmstate::Reader::<Routes>::open(name).ok()?;
    let snap = reader.read().ok()?;
    Some(shmstate::rkyv::deserialize::<Routes, shmstate::rkyv::rancor::Error>(&*snap).unwrap())
}

/// A unique bucket name.
pub fn bucket(test: &str) -> String {
    format!("t{}-{test}", std::process::id())
}

pub const DEADLINE: Duration = Duration::from_secs(30);

/// The source generation of `key`'s value in the bucket (a plain client).
pub fn bucket_generation(url: &str, bucket: &str, key: &str) -> Option<u64> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.ok()?;
        let kv = async_nats::jetstream::new(client).get_key_value(bucket).await.ok()?;
        let value = kv.get(key).await.ok()??;
        Some(shmstate_bridge::envelope::Envelope::decode(&value).ok()?.generation)
    })
}

impl Bridge {
    /// As `spawn`, but in a mount namespace of its own with an empty /dev/shm
    /// (`unshare --mount`, then a tmpfs on /dev/shm): another host's view of
    /// shared memory. Needs root (or CAP_SYS_ADMIN).
    pub fn spawn_on_own_host(servers: &[String], bucket: &str, host: &str, args: &[&str]) -> Bridge {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /dev/shm && exec \"$0\" \"$@\"",
        ]);
        cmd.arg(env!("CARGO_BIN_EXE_shmstate-bridge"));
        for s in servers {
            cmd.args(["--server", s]);
        }
        cmd.args(["--bucket", bucket, "--host", host]).args(args);
        let child = cmd.stdout(Stdio::null()).stderr(log.reopen().unwrap()).spawn().expect("start unshare");
        Bridge { child: Some(child), log }
    }

    /// The process id (for `nsenter`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }
}
