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
