//! `palisade reload`: asks a running gateway to reload its configuration file, through its
//! admin endpoint (`POST /reload`, which answers with the outcome) or by SIGHUP to its PID.
//! It only asks and reports: the reload itself is the running gateway's (`runtime/reload.rs`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// What the gateway said about the reload.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The file is in force.
    pub ok: bool,
    /// The configuration generation now in force.
    pub generation: u64,
    /// The gateway's one-line account: what changed, or why nothing did.
    pub message: String,
}

/// Why the request got no outcome.
#[derive(Debug)]
pub enum ReloadError {
    /// The endpoint could not be reached or the exchange broke off.
    Io(std::io::Error),
    /// The endpoint answered something that is not a reload outcome (an older gateway, or not
    /// a gateway).
    Unexpected(String),
    /// The signal could not be sent.
    Signal(u32, std::io::Error),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::Io(e) => write!(f, "cannot reach the admin endpoint: {e}"),
            ReloadError::Unexpected(what) => {
                write!(
                    f,
                    "the admin endpoint did not answer with a reload outcome: {what}"
                )
            }
            ReloadError::Signal(pid, e) => write!(f, "cannot send SIGHUP to process {pid}: {e}"),
        }
    }
}

impl std::error::Error for ReloadError {}

/// `POST /reload` at `addr`; waits for the gateway to finish the reload.
pub fn request(addr: SocketAddr) -> Result<Outcome, ReloadError> {
    let mut tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(ReloadError::Io)?;
    // Reading and checking a large file takes a moment; the gateway answers when it is done.
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(ReloadError::Io)?;
    write!(
        tcp,
        "POST /reload HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(ReloadError::Io)?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).map_err(ReloadError::Io)?;
    parse_response(&String::from_utf8_lossy(&raw))
}

/// The outcome in an HTTP response from `POST /reload`.
pub fn parse_response(text: &str) -> Result<Outcome, ReloadError> {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let status = head.lines().next().unwrap_or("").to_owned();
    let json: serde_json::Value =
        serde_json::from_str(body.trim()).map_err(|_| ReloadError::Unexpected(status.clone()))?;
    match (
        json["ok"].as_bool(),
        json["generation"].as_u64(),
        json["message"].as_str(),
    ) {
        (Some(ok), Some(generation), Some(message)) => Ok(Outcome {
            ok,
            generation,
            message: message.to_owned(),
        }),
        _ => Err(ReloadError::Unexpected(status)),
    }
}

/// Sends SIGHUP to `pid`.
pub fn signal(pid: u32) -> Result<(), ReloadError> {
    let target = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| {
            ReloadError::Signal(pid, std::io::Error::from(std::io::ErrorKind::InvalidInput))
        })?;
    // SAFETY: kill(2) takes plain integers and has no memory effects in this process.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(target, libc::SIGHUP) };
    if sent != 0 {
        return Err(ReloadError::Signal(pid, std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_is_read_from_the_json_body_whatever_the_status() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n\
                  {\"ok\":true,\"generation\":3,\"message\":\"Configuration reloaded\"}";
        assert_eq!(
            parse_response(ok).unwrap(),
            Outcome {
                ok: true,
                generation: 3,
                message: "Configuration reloaded".into()
            }
        );
        let refused = "HTTP/1.1 422 Unprocessable Content\r\n\r\n\
                       {\"ok\":false,\"generation\":0,\"message\":\"NOT reloaded\"}\n";
        assert!(!parse_response(refused).unwrap().ok);
        assert!(matches!(
            parse_response("HTTP/1.1 404 Not Found\r\n\r\ntry /metrics"),
            Err(ReloadError::Unexpected(s)) if s.contains("404")
        ));
    }

    #[test]
    fn a_pid_that_is_not_a_process_is_an_error() {
        assert!(signal(0).is_err());
        assert!(signal(u32::MAX).is_err());
    }
}
