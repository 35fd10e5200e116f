//! Credentials and TLS against real `nats-server` processes configured for
//! each: user and password, token, NKey, a `.creds` file (an operator, an
//! account and a user signed here as JWTs), TLS with a CA made here, mutual
//! TLS, `--tls-required` against a plain server, and the recommended
//! per-user permissions (docs/ACROSS_HOSTS.md, "Permissions"). No secret may
//! appear in a log line.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use shmstate::Writer;
use shmstate_bridge::{Auth, Config};

/// A `nats-server` started from a config file written here (JetStream on).
struct ConfServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl ConfServer {
    /// `body` is the config less `listen` and `jetstream`; `{dir}` in it is
    /// replaced by the server's directory.
    fn start(body: &str) -> ConfServer {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("js");
        let conf = format!(
            "listen: \"127.0.0.1:{port}\"\nserver_name: \"auth-test\"\njetstream {{ store_dir: \"{}\" }}\n{}\n",
            store.display(),
            body.replace("{dir}", &dir.path().display().to_string())
        );
        let conf_path = dir.path().join("server.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        let server = ConfServer { port, dir, child };
        eventually(
            Duration::from_secs(20),
            || format!("nats-server on {port}; its log:\n{}", server.log()),
            || std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(drop),
        );
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A file in the server's directory, mode 0600.
    fn file(&self, name: &str, content: &str) -> String {
        secret_file(self.dir.path(), name, content)
    }
}

impl Drop for ConfServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn secret_file(dir: &Path, name: &str, content: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

/// Exports a fresh object with `export_args` and imports it with
/// `import_args` (the credentials flags of each side); fails unless the
/// mirror gets the value.
fn mirrors_through(url: &str, test: &str, export_args: &[&str], import_args: &[&str]) {
    let (names, bucket) = (Names::new(test), bucket(test));
    let mut writer = Writer::<Routes>::create(&names.source).unwrap();
    writer.publish(&Routes::new(7, 20)).unwrap();
    let export =
        Bridge::spawn(&[url.to_string()], &bucket, "host-a", &[export_args, &["export", &names.source]].concat());
    let import = Bridge::spawn(
        &[url.to_string()],
        &bucket,
        "host-b",
        &[import_args, &["import", "--prefix", &names.prefix, &names.source]].concat(),
    );
    eventually(
        DEADLINE,
        || format!("the mirror; exporter:\n{}\nimporter:\n{}", export.log(), import.log()),
        || (mirror_value(&names.mirror())? == Routes::new(7, 20)).then_some(()),
    );
}

/// The bridge with `args` exits by itself: its exit code and log.
fn run_to_exit(url: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut bridge = Bridge::spawn(&[url.to_string()], &bucket("exit"), "host-a", args);
    let code = bridge.wait_exit(DEADLINE);
    (code, bridge.log())
}

#[test]
fn credentials_in_a_url_are_refused_and_no_log_line_shows_them() {
    let server = NatsServer::start();
    let with_password = format!("nats://alice:pw-in-url-1@127.0.0.1:{}", server.port);
    let (code, log) = run_to_exit(&with_password, &["import", "*"]);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("--password-file") && log.contains("nats://***@127.0.0.1"), "{log}");
    assert!(!log.contains("pw-in-url-1"), "the password is in the log:\n{log}");

    // A token as the user part, and a URL that does not parse: redacted too.
    for url in ["nats://tok-in-url-2@127.0.0.1:4222", "nats://alice:tok-in-url-2@127.0.0.1:notaport"] {
        let (code, log) = run_to_exit(url, &["import", "*"]);
        assert_eq!(code, Some(2), "{log}");
        assert!(!log.contains("tok-in-url-2"), "the secret is in the log:\n{log}");
    }
}

#[test]
fn user_and_password_file_mirror_and_a_wrong_password_is_refused_at_start() {
    let server = ConfServer::start(r#"authorization { users = [ { user: "alice", password: "pw-alice-3" } ] }"#);
    let good = server.file("alice.pw", "pw-alice-3\n");
    let args = ["--user", "alice", "--password-file", &good];
    mirrors_through(&server.url(), "userpw", &args, &args);

    let wrong = server.file("wrong.pw", "pw-wrong-4\n");
    let (code, log) = run_to_exit(&server.url(), &["--user", "alice", "--password-file", &wrong, "import", "*"]);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("authorization violation"), "{log}");
    assert!(!log.contains("pw-wrong-4") && !log.contains("pw-alice-3"), "a password is in the log:\n{log}");
    // No credentials at all: refused the same way, not retried for ever.
    let (code, log) = run_to_exit(&server.url(), &["import", "*"]);
    assert_eq!(code, Some(2), "{log}");
}

#[test]
fn a_token_file_mirrors() {
    let server = ConfServer::start(r#"authorization { token: "tok-5-secret" }"#);
    let token = server.file("token", "tok-5-secret\n");
    let args = ["--token-file", &token];
    mirrors_through(&server.url(), "token", &args, &args);
    let empty = server.file("empty", "\n");
    let (code, log) = run_to_exit(&server.url(), &["--token-file", &empty, "import", "*"]);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("token file") && log.contains("is empty"), "{log}");
}

#[test]
fn an_nkey_seed_file_mirrors() {
    let user = nkeys::KeyPair::new_user();
    let server = ConfServer::start(&format!("authorization {{ users = [ {{ nkey: \"{}\" }} ] }}", user.public_key()));
    let seed = user.seed().unwrap();
    let seed_file = server.file("user.nk", &format!("{seed}\n"));
    let args = ["--nkey", &seed_file];
    mirrors_through(&server.url(), "nkey", &args, &args);
    // Another user's seed: refused by the server; the seed is never printed.
    let other = nkeys::KeyPair::new_user().seed().unwrap();
    let other_file = server.file("other.nk", &other);
    let (code, log) = run_to_exit(&server.url(), &["--nkey", &other_file, "import", "*"]);
    assert_eq!(code, Some(2), "{log}");
    assert!(!log.contains(&other) && !log.contains(&seed), "a seed is in the log:\n{log}");
}

// --- JWTs (operator mode), signed here as `nsc` would ---

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT of `claims` about `subject`, signed by `issuer`.
fn jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = serde_json::json!({
        "jti": format!("{name}{now}").to_uppercase(),
        "iat": now,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let signed = format!("{header}.{}", b64(claims.to_string().as_bytes()));
    let signature = issuer.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", b64(&signature))
}

fn creds(user_jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}

#[test]
fn a_creds_file_of_an_operator_signed_user_mirrors() {
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let system = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let operator_jwt =
        jwt(&operator, &operator.public_key(), "op", serde_json::json!({"type": "operator", "version": 2}));
    let unlimited = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": true,
        "conn": -1, "leaf": -1, "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
    });
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        "fleet",
        serde_json::json!({"limits": unlimited, "type": "account", "version": 2}),
    );
    let system_jwt = jwt(
        &operator,
        &system.public_key(),
        "SYS",
        serde_json::json!({"limits": {"subs": -1, "data": -1, "payload": -1, "conn": -1}, "type": "account", "version": 2}),
    );
    let user_jwt = jwt(
        &account,
        &user.public_key(),
        "bridge",
        serde_json::json!({"subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2}),
    );
    let dir = tempfile::tempdir().unwrap();
    let operator_file = secret_file(dir.path(), "op.jwt", &operator_jwt);
    let server = ConfServer::start(&format!(
        "operator: \"{operator_file}\"\nsystem_account: \"{sys}\"\nresolver: MEMORY\n\
         resolver_preload: {{ {acc}: \"{account_jwt}\", {sys}: \"{system_jwt}\" }}\n",
        sys = system.public_key(),
        acc = account.public_key(),
    ));
    let seed = user.seed().unwrap();
    let creds_file = server.file("bridge.creds", &creds(&user_jwt, &seed));
    let args = ["--creds", &creds_file];
    mirrors_through(&server.url(), "creds", &args, &args);
    // A user of an account the server does not know: refused at start.
    let stranger = nkeys::KeyPair::new_user();
    let stranger_jwt = jwt(
        &nkeys::KeyPair::new_account(),
        &stranger.public_key(),
        "stranger",
        serde_json::json!({"type": "user", "version": 2}),
    );
    let stranger_file = server.file("stranger.creds", &creds(&stranger_jwt, &stranger.seed().unwrap()));
    let (code, log) = run_to_exit(&server.url(), &["--creds", &stranger_file, "import", "*"]);
    assert_eq!(code, Some(2), "{log}");
    assert!(!log.contains(&seed) && !log.contains(&stranger.seed().unwrap()), "a seed is in the log:\n{log}");
}

// --- TLS ---

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM
/// files in `dir`.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "shmstate test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf = |sans: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params.extended_key_usages = vec![usage];
        params.distinguished_name.push(rcgen::DnType::CommonName, "shmstate test");
        (params.signed_by(&key, &ca, &ca_key).unwrap().pem(), key.serialize_pem())
    };
    let (server_cert, server_key) =
        leaf(vec!["127.0.0.1".into(), "localhost".into()], ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = leaf(vec!["bridge.test".into()], ExtendedKeyUsagePurpose::ClientAuth);
    Pki {
        ca: secret_file(dir, "ca.pem", &ca.pem()),
        server_cert: secret_file(dir, "server.pem", &server_cert),
        server_key: secret_file(dir, "server-key.pem", &server_key),
        client_cert: secret_file(dir, "client.pem", &client_cert),
        client_key: secret_file(dir, "client-key.pem", &client_key),
    }
}

#[test]
fn tls_with_a_private_ca_mirrors_and_the_system_roots_refuse_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let server =
        ConfServer::start(&format!("tls {{ cert_file: \"{}\", key_file: \"{}\" }}", pki.server_cert, pki.server_key));
    let args = ["--tls-ca", &pki.ca];
    mirrors_through(&server.url(), "tls", &args, &args);
    // The system's authorities do not know our CA: a TLS failure, at once.
    let (code, log) = run_to_exit(&server.url(), &["--tls-required", "import", "*"]);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("TLS"), "{log}");
}

