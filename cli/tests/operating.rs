//! `shmstate metrics` and `shmstate doctor` against real objects, readers in
//! other processes, namespaces and a small /dev/shm.
//!
//! Some tests run this test binary again in another role (a reader that gets
//! killed, a writer inside a PID or mount namespace): the role is chosen by
//! `SHMSTATE_TEST_ROLE`, read at the top of the test that needs it.
#![cfg(not(miri))]

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use shmstate::{Reader, Writer};

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Config {
    version: u64,
    blob: Vec<u8>,
}

fn config(version: u64) -> Config {
    Config { version, blob: vec![7; 1000] }
}

/// A unique object name for this test, removed on drop.
struct Name(String);

impl Name {
    fn new(test: &str) -> Self {
        let name = format!("ops{}-{test}", std::process::id());
        let _ = shmstate::remove(&name);
        Name(name)
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = shmstate::remove(&self.0);
    }
}

fn shmstate_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shmstate"))
}

fn run(args: &[&str]) -> Output {
    shmstate_cmd().args(args).output().expect("run shmstate")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// This test binary again, running only `test` in `role`.
fn this_test_as(test: &str, role: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads=1"]).env("SHMSTATE_TEST_ROLE", role);
    c
}

fn role() -> Option<String> {
    std::env::var("SHMSTATE_TEST_ROLE").ok()
}

/// Reads lines of `child`'s stdout until one holds `prefix`; returns what
/// follows it. (A test's own output lands after libtest's `test NAME ... `.)
fn wait_line(out: &mut impl BufRead, prefix: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited before printing {prefix:?}");
        if let Some(at) = line.find(prefix) {
            return line[at + prefix.len()..].trim_end().to_string();
        }
    }
}

/// The value of the sample `metric{labels...}` whose labels include every `want` pair.
fn sample(text: &str, metric: &str, want: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (head, value) = l.rsplit_once(' ')?;
        let (name, labels) = head.split_once('{').map_or((head, ""), |(n, rest)| (n, rest.trim_end_matches('}')));
        let has = |k: &str, v: &str| labels.split(',').any(|kv| kv == format!("{k}=\"{v}\""));
        (name == metric && want.iter().all(|(k, v)| has(k, v))).then(|| value.parse().ok()).flatten()
    })
}

