//! One TLS connection as a sans-IO layer: TLS bytes in, plaintext out to the stream; the
//! stream's plaintext in, TLS bytes out to the socket. rustls' own state machine
//! (`read_tls` / `process_new_packets` / `reader` / `writer` / `write_tls`), nothing more: the
//! caller moves every byte, so the runtime and the poll(2) tools share it.
//!
//! Output is not bounded here: the stream above bounds what it writes, and rustls' own
//! buffer limit is lifted so that a write of the stream's output is never cut short.

use super::failure::{can_start_record, classify, TlsFailure};
use super::material::Dial;
use rustls::{ClientConnection, Connection, ServerConnection};
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;

/// Plaintext read from rustls at a time.
const PLAIN_CHUNK: usize = 16 * 1024;

/// What the peer's bytes did to the connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Fed {
    Open,
    /// The peer sent `close_notify`: no more plaintext will come.
    PeerClosed,
}

pub struct Session {
    conn: Connection,
    /// Whether any byte of the peer's arrived yet (the first says whether it speaks TLS).
    heard: bool,
    scratch: Box<[u8]>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("handshaking", &self.conn.is_handshaking())
            .finish()
    }
}

impl Session {
    fn new(mut conn: Connection) -> Session {
        conn.set_buffer_limit(None);
        Session {
            conn,
            heard: false,
            scratch: vec![0; PLAIN_CHUNK].into_boxed_slice(),
        }
    }

    /// The accepting side, for a TLS listener.
    pub fn server(config: Arc<rustls::ServerConfig>) -> Result<Session, TlsFailure> {
        let conn = ServerConnection::new(config).map_err(|e| classify(&e))?;
        Ok(Session::new(conn.into()))
    }

    /// The dialing side; its ClientHello is ready to write at once.
    pub fn client(dial: &Dial) -> Result<Session, TlsFailure> {
        let conn = ClientConnection::new(dial.config.clone(), dial.name.clone())
            .map_err(|e| classify(&e))?;
        Ok(Session::new(conn.into()))
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Whether TLS bytes wait to be written ([`Session::take_tls`]).
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Feeds bytes read from the socket; every piece of plaintext they complete goes to
    /// `plain`, in order, however the records were split across reads.
    pub fn receive(
        &mut self,
        mut data: &[u8],
        mut plain: impl FnMut(&[u8]),
    ) -> Result<Fed, TlsFailure> {
        if !self.heard {
            if let Some(&first) = data.first() {
                self.heard = true;
                if !can_start_record(first) {
                    return Err(TlsFailure::PlaintextPeer);
                }
            }
        }
        let mut fed = Fed::Open;
        while !data.is_empty() {
            let n = self
                .conn
                .read_tls(&mut data)
                .map_err(|e| TlsFailure::Handshake(format!("TLS input refused: {e}")))?;
            let state = self.conn.process_new_packets().map_err(|e| classify(&e))?;
            loop {
                match self.conn.reader().read(&mut self.scratch) {
                    Ok(0) => {
                        fed = Fed::PeerClosed;
                        break;
                    }
                    Ok(n) => plain(&self.scratch[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(TlsFailure::Handshake(e.to_string())),
                }
            }
            if state.peer_has_closed() {
                fed = Fed::PeerClosed;
            }
            if n == 0 {
                break;
            }
        }
        Ok(fed)
    }

    /// Encrypts stream output (buffered until the handshake completes).
    pub fn send(&mut self, plain: &[u8]) {
        // The buffer limit is lifted (see `new`): the write takes everything.
        let _ = self.conn.writer().write_all(plain);
    }

    /// Appends every TLS byte ready to go to `out`.
    pub fn take_tls(&mut self, out: &mut Vec<u8>) {
        while self.conn.wants_write() {
            if self.conn.write_tls(out).is_err() {
                break;
            }
        }
    }

    /// Queues `close_notify` (then [`Session::take_tls`]).
    pub fn close(&mut self) {
        self.conn.send_close_notify();
    }
}

/// A connected pair over memory with its handshake done, (dialer, acceptor), on a fresh
/// self-signed certificate for `localhost`: for the session's tests and the TLS benchmark.
#[cfg(any(test, feature = "test-support"))]
pub fn memory_pair() -> (Session, Session) {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let der = CertificateDer::from(cert.der().to_vec());
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], private)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let dial = Dial {
        config: Arc::new(client),
        name: ServerName::try_from("localhost").unwrap(),
    };
    let mut c = Session::client(&dial).unwrap();
    let mut s = Session::server(Arc::new(server)).unwrap();
    for _ in 0..8 {
        let mut out = Vec::new();
        c.take_tls(&mut out);
        s.receive(&out, |_| {}).unwrap();
        let mut back = Vec::new();
        s.take_tls(&mut back);
        c.receive(&back, |_| {}).unwrap();
    }
    assert!(!c.is_handshaking() && !s.is_handshaking());
    (c, s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::wire::{Frame, Framer, Limits};
    use proptest::prelude::*;
    use rustls_pki_types::ServerName;

    use super::memory_pair as pair;

    const HEADER: &[u8] = b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='a'>";

    fn stanzas(n: usize, body: &str) -> Vec<u8> {
        let mut out = HEADER.to_vec();
        for i in 0..n {
            out.extend_from_slice(
                format!("<iq type='set' id='e{i}' from='r' to='g'><x>{body}{i}</x></iq>")
                    .as_bytes(),
            );
        }
        out
    }

    /// What the framer makes of plaintext delivered in the given pieces.
    fn frames(pieces: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut framer = Framer::new(Limits::default());
        let mut out = Vec::new();
        for piece in pieces {
            framer.feed(piece);
            while let Ok(Some(frame)) = framer.next_frame() {
                if let Frame::Stanza(s) = frame {
                    out.push(s.bytes().to_vec());
                }
            }
        }
        out
    }

    /// TLS records of `plain`, written in `writes` pieces by the sender.
    fn records(c: &mut Session, plain: &[u8], writes: usize) -> Vec<u8> {
        let step = plain.len().div_ceil(writes.max(1)).max(1);
        let mut wire = Vec::new();
        for chunk in plain.chunks(step) {
            c.send(chunk);
            c.take_tls(&mut wire);
        }
        wire
    }

    /// Feeds `wire` to `s` cut at `cuts`; the plaintext pieces as they came out.
    fn deliver(s: &mut Session, wire: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut pieces = Vec::new();
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&wire.len())) {
            let cut = cut.clamp(at, wire.len());
            s.receive(&wire[at..cut], |p| pieces.push(p.to_vec()))
                .unwrap();
            at = cut;
        }
        pieces
    }