#[test]
fn mutual_tls_mirrors_with_the_client_certificate_and_is_refused_without() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let server = ConfServer::start(&format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true }}",
        pki.server_cert, pki.server_key, pki.ca
    ));
    let args = ["--tls-ca", &pki.ca, "--tls-cert", &pki.client_cert, "--tls-key", &pki.client_key];
    mirrors_through(&server.url(), "mtls", &args, &args);
    let (code, log) = run_to_exit(&server.url(), &["--tls-ca", &pki.ca, "import", "*"]);
    assert_eq!(code, Some(2), "{log}");
}

#[test]
fn tls_required_against_a_plain_server_fails_clearly() {
    let server = NatsServer::start();
    let (code, log) = run_to_exit(&server.url(), &["--tls-required", "import", "*"]);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("retrying cannot help") && log.contains("TLS is required"), "{log}");
}

// --- The recommended permissions ---

/// The permission set of docs/ACROSS_HOSTS.md ("Permissions") for bucket
/// `b`: `admin` creates the buckets, `exporter-a` writes only keys `hosta.*`,
/// `importer` only reads.
fn permissions_conf(b: &str) -> String {
    format!(
        r#"
accounts {{
  SHMSTATE {{
    jetstream: enabled
    users = [
      {{ user: "admin", password: "pw-admin" }}
      {{ user: "exporter-a", password: "pw-exporter", permissions: {{
          publish: {{ allow: [
            "$KV.{b}.hosta.>",
            "$JS.API.STREAM.INFO.KV_{b}", "$JS.API.DIRECT.GET.KV_{b}.$KV.{b}.hosta.>",
            "$O.{b}-large.>", "$JS.API.STREAM.INFO.OBJ_{b}-large",
            "$JS.API.DIRECT.GET.OBJ_{b}-large.>", "$JS.API.STREAM.MSG.GET.OBJ_{b}-large",
            "$JS.API.STREAM.PURGE.OBJ_{b}-large",
            "shmstate-bridge.exporter.{b}.*"
          ] }}
          subscribe: {{ allow: [ "_INBOX.>", "shmstate-bridge.exporter.{b}.*" ] }}
          allow_responses: true
      }} }}
      {{ user: "importer", password: "pw-importer", permissions: {{
          publish: {{ allow: [
            "$JS.API.STREAM.INFO.KV_{b}", "$JS.API.CONSUMER.CREATE.KV_{b}", "$JS.API.CONSUMER.CREATE.KV_{b}.>",
            "$JS.FC.KV_{b}.>", "$JS.API.STREAM.INFO.OBJ_{b}-large", "$JS.API.DIRECT.GET.OBJ_{b}-large.>",
            "$JS.API.STREAM.MSG.GET.OBJ_{b}-large", "$JS.API.CONSUMER.CREATE.OBJ_{b}-large",
            "$JS.API.CONSUMER.CREATE.OBJ_{b}-large.>", "$JS.FC.OBJ_{b}-large.>"
          ] }}
          subscribe: {{ allow: [ "_INBOX.>" ] }}
      }} }}
    ]
  }}
}}
"#
    )
}

