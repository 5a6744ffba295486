//! A minimal blocking HTTP GET for the admin endpoint (no dependency for two requests).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Why a GET failed.
#[derive(Debug)]
pub enum GetError {
    Connect(std::io::Error),
    Io(std::io::Error),
    /// The endpoint answered something that is not HTTP/1.x 200.
    Status(String),
}

impl std::fmt::Display for GetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GetError::Connect(e) => write!(f, "cannot reach the admin endpoint: {e}"),
            GetError::Io(e) => write!(f, "admin endpoint I/O failed: {e}"),
            GetError::Status(line) => write!(f, "admin endpoint answered: {line}"),
        }
    }
}

impl std::error::Error for GetError {}

/// The body of `GET path` at `addr`.
pub fn get(addr: SocketAddr, path: &str) -> Result<String, GetError> {
    let mut tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(GetError::Connect)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(GetError::Io)?;
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(GetError::Io)?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).map_err(GetError::Io)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 200 ") {
        return Err(GetError::Status(status.to_owned()));
    }
    Ok(body.to_owned())
}
