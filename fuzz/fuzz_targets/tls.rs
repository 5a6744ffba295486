//! Arbitrary bytes from a peer through the TLS layer the gateway puts in front of a stream: as
//! the accepting side (a TLS listener: the peer's ClientHello and records) and as the dialing
//! side (the server's answer to our ClientHello), cut into reads where the input says. It must
//! never panic; a refusal is an error value, and after one the session is not fed again (as
//! the connection task does: it closes).
//!
//! Input layout: byte 0 picks the side (even: accepting, odd: dialing), byte 1 where to cut;
//! the rest is what the peer sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_tls::{Dial, Session};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::sync::{Arc, OnceLock};

struct Configs {
    server: Arc<rustls::ServerConfig>,
    dial: Dial,
}

fn configs() -> &'static Configs {
    static C: OnceLock<Configs> = OnceLock::new();
    C.get_or_init(|| {
        let cert = rcgen::generate_simple_self_signed(vec!["gateway.test".to_string()])
            .expect("a test certificate");
        let der = CertificateDer::from(cert.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
        let server = rustls::ServerConfig::builder_with_provider(palisade_tls::provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .expect("server config");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).expect("root");
        let client = rustls::ClientConfig::builder_with_provider(palisade_tls::provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Configs {
            server: Arc::new(server),
            dial: Dial {
                config: Arc::new(client),
                name: ServerName::try_from("gateway.test").expect("name"),
            },
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let [side, cut, peer @ ..] = data else { return };
    let c = configs();
    let mut session = if side % 2 == 0 {
        Session::server(c.server.clone()).expect("a server session")
    } else {
        Session::client(&c.dial).expect("a client session")
    };
    let mut out = Vec::new();
    session.take_tls(&mut out);
    let at = usize::from(*cut).min(peer.len());
    let mut plain = 0usize;
    for read in [&peer[..at], &peer[at..]] {
        match session.receive(read, |p| plain += p.len()) {
            Ok(_) => {
                session.take_tls(&mut out);
            }
            Err(failure) => {
                // Every refusal has a metrics label.
                let _ = failure.reason();
                return;
            }
        }
    }
    // Nobody completed a handshake with random bytes: no plaintext can have come out.
    assert_eq!(plain, 0, "plaintext without a handshake");
    session.send(b"<stream:stream>");
    session.close();
    session.take_tls(&mut out);
});
