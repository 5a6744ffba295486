//! TLS on every leg, against the real binary: routers over TLS (with and without mutual TLS),
//! compliance servers dialed over TLS, every named failure (logged and counted), a reload of
//! the certificate, check-config's file checks, and Python's `ssl` (OpenSSL) as a router and
//! as a compliance server.

use crate::support;
use palisade_tls::Dial;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use support::*;

/// A test CA and the certificates it signs, written as PEM files in a directory of their own.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    dir: PathBuf,
    name: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let dir = std::env::temp_dir().join(format!(
            "palisade-tls-{}-{name}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Palisade test CA {name}"));
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        Ca {
            cert,
            key,
            dir,
            name: name.to_owned(),
        }
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A leaf for `names`, valid now (or expired), written as `{file}.pem` / `{file}.key`.
    fn leaf(&self, file: &str, names: &[&str], expired: bool) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{file} ({})", self.name));
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let (c, k) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    palisade_tls::provider()
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn key(path: &Path) -> PrivateKeyDer<'static> {
    use rustls_pki_types::pem::PemObject;
    PrivateKeyDer::from_pem_file(path).unwrap()
}

/// A client configuration trusting `ca`, presenting `identity` if given.
fn dial(ca: &Path, name: &str, identity: Option<(&Path, &Path)>) -> Dial {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(certs(ca));
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((c, k)) => builder.with_client_auth_cert(certs(c), key(k)).unwrap(),
        None => builder.with_no_client_auth(),
    };
    Dial {
        config: Arc::new(config),
        name: ServerName::try_from(name.to_owned()).unwrap(),
    }
}

/// A server configuration presenting `cert`, requiring clients signed by `client_ca` if given.
fn server_tls(cert: &Path, k: &Path, client_ca: Option<&Path>) -> Arc<rustls::ServerConfig> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(certs(ca));
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(builder.with_single_cert(certs(cert), key(k)).unwrap())
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// A gateway configuration with TLS listeners (`[tls]` from `cert`/`key`, optional
/// `client_ca`) on `tls_port` (routers) and the given servers.
fn tls_config(tls_port: u16, tls: &str, servers: &str) -> String {
    format!(
        r#"
[gateway]
name = "{GATEWAY}"
domain = "example.com"
shards = 1
admin = "127.0.0.1:{{ADMIN_PORT}}"

[listen]
routers = "127.0.0.1:{{ROUTER_PORT}}"
routers_tls = "127.0.0.1:{tls_port}"

{tls}

[timers]
{FAST_TIMERS}

[[router]]
name = "{ROUTER}"
secret = "{ROUTER_SECRET}"

{servers}
"#
    )
}

fn listener_tls(cert: &Path, key: &Path, client_ca: Option<&Path>) -> String {
    let ca = client_ca.map_or(String::new(), |c| format!("client_ca = \"{}\"\n", p(c)));
    format!("[tls]\ncert = \"{}\"\nkey = \"{}\"\n{ca}", p(cert), p(key))
}

fn tls_server_block(port: u16, extra: &str) -> String {
    format!(
        "{}tls = true\n{extra}",
        server_block("cs1", port, "SystemDefaultComplianceProfile")
    )
}