    #[test]
    fn records_cut_at_every_offset_give_the_same_stanzas() {
        let plain = stanzas(6, "hello");
        let expected = frames(std::slice::from_ref(&plain));
        assert_eq!(expected.len(), 6);
        let (mut c, _) = pair();
        let wire = records(&mut c, &plain, 3);
        for cut in 0..=wire.len() {
            let (mut c, mut s) = pair();
            let wire = records(&mut c, &plain, 3);
            let pieces = deliver(&mut s, &wire, &[cut]);
            assert_eq!(pieces.concat(), plain, "cut at {cut}");
            assert_eq!(frames(&pieces), expected, "cut at {cut}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn any_cuts_and_writes_give_the_same_stanzas(
            n in 1usize..40,
            body in "[a-z &amp;]{0,300}",
            writes in 1usize..9,
            mut cuts in proptest::collection::vec(0usize..60_000, 0..12),
        ) {
            let body = body.replace('&', "&amp;");
            let plain = stanzas(n, &body);
            let expected = frames(std::slice::from_ref(&plain));
            let (mut c, mut s) = pair();
            let wire = records(&mut c, &plain, writes);
            cuts.sort_unstable();
            let pieces = deliver(&mut s, &wire, &cuts);
            prop_assert_eq!(pieces.concat(), plain);
            prop_assert_eq!(frames(&pieces), expected);
        }
    }

    #[test]
    fn plaintext_first_is_named_and_close_notify_is_seen() {
        let (mut c, mut s) = pair();
        c.close();
        let mut wire = Vec::new();
        c.take_tls(&mut wire);
        assert_eq!(s.receive(&wire, |_| {}), Ok(Fed::PeerClosed));
        let (mut c, _) = pair();
        let fresh = Session::client(&Dial {
            config: match &c.conn {
                Connection::Client(_) => pair_client_config(),
                Connection::Server(_) => unreachable!(),
            },
            name: ServerName::try_from("localhost").unwrap(),
        });
        let mut fresh = fresh.unwrap();
        c.close();
        assert_eq!(
            fresh.receive(b"<stream:stream>", |_| {}),
            Err(TlsFailure::PlaintextPeer)
        );
    }

    fn pair_client_config() -> Arc<rustls::ClientConfig> {
        Arc::new(
            rustls::ClientConfig::builder_with_provider(crate::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        )
    }
}