#[test]
fn recommended_permissions_an_exporter_writes_only_its_keys_and_an_importer_only_reads() {
    let bucket = bucket("perm");
    let server = ConfServer::start(&permissions_conf(&bucket));
    let url = server.url();
    let servers = [url.clone()];
    let pid = std::process::id();
    let own = Names { source: format!("hosta.br{pid}-perm"), prefix: format!("hostb{pid}-perm.") };
    let foreign = Names { source: format!("hostb.br{pid}-perm"), prefix: format!("hostb{pid}-perm.") };

    // An administrator creates the buckets (the library API, as `admin`).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut admin_config = Config::new(url.clone());
    admin_config.bucket = bucket.clone();
    admin_config.auth =
        Auth::UserPassword { user: "admin".into(), password_file: server.file("admin.pw", "pw-admin").into() };
    let admin = rt.block_on(shmstate_bridge::connect(&admin_config)).unwrap();

    let exporter_pw = server.file("exporter.pw", "pw-exporter");
    let importer_pw = server.file("importer.pw", "pw-importer");
    let exporter_args = ["--user", "exporter-a", "--password-file", exporter_pw.as_str()];
    let importer_args = ["--user", "importer", "--password-file", importer_pw.as_str()];

    // Its own key, and a snapshot above the max payload (the object store).
    let mut writer = Writer::<Routes>::create(&own.source).unwrap();
    writer.publish(&Routes::new(1, 3 << 18)).unwrap();
    let export = Bridge::spawn(&servers, &bucket, "host-a", &[&exporter_args[..], &["export", &own.source]].concat());
    let import = Bridge::spawn(
        &servers,
        &bucket,
        "host-b",
        &[&importer_args[..], &["import", "--prefix", &own.prefix]].concat(),
    );
    let logs = || format!("exporter:\n{}\nimporter:\n{}\nserver:\n{}", export.log(), import.log(), server.log());
    eventually(DEADLINE, logs, || (mirror_value(&own.mirror())? == Routes::new(1, 3 << 18)).then_some(()));
    writer.publish(&Routes::new(2, 10)).unwrap();
    eventually(DEADLINE, logs, || (mirror_value(&own.mirror())? == Routes::new(2, 10)).then_some(()));

    // Another host's key: the server refuses the write and the bridge says so.
    let mut foreign_writer = Writer::<Routes>::create(&foreign.source).unwrap();
    foreign_writer.publish(&Routes::new(1, 10)).unwrap();
    let stray =
        Bridge::spawn(&servers, &bucket, "host-a", &[&exporter_args[..], &["export", &foreign.source]].concat());
    let refused = format!("key {:?} of bucket {bucket:?} is outside this user's permissions", foreign.source);
    eventually(DEADLINE, || stray.log(), || stray.log().contains(&refused).then_some(()));
    // The write itself is refused too, not only the read before it.
    let mut exporter_config = Config::new(url.clone());
    exporter_config.bucket = bucket.clone();
    exporter_config.auth = Auth::UserPassword { user: "exporter-a".into(), password_file: PathBuf::from(&exporter_pw) };
    let exporter = rt.block_on(shmstate_bridge::connect(&exporter_config)).unwrap();
    assert!(rt.block_on(exporter.kv.put(&foreign.source, "stray".into())).is_err(), "a write outside hosta.*");
    assert_eq!(rt.block_on(admin.kv.get(&foreign.source)).unwrap(), None, "the refused write landed");

    // The importer's credentials cannot write at all.
    let mut importer_config = Config::new(url.clone());
    importer_config.bucket = bucket.clone();
    importer_config.auth = Auth::UserPassword { user: "importer".into(), password_file: PathBuf::from(&importer_pw) };
    let importer = rt.block_on(shmstate_bridge::connect(&importer_config)).unwrap();
    let put = rt.block_on(importer.kv.put(&own.source, "stray".into()));
    assert!(put.is_err(), "the importer wrote a key");
    let value = rt.block_on(admin.kv.get(&own.source)).unwrap().expect("the exporter's value");
    assert_ne!(&value[..], b"stray");
    assert!(!export.log().contains("pw-") && !import.log().contains("pw-"), "{}", logs());
}