fn metric(gw: &Gateway, reason: &str) -> u64 {
    let body = gw.admin_get("/metrics", 5 * SECOND).unwrap_or_default();
    let needle = format!("palisade_tls_failures_total{{reason=\"{reason}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn wait_metric(gw: &Gateway, reason: &str) -> u64 {
    let deadline = std::time::Instant::now() + 5 * SECOND;
    loop {
        let n = metric(gw, reason);
        if n > 0 || std::time::Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tls_addr(port: u16) -> std::net::SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

fn wait_listening(port: u16) {
    for _ in 0..500 {
        if TcpStream::connect(tls_addr(port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("port {port} never listened");
}

/// The gateway and the servers it dials, every leg over TLS (the server requires the
/// gateway's client certificate): events get their verdicts as on plain legs.
#[test]
fn every_leg_over_tls_with_mutual_tls_both_ways() {
    let ca = Ca::new("main");
    let (gw_cert, gw_key) = ca.leaf("gateway", &["localhost", "palisade.example.com"], false);
    let (cs_cert, cs_key) = ca.leaf("cs1", &["cs1.example.com"], false);
    let (client_cert, client_key) = ca.leaf("router", &["imp1.example.com"], false);
    let port = free_port();
    let server = TestServer::start_with_tls(
        port,
        &component("cs1"),
        "pw-cs1",
        Some(server_tls(&cs_cert, &cs_key, Some(&ca.ca_path()))),
    );
    let tls_port = free_port();
    let extra = format!(
        "ca = \"{}\"\ntls_name = \"cs1.example.com\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
        p(&ca.ca_path()),
        p(&gw_cert),
        p(&gw_key)
    );
    let gw = Gateway::start(&tls_config(
        tls_port,
        &listener_tls(&gw_cert, &gw_key, Some(&ca.ca_path())),
        &tls_server_block(port, &extra),
    ));
    wait_listening(tls_port);
    assert!(server.wait_streams(1, 5 * SECOND), "log:\n{}", gw.log.all());
    let identity = Some((client_cert.as_path(), client_key.as_path()));
    let mut router = TestRouter::connect_tls(
        tls_addr(tls_port),
        ROUTER,
        ROUTER_SECRET,
        &dial(&ca.ca_path(), "localhost", identity),
    )
    .unwrap_or_else(|e| panic!("{e}; log:\n{}", gw.log.all()));
    for i in 0..20 {
        let id = router.chat("alice", "bob", &format!("over TLS {i}"));
        assert!(router.verdict_for(&id, 5 * SECOND).is("pass"));
    }
    assert_eq!(server.request_count(), 20);
    assert!(server.requests()[0].stanza.contains("over TLS 0"));
    // Mutual TLS refuses a router without a certificate, and one signed by another CA.
    let none = TestRouter::connect_tls(
        tls_addr(tls_port),
        ROUTER,
        ROUTER_SECRET,
        &dial(&ca.ca_path(), "localhost", None),
    );
    assert!(none.is_err());
    assert!(
        wait_metric(&gw, "no_client_certificate") >= 1,
        "{}",
        gw.log.all()
    );
    let other = Ca::new("other");
    let (oc, ok) = other.leaf("intruder", &["imp1.example.com"], false);
    let intruder = TestRouter::connect_tls(
        tls_addr(tls_port),
        ROUTER,
        ROUTER_SECRET,
        &dial(
            &ca.ca_path(),
            "localhost",
            Some((oc.as_path(), ok.as_path())),
        ),
    );
    assert!(intruder.is_err());
    assert!(wait_metric(&gw, "verification") >= 1, "{}", gw.log.all());
    assert!(gw.log.wait_for("failed (verification)", 5 * SECOND));
    // The plain router port still serves.
    let mut plain = TestRouter::connect(&gw);
    let id = plain.chat("carol", "dave", "plain");
    assert!(plain.verdict_for(&id, 5 * SECOND).is("pass"));
}

/// The gateway refuses a compliance server whose certificate is wrong: each reason is logged
/// once per attempt, counted, and the server never becomes ACTIVE (events fail at once).
#[test]
fn failed_verification_of_a_server_is_named_and_counted() {
    let ca = Ca::new("main");
    let other = Ca::new("other");
    let cases = [
        (
            "name_mismatch",
            ca.leaf("wrongname", &["elsewhere.example.com"], false),
        ),
        ("expired", ca.leaf("expired", &["cs1.example.com"], true)),
        (
            "verification",
            other.leaf("unknown", &["cs1.example.com"], false),
        ),
    ];
    for (reason, (cert, key)) in cases {
        let port = free_port();
        let server = TestServer::start_with_tls(
            port,
            &component("cs1"),
            "pw-cs1",
            Some(server_tls(&cert, &key, None)),
        );
        let extra = format!(
            "ca = \"{}\"\ntls_name = \"cs1.example.com\"\n",
            p(&ca.ca_path())
        );
        let gw = Gateway::start(&config(1, FAST_TIMERS, &tls_server_block(port, &extra)));
        assert!(
            gw.log.wait_for(&format!("failed ({reason})"), 5 * SECOND),
            "{reason}: log:\n{}",
            gw.log.all()
        );
        assert!(gw.log.wait_for("is GONE (TLS:", 5 * SECOND));
        assert!(wait_metric(&gw, reason) >= 1, "{reason}");
        assert_eq!(server.streams.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert!(!gw
            .log
            .all()
            .contains(&format!("{} is ACTIVE", component("cs1"))));
        let mut router = TestRouter::connect(&gw);
        let id = router.chat("alice", "bob", "nobody judges this");
        assert!(router.verdict_for(&id, 5 * SECOND).is("bounce"));
    }
}

/// A server that requires a client certificate refuses a gateway that has none configured:
/// the gateway names it (`refused_by_peer`) and keeps redialing.
#[test]
fn a_server_requiring_mutual_tls_refuses_a_gateway_without_a_certificate() {
    let ca = Ca::new("main");
    let (cs_cert, cs_key) = ca.leaf("cs1", &["localhost"], false);
    let port = free_port();
    let server = TestServer::start_with_tls(
        port,
        &component("cs1"),
        "pw-cs1",
        Some(server_tls(&cs_cert, &cs_key, Some(&ca.ca_path()))),
    );
    let extra = format!("ca = \"{}\"\ntls_name = \"localhost\"\n", p(&ca.ca_path()));
    let gw = Gateway::start(&config(1, FAST_TIMERS, &tls_server_block(port, &extra)));
    assert!(
        gw.log.wait_count("failed (refused_by_peer)", 2, 5 * SECOND),
        "log:\n{}",
        gw.log.all()
    );
    assert!(wait_metric(&gw, "refused_by_peer") >= 2);
    assert_eq!(server.streams.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// Bytes that are not TLS on a TLS port close the connection without a single byte of answer;
/// a TLS ClientHello on a plain port closes it too. Both are named and counted.
#[test]
fn plaintext_on_a_tls_port_and_tls_on_a_plain_port() {
    let ca = Ca::new("main");
    let (gw_cert, gw_key) = ca.leaf("gateway", &["localhost"], false);
    let tls_port = free_port();
    let gw = Gateway::start(&tls_config(
        tls_port,
        &listener_tls(&gw_cert, &gw_key, None),
        "",
    ));
    wait_listening(tls_port);
    let mut tcp = TcpStream::connect(tls_addr(tls_port)).unwrap();
    tcp.write_all(format!("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='{ROUTER}'>").as_bytes()).unwrap();
    tcp.set_read_timeout(Some(5 * SECOND)).unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    assert!(
        answer.is_empty(),
        "answered {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(wait_metric(&gw, "plaintext_peer") >= 1, "{}", gw.log.all());
    assert!(gw.log.wait_for("failed (plaintext_peer)", 5 * SECOND));

    let tried = TestRouter::connect_tls(
        gw.router_addr,
        ROUTER,
        ROUTER_SECRET,
        &dial(&ca.ca_path(), "localhost", None),
    );
    assert!(tried.is_err());
    assert!(
        wait_metric(&gw, "tls_on_plain_port") >= 1,
        "{}",
        gw.log.all()
    );
    // Both ports still serve their own kind.
    let mut router = TestRouter::connect_tls(
        tls_addr(tls_port),
        ROUTER,
        ROUTER_SECRET,
        &dial(&ca.ca_path(), "localhost", None),
    )
    .unwrap();
    let id = router.chat("alice", "bob", "fine");
    assert!(router.verdict_for(&id, 5 * SECOND).is("pass"));
}

/// A dial with `tls = true` to a plain server is a plaintext peer, named and counted.
#[test]
fn a_tls_dial_to_a_plain_server() {
    let ca = Ca::new("main");
    let port = free_port();
    let _server = TestServer::start(port, &component("cs1"), "pw-cs1");
    let extra = format!("ca = \"{}\"\n", p(&ca.ca_path()));
    let gw = Gateway::start(&config(1, FAST_TIMERS, &tls_server_block(port, &extra)));
    assert!(
        gw.log.wait_for("failed (plaintext_peer)", 5 * SECOND),
        "log:\n{}",
        gw.log.all()
    );
}

/// SIGHUP reads the certificate again: new connections get the new one, a stream already up
/// keeps going, and a bad file changes nothing.
#[test]
fn sighup_reloads_the_certificate() {
    let first = Ca::new("first");
    let second = Ca::new("second");
    let (c1, k1) = first.leaf("gateway", &["localhost"], false);
    let tls_port = free_port();
    let dir = first.dir.join("live");
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::copy(&c1, &cert).unwrap();
    std::fs::copy(&k1, &key).unwrap();
    let text = tls_config(tls_port, &listener_tls(&cert, &key, None), "");
    let gw = Gateway::start(&text);
    wait_listening(tls_port);
    let mut old = TestRouter::connect_tls(
        tls_addr(tls_port),
        ROUTER,
        ROUTER_SECRET,
        &dial(&first.ca_path(), "localhost", None),
    )
    .unwrap();
    let (c2, k2) = second.leaf("gateway", &["localhost"], false);
    std::fs::copy(&c2, &cert).unwrap();
    std::fs::copy(&k2, &key).unwrap();
    let outcome = gw.reload(&text);
    assert!(outcome.contains("Configuration reloaded"), "{outcome}");
    let new = TestRouter::connect_tls(
        tls_addr(tls_port),
        "imp2.example.com",
        ROUTER_SECRET,
        &dial(&second.ca_path(), "localhost", None),
    );
    // imp2 is not configured: the stream is refused after TLS, which proves TLS worked.
    assert!(
        matches!(&new, Err(e) if e.contains("Closed")),
        "{:?}",
        new.err()
    );
    let refused = TestRouter::connect_tls(
        tls_addr(tls_port),
        ROUTER,
        ROUTER_SECRET,
        &dial(&first.ca_path(), "localhost", None),
    );
    assert!(refused.is_err(), "the old certificate is still served");
    let id = old.chat("alice", "bob", "still up");
    assert!(old.verdict_for(&id, 5 * SECOND).is("pass"));
    // A key that does not match: the reload is refused, the second certificate stays.
    std::fs::copy(&k1, &key).unwrap();
    let outcome = gw.reload(&text);
    assert!(outcome.contains("NOT reloaded"), "{outcome}");
    assert!(gw.log.all().contains("does not match the certificate"));
    let still = TestRouter::connect_tls(
        tls_addr(tls_port),
        ROUTER,
        ROUTER_SECRET,
        &dial(&second.ca_path(), "localhost", None),
    );
    assert!(still.is_ok(), "{:?}", still.err());
}

fn check_config(text: &str) -> (String, i32) {
    let dir = std::env::temp_dir().join(format!("palisade-tls-check-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("palisade.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn check_config_checks_the_files() {
    let ca = Ca::new("main");
    let (cert, key) = ca.leaf("gateway", &["localhost"], false);
    let (_, other_key) = ca.leaf("other", &["localhost"], false);
    let body = |cert: &Path, key: &Path| {
        format!(
            "[gateway]\nname = \"{GATEWAY}\"\n[listen]\nrouters_tls = \"127.0.0.1:5285\"\n\
             [tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            p(cert),
            p(key)
        )
    };
    let (out, code) = check_config(&body(&cert, &key));
    assert_eq!(code, 0, "{out}");
    let (out, code) = check_config(&body(&cert, &other_key));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(":7:7: error: `key`: the key in"), "{out}");
    assert!(out.contains("does not match the certificate"), "{out}");
    let (out, code) = check_config(&body(Path::new("/nonexistent/cert.pem"), &key));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(":6:8: error: `cert`: cannot read /nonexistent/cert.pem"),
        "{out}"
    );
    let (out, code) = check_config(&body(&key, &key));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("holds no certificate"), "{out}");
    // Expiring within 30 days: a warning, still valid.
    let soon_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let in_ten_days = time::OffsetDateTime::now_utc() + time::Duration::days(10);
    params.not_after = in_ten_days;
    let soon = params.signed_by(&soon_key, &ca.cert, &ca.key).unwrap();
    let (sc, sk) = (ca.dir.join("soon.pem"), ca.dir.join("soon.key"));
    std::fs::write(&sc, soon.pem()).unwrap();
    std::fs::write(&sk, soon_key.serialize_pem()).unwrap();
    let (out, code) = check_config(&body(&sc, &sk));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(":6:8: warning: `cert`: the certificate in"),
        "{out}"
    );
    assert!(
        out.contains("expires in 9 day(s)") || out.contains("expires in 10 day(s)"),
        "{out}"
    );
}

/// Python's `ssl` (OpenSSL) on both legs: as a compliance server the gateway dials with TLS,
/// and as a router dialing the gateway's TLS port. A missing python3 fails the test under
/// `PALISADE_INTEROP_REQUIRED=1` (CI) and skips it otherwise.
#[test]
fn interop_with_python_ssl_as_router_and_as_compliance_server() {
    if std::process::Command::new("python3")
        .arg("-c")
        .arg("import ssl")
        .status()
        .map_or(true, |s| !s.success())
    {
        assert!(
            std::env::var_os("PALISADE_INTEROP_REQUIRED").is_none(),
            "python3 with ssl is required"
        );
        eprintln!("SKIPPED: python3 with ssl not found");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/tls_peer.py");
    let ca = Ca::new("main");
    let (gw_cert, gw_key) = ca.leaf("gateway", &["localhost"], false);
    let (cs_cert, cs_key) = ca.leaf("cs1", &["cs1.example.com"], false);
    let port = free_port();
    let mut server = std::process::Command::new("python3")
        .args([
            script,
            "server",
            &port.to_string(),
            &p(&cs_cert),
            &p(&cs_key),
        ])
        .arg(component("cs1"))
        .arg("pw-cs1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut lines, &mut line).unwrap();
    assert_eq!(line.trim(), "listening");
    let tls_port = free_port();
    let extra = format!(
        "ca = \"{}\"\ntls_name = \"cs1.example.com\"\n",
        p(&ca.ca_path())
    );
    let gw = Gateway::start(&tls_config(
        tls_port,
        &listener_tls(&gw_cert, &gw_key, None),
        &tls_server_block(port, &extra),
    ));
    assert!(
        gw.log
            .wait_for(&format!("{} is ACTIVE", component("cs1")), 10 * SECOND),
        "log:\n{}",
        gw.log.all()
    );
    let out = std::process::Command::new("python3")
        .args([script, "router", &tls_port.to_string(), &p(&ca.ca_path())])
        .args(["localhost", ROUTER, ROUTER_SECRET, GATEWAY])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("verdict pass"),
        "router said {stdout:?} {:?}; log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.log.all()
    );
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut lines, &mut rest);
    assert!(
        rest.contains("active") && rest.contains("request g"),
        "{rest}"
    );
}

/// `palisade troubleshoot` has a TLS step: green with a verified chain and name, red with the
/// step that failed (here the name) and its hint.
#[test]
fn troubleshoot_reports_the_tls_step() {
    let ca = Ca::new("main");
    let (cs_cert, cs_key) = ca.leaf("cs1", &["cs1.example.com"], false);
    let port = free_port();
    let _server = TestServer::start_with_tls(
        port,
        &component("cs1"),
        "pw-cs1",
        Some(server_tls(&cs_cert, &cs_key, None)),
    );
    let run = |name: &str| {
        let extra = format!("ca = \"{}\"\ntls_name = \"{name}\"\n", p(&ca.ca_path()));
        let text = config(1, FAST_TIMERS, &tls_server_block(port, &extra))
            .replace("{ROUTER_PORT}", &free_port().to_string())
            .replace("{COMPLIANCE_PORT}", &free_port().to_string())
            .replace("{ADMIN_PORT}", &free_port().to_string());
        let path = ca.dir.join(format!("troubleshoot-{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["troubleshoot", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.success(),
        )
    };
    let (out, ok) = run("cs1.example.com");
    assert!(
        ok && out.contains("GREEN") && out.contains("TLS verified"),
        "{out}"
    );
    let (out, ok) = run("other.example.com");
    assert!(!ok, "{out}");
    assert!(out.contains("TLS name failed (name_mismatch)"), "{out}");
    assert!(
        out.contains("hint: the certificate names another host"),
        "{out}"
    );
}

/// The bundled tools speak TLS too: `palisade sim --tls-cert` behind a gateway that dials it
/// with `tls = true`, and `palisade load --tls-ca` on the gateway's `routers_tls`.
#[test]
fn the_simulator_and_the_load_generator_over_tls() {
    let ca = Ca::new("main");
    let (cert, key) = ca.leaf("both", &["localhost"], false);
    let bin = env!("CARGO_BIN_EXE_palisade");
    let mut sim = std::process::Command::new(bin)
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--quiet",
            "--secret",
            "pw-cs1",
        ])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(sim.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let sim_port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    let tls_port = free_port();
    let extra = format!("ca = \"{}\"\ntls_name = \"localhost\"\n", p(&ca.ca_path()));
    let gw = Gateway::start(&tls_config(
        tls_port,
        &listener_tls(&cert, &key, None),
        &tls_server_block(sim_port, &extra),
    ));
    assert!(
        gw.log.wait_for("is ACTIVE", 10 * SECOND),
        "log:\n{}",
        gw.log.all()
    );
    let json = ca.dir.join("load.json");
    let out = std::process::Command::new(bin)
        .args(["load", "--connect", &format!("127.0.0.1:{tls_port}")])
        .args(["--name", ROUTER, "--secret", ROUTER_SECRET, "--quiet"])
        .args(["--events", "300", "--rate", "2000", "--mix", "es_OUT=100"])
        .arg("--tls-ca")
        .arg(ca.ca_path())
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let _ = sim.kill();
    let _ = sim.wait();
    let report = std::fs::read_to_string(&json).unwrap_or_default();
    assert!(
        report.contains("\"answered\": 300"),
        "{report} {} {}; log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        gw.log.all()
    );
}

/// A dial whose TLS fails is an ungraceful failure: a server that went away stays in its
/// outage window while its redials fail verification, events wait for it, and they go out
/// when it is back with a good certificate.
#[test]
fn failed_tls_redials_keep_the_server_in_its_outage_window() {
    let ca = Ca::new("main");
    let (good, good_key) = ca.leaf("good", &["cs1.example.com"], false);
    let (bad, bad_key) = ca.leaf("bad", &["elsewhere.example.com"], false);
    let port = free_port();
    let start = |c: &Path, k: &Path| {
        TestServer::start_with_tls(
            port,
            &component("cs1"),
            "pw-cs1",
            Some(server_tls(c, k, None)),
        )
    };
    let first = start(&good, &good_key);
    let timers = r#"
event_timeout = "5s"
outage_window = "20s"
reconnect_min = "20ms"
reconnect_max = "100ms"
keepalive = "1s"
dead_interval = "3s"
handshake_timeout = "2s"
"#;
    let extra = format!(
        "ca = \"{}\"\ntls_name = \"cs1.example.com\"\n",
        p(&ca.ca_path())
    );
    let gw = Gateway::start(&config(1, timers, &tls_server_block(port, &extra)));
    assert!(first.wait_streams(1, 5 * SECOND), "log:\n{}", gw.log.all());
    first.crash();
    drop(first);
    std::thread::sleep(Duration::from_millis(50));
    let impostor = start(&bad, &bad_key);
    assert!(
        gw.log.wait_for("failed (name_mismatch)", 5 * SECOND),
        "log:\n{}",
        gw.log.all()
    );
    let mut router = TestRouter::connect(&gw);
    let id = router.chat("alice", "bob", "waits for cs1");
    router.expect_silence(Duration::from_millis(500));
    drop(impostor);
    std::thread::sleep(Duration::from_millis(50));
    let back = start(&good, &good_key);
    let v = router.verdict_for(&id, 5 * SECOND);
    assert!(v.is("pass"), "{v:?}; log:\n{}", gw.log.all());
    assert!(back
        .requests()
        .iter()
        .any(|r| r.stanza.contains("waits for cs1")));
}