/// A reader in another process that pins generation `gen` of `name` and
/// then waits to be killed.
fn pinning_reader(name: &str) -> Child {
    this_test_as("metrics_match_inspect_with_lagging_and_dead_readers", &format!("pin:{name}"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn metrics_match_inspect_with_lagging_and_dead_readers() {
    if let Some(name) = role().as_deref().and_then(|r| r.strip_prefix("pin:")) {
        let mut r = Reader::<Config>::open(name).unwrap();
        let snap = r.read().unwrap();
        println!("pinned {}", snap.generation().get());
        std::thread::sleep(Duration::from_secs(600));
        unreachable!("killed by the test");
    }
    let name = Name::new("metrics");
    let mut w = Writer::<Config>::create(&name.0).unwrap();
    w.publish(&config(1)).unwrap();
    // A reader here that holds generation 1 and one in a process that dies holding it.
    let mut lagging = Reader::<Config>::open(&name.0).unwrap();
    let held = lagging.read().unwrap();
    let mut doomed = pinning_reader(&name.0);
    let mut doomed_out = BufReader::new(doomed.stdout.take().unwrap());
    assert_eq!(wait_line(&mut doomed_out, "pinned "), "1");
    for v in 2..=5 {
        w.publish(&config(v)).unwrap();
    }
    doomed.kill().unwrap();
    doomed.wait().unwrap();

    let prom = ok(&run(&["metrics", &name.0]));
    let info = shmstate::inspect(&name.0).unwrap();
    let n = [("name", name.0.as_str())];
    assert_eq!(sample(&prom, "shmstate_generation", &n), Some(info.generation as f64));
    assert_eq!(info.generation, 5);
    assert_eq!(sample(&prom, "shmstate_publishes_total", &n), Some(info.publishes as f64));
    assert_eq!(sample(&prom, "shmstate_writer_alive", &n), Some(1.0));
    assert_eq!(sample(&prom, "shmstate_readers", &[n[0], ("state", "live")]), Some(1.0), "{prom}");
    assert_eq!(sample(&prom, "shmstate_readers", &[n[0], ("state", "dead")]), Some(1.0), "{prom}");
    for alive in ["true", "false"] {
        assert_eq!(sample(&prom, "shmstate_reader_lag_generations", &[n[0], ("alive", alive)]), Some(4.0), "{prom}");
        let age = sample(&prom, "shmstate_reader_pinned_age_seconds", &[n[0], ("alive", alive)]).unwrap();
        assert!(age >= 0.0, "{age}");
    }
    assert_eq!(sample(&prom, "shmstate_held_old_bytes", &n), Some(info.held_old_bytes() as f64));
    assert!(info.held_old_bytes() > 0);
    assert_eq!(sample(&prom, "shmstate_segment_bytes", &n), Some(info.size as f64));
    assert_eq!(sample(&prom, "shmstate_segment_max_bytes", &n), Some(info.max_size as f64));
    assert_eq!(sample(&prom, "shmstate_object_unreadable", &n), Some(0.0));
    let info_line = prom.lines().find(|l| l.starts_with("shmstate_object_info{")).unwrap();
    assert!(info_line.contains("type=\"Config\"") && info_line.ends_with(" 1"), "{info_line}");
    drop(held);

    // Both parsers accept both formats.
    check_with_promtool(&prom);
    let om = ok(&run(&["metrics", "--openmetrics", &name.0]));
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE shmstate_publishes counter\n"), "{om}");
    parse_with_prometheus_client(&prom, "prometheus_client.parser");
    parse_with_prometheus_client(&om, "prometheus_client.openmetrics.parser");
}

#[test]
fn the_documented_alerting_rules_load() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/shmstate-alerts.yml");
    let o = Command::new("promtool").args(["check", "rules", rules]).output().expect("promtool");
    assert!(o.status.success(), "{}", text(&o));
    // Every rule in the file loaded (the bridge's among them).
    let written =
        std::fs::read_to_string(rules).unwrap().lines().filter(|l| l.trim_start().starts_with("- alert:")).count();
    assert!(written >= 8, "{written} rules in {rules}");
    let found = format!("SUCCESS: {written} rules found");
    assert!(String::from_utf8_lossy(&o.stdout).contains(&found), "{}", text(&o));
}

/// `promtool check metrics` (the Debian package `prometheus`; the README's
/// test command installs it) lints names, types and help.
fn check_with_promtool(prom: &str) {
    let mut c = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed: scripts/test-all.sh installs it");
    c.stdin.take().unwrap().write_all(prom.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "promtool check metrics:\n{}\n{prom}", text(&o));
}

/// Parses the text with the Python client's parser and checks it gives back
/// every family with samples.
fn parse_with_prometheus_client(body: &str, module: &str) {
    let script = format!(
        "import sys\nfrom {module} import text_string_to_metric_families as p\n\
         fams = list(p(sys.stdin.read()))\n\
         assert any(f.name.startswith('shmstate_generation') for f in fams), [f.name for f in fams]\n\
         print(len(fams), sum(len(f.samples) for f in fams))\n"
    );
    let mut c = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "{module} (pip prometheus-client; scripts/test-all.sh installs it):\n{}\n{body}",
        text(&o)
    );
    let families = body.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let counts = String::from_utf8_lossy(&o.stdout);
    assert_eq!(counts.split_whitespace().next(), Some(families.to_string().as_str()), "{counts}");
}

fn http_get(port: &str, path: &str, accept: Option<&str>) -> String {
    let mut s = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n{accept}\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn metrics_over_http_and_textfile() {
    let name = Name::new("http");
    let mut w = Writer::<Config>::create(&name.0).unwrap();
    w.publish(&config(1)).unwrap();
    let mut server =
        shmstate_cmd().args(["metrics", "--listen", "127.0.0.1:0", &name.0]).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = BufReader::new(server.stderr.take().unwrap());
    let url = wait_line(&mut err, "shmstate: serving metrics on http://127.0.0.1:");
    let port = url.trim_end_matches("/metrics");
    let plain = http_get(port, "/metrics", None);
    assert!(plain.starts_with("HTTP/1.1 200 OK\r\n"), "{plain}");
    assert!(plain.contains("Content-Type: text/plain; version=0.0.4"), "{plain}");
    assert_eq!(sample(&plain, "shmstate_generation", &[("name", &name.0)]), Some(1.0), "{plain}");
    w.publish(&config(2)).unwrap();
    let om = http_get(port, "/metrics", Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"));
    assert!(om.contains("Content-Type: application/openmetrics-text"), "{om}");
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert_eq!(sample(&om, "shmstate_generation", &[("name", &name.0)]), Some(2.0), "{om}");
    assert!(http_get(port, "/other", None).starts_with("HTTP/1.1 404"));
    // A client that sends nothing does not stop the server for the next one.
    let silent = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    drop(silent);
    assert!(http_get(port, "/", None).starts_with("HTTP/1.1 200 OK"));
    server.kill().unwrap();
    server.wait().unwrap();

    let dir = std::env::temp_dir().join(format!("shmstate-textfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    ok(&run(&["metrics", &name.0, "--textfile", dir.to_str().unwrap()]));
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["shmstate.prom"], "only the final file, no temporary left");
    let prom = std::fs::read_to_string(dir.join("shmstate.prom")).unwrap();
    assert_eq!(sample(&prom, "shmstate_generation", &[("name", &name.0)]), Some(2.0), "{prom}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A temporary root holding an /etc for `doctor --root`.
struct Root(std::path::PathBuf);

impl Root {
    fn new(test: &str) -> Self {
        let p = std::env::temp_dir().join(format!("shmstate-root-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("etc/systemd/logind.conf.d")).unwrap();
        Root(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn doctor(root: &Root) -> (i32, serde_json::Value) {
    let o = run(&["doctor", "--json", "--root", root.path()]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    (o.status.code().unwrap(), v)
}

fn findings<'a>(v: &'a serde_json::Value, check: &str) -> Vec<&'a serde_json::Value> {
    v.as_array().unwrap().iter().filter(|f| f["check"] == check).collect()
}

#[test]
fn doctor_finds_remove_ipc_with_a_login_users_object() {
    let name = Name::new("removeipc");
    let mut w = Writer::<Config>::create(&name.0).unwrap();
    w.publish(&config(1)).unwrap();
    let root = Root::new("removeipc");
    std::fs::write(root.0.join("etc/systemd/logind.conf"), "[Login]\n#RemoveIPC=yes\n").unwrap();
    // Owned by a system user: spared, so only a warning.
    let (_, v) = doctor(&root);
    assert_eq!(findings(&v, "remove-ipc")[0]["severity"], "warning", "{v:#}");
    // Owned by a login user (uid 1000 > SYS_UID_MAX 999): systemd-logind would remove it.
    for suffix in ["", ".readers", ".lock"] {
        let path = format!("/dev/shm/shmstate.{}{suffix}", name.0);
        std::os::unix::fs::chown(&path, Some(1000), None).unwrap();
    }
    let (code, v) = doctor(&root);
    let f = findings(&v, "remove-ipc");
    assert_eq!(f[0]["severity"], "problem", "{v:#}");
    assert!(f[0]["message"].as_str().unwrap().contains(&name.0), "{v:#}");
    assert_eq!(code, 8);
    // A drop-in that turns it off settles it.
    std::fs::write(root.0.join("etc/systemd/logind.conf.d/shmstate.conf"), "[Login]\nRemoveIPC=no\n").unwrap();
    let (_, v) = doctor(&root);
    assert_eq!(findings(&v, "remove-ipc")[0]["severity"], "ok", "{v:#}");
}

#[test]
fn doctor_finds_owner_mismatch_and_unused_objects() {
    let name = Name::new("owners");
    let mut w = Writer::<Config>::create(&name.0).unwrap();
    w.publish(&config(1)).unwrap();
    let root = Root::new("owners");
    std::os::unix::fs::chown(format!("/dev/shm/shmstate.{}.readers", name.0), Some(4242), None).unwrap();
    let (_, v) = doctor(&root);
    let mine: Vec<_> =
        findings(&v, "owners").into_iter().filter(|f| f["message"].as_str().unwrap().contains(&name.0)).collect();
    assert_eq!(mine.len(), 1, "{v:#}");
    assert!(mine[0]["message"].as_str().unwrap().contains("uid 4242"), "{v:#}");
    // With its writer gone and no reader, it is what gc would remove.
    drop(w);
    let (_, v) = doctor(&root);
    let unused = findings(&v, "unused");
    assert!(unused.iter().any(|f| f["message"].as_str().unwrap().contains(&name.0)), "{v:#}");
}

#[test]
fn doctor_finds_a_full_small_dev_shm() {
    if role().as_deref() == Some("small-shm") {
        // Inside a mount namespace with a 4 MiB /dev/shm: a writer, then a
        // file that leaves less than 10% free.
        let mut w = Writer::<Config>::create("ops-small").unwrap();
        w.publish(&config(1)).unwrap();
        let o = run(&["doctor", "--json"]);
        println!("before {}", String::from_utf8_lossy(&o.stdout).replace('\n', " "));
        let (total, free) = {
            let o = Command::new("df").args(["-B1", "--output=size,avail", "/dev/shm"]).output().unwrap();
            let t = String::from_utf8_lossy(&o.stdout).lines().nth(1).unwrap().to_string();
            let mut n = t.split_whitespace().map(|x| x.parse::<u64>().unwrap());
            (n.next().unwrap(), n.next().unwrap())
        };
        let fill = free - total / 20;
        std::fs::write("/dev/shm/filler", vec![1u8; fill as usize]).unwrap();
        let o = run(&["doctor", "--json"]);
        println!("after {} code {}", String::from_utf8_lossy(&o.stdout).replace('\n', " "), o.status.code().unwrap());
        return;
    }
    if role().is_some() {
        return;
    }
    let o = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tmpfs -o size=4m tmpfs /dev/shm && exec \"$@\"",
            "sh",
        ])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "doctor_finds_a_full_small_dev_shm", "--nocapture"])
        .env("SHMSTATE_TEST_ROLE", "small-shm")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    let json_of = |prefix: &str| -> serde_json::Value {
        let line = out.lines().find_map(|l| l.find(prefix).map(|at| &l[at + prefix.len()..]));
        let line = line.unwrap_or_else(|| panic!("{out}"));
        let line = line.rsplit_once(" code ").map_or(line, |(j, _)| j);
        serde_json::from_str(line).unwrap()
    };
    let before = json_of("before ");
    let space = findings(&before, "shm-space");
    // 4 MiB: Docker-sized, and the writer's default max_size (16 GiB) cannot fit.
    assert_eq!(space[0]["severity"], "warning", "{before:#}");
    assert!(space.iter().any(|f| f["message"].as_str().unwrap().contains("ops-small (max_size")), "{before:#}");
    let after = json_of("after ");
    assert_eq!(findings(&after, "shm-space")[0]["severity"], "problem", "{after:#}");
    assert!(out.contains(" code 8"), "{out}");
}

#[test]
fn writers_in_other_pid_namespaces_are_named_as_such() {
    if let Some(name) = role().as_deref().and_then(|r| r.strip_prefix("ns-writer:")) {
        let mut w = Writer::<Config>::create(name).unwrap();
        w.publish(&config(1)).unwrap();
        println!("published {}", std::process::id());
        std::thread::sleep(Duration::from_secs(600));
        unreachable!("killed by the test");
    }
    if role().is_some() {
        return;
    }
    // A writer in a child PID namespace: pid 1 there, something else here.
    let name = Name::new("pidns");
    let mut child = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "writers_in_other_pid_namespaces_are_named_as_such", "--nocapture"])
        .env("SHMSTATE_TEST_ROLE", format!("ns-writer:{}", name.0))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let pid_there: u32 = wait_line(&mut out, "published ").parse().unwrap();
    assert_eq!(pid_there, 1);
    let info = shmstate::inspect(&name.0).unwrap();
    assert_eq!(info.writer_pid, 1);
    let shmstate::WriterSeen::Pid(here) = info.writer_seen else { panic!("{:?}", info.writer_seen) };
    assert_ne!(here, 1);
    // `here` is a real process of this namespace: the test binary under unshare.
    let comm = std::fs::read_to_string(format!("/proc/{here}/cmdline")).unwrap();
    assert!(comm.contains("writers_in_other_pid_namespaces"), "{comm}");
    let list = ok(&run(&["list", &name.0]));
    assert!(list.contains(&format!("alive ({here}, 1 in its ns)")), "{list}");
    let inspect = ok(&run(&["inspect", &name.0]));
    assert!(inspect.contains(&format!("alive (pid {here}; pid 1 in its own PID namespace)")), "{inspect}");
    child.kill().unwrap();
    child.wait().unwrap();

    // The other way round: a writer here, looked at from a PID namespace with
    // its own /proc, which cannot see it.
    let mut w = Writer::<Config>::open_or_create(&name.0).unwrap();
    w.publish(&config(2)).unwrap();
    let o = Command::new("unshare")
        .args(["--pid", "--fork", "--mount", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_shmstate"))
        .args(["inspect", "--json", &name.0])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(v["writer_alive"], true, "{v:#}");
    assert_eq!(v["writer_in_hidden_namespace"], true, "{v:#}");
    assert_eq!(v["writer_pid_here"], serde_json::Value::Null, "{v:#}");
}
