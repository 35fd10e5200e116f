//! The bridge's own metrics (docs/OPERATING.md "The bridge's metrics"): a
//! real export and import through `nats-server`, scraped over HTTP
//! (`--metrics-listen`) and read from the textfile (`--metrics-textfile`);
//! values checked, and the text checked by `promtool check metrics`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use common::*;
use shmstate::Writer;

/// The address a bridge logged it serves its metrics on.
fn metrics_addr(bridge: &Bridge) -> Option<String> {
    let log = bridge.log();
    let at = log.find("metrics: serving http://")? + "metrics: serving http://".len();
    Some(log[at..].split('/').next()?.to_string())
}

fn scrape(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_string()
}

/// The value of the sample `name` (with its labels, exactly), if present.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn promtool_check(text: &str) {
    let mut c = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test-all.sh installs it)");
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool: {said}\n{text}");
}

#[test]
fn export_and_import_counters_are_scraped_and_pass_promtool() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("metrics"), bucket("metrics"));
    let textfiles = tempfile::tempdir().unwrap();
    let mut writer = Writer::<Routes>::create(&names.source).unwrap();
    writer.publish(&Routes::new(1, 10)).unwrap();
    let listen = ["--metrics-listen", "127.0.0.1:0"];
    let export = Bridge::spawn(&[server.url()], &bucket, "host-a", &[&listen[..], &["export", &names.source]].concat());
    let textfile = textfiles.path().to_str().unwrap();
    let import = Bridge::spawn(
        &[server.url()],
        &bucket,
        "host-b",
        &[&listen[..], &["--metrics-textfile", textfile, "import", "--prefix", &names.prefix]].concat(),
    );
    for v in 2..=5 {
        eventually(DEADLINE, || import.log(), || (mirror_value(&names.mirror())?.version == v - 1).then_some(()));
        writer.publish(&Routes::new(v, 10)).unwrap();
    }
    eventually(DEADLINE, || import.log(), || (mirror_value(&names.mirror())?.version == 5).then_some(()));
    // One value no exporter wrote: refused as no envelope.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        let kv = async_nats::jetstream::new(client).get_key_value(&bucket).await.unwrap();
        kv.put("stray", b"not an envelope".to_vec().into()).await.unwrap();
    });
    eventually(DEADLINE, || import.log(), || import.log().contains("stray: revision").then_some(()));

    let (ea, ia) = (eventually(DEADLINE, || export.log(), || metrics_addr(&export)), metrics_addr(&import).unwrap());
    let exported = scrape(&ea);
    promtool_check(&exported);
    assert!(sample(&exported, "shmstate_bridge_exported_total").unwrap() >= 5.0, "{exported}");
    assert_eq!(sample(&exported, "shmstate_bridge_objects"), Some(1.0), "{exported}");
    assert!(exported.contains("shmstate_bridge_info{mode=\"export\",host=\"host-a\""), "{exported}");

    let imported = scrape(&ia);
    promtool_check(&imported);
    let imports = sample(&imported, "shmstate_bridge_imported_total").unwrap();
    assert!(imports >= 5.0, "{imported}");
    assert_eq!(sample(&imported, "shmstate_bridge_refused_total{reason=\"envelope\"}"), Some(1.0), "{imported}");
    assert_eq!(sample(&imported, "shmstate_bridge_objects"), Some(1.0), "{imported}");
    assert_eq!(sample(&imported, "shmstate_bridge_propagation_lag_seconds_count"), Some(imports), "{imported}");
    let lag = sample(&imported, "shmstate_bridge_propagation_lag_seconds_sum").unwrap();
    // Not a timing assertion: a lag is recorded, and it is not absurd (the
    // hosts share a clock here).
    assert!(lag > 0.0 && lag < DEADLINE.as_secs_f64() * imports, "{imported}");
    assert_eq!(sample(&imported, "shmstate_bridge_disconnects_total"), Some(0.0), "{imported}");

    let path = textfiles.path().join("shmstate-bridge.prom");
    let text = eventually(
        DEADLINE,
        || import.log(),
        || std::fs::read_to_string(&path).ok().filter(|t| t.contains("reason=\"envelope\"")),
    );
    promtool_check(&text);
    assert!(text.contains("shmstate_bridge_info{mode=\"import\",host=\"host-b\""), "{text}");
}
