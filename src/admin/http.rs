//! Just enough HTTP/1.1 for the admin endpoint: find the end of a request head, read its method
//! and path, and write a complete response (`Connection: close`).

/// Longest request head accepted; the endpoint only serves small GETs.
pub const MAX_HEAD: usize = 8192;

/// Why a request head cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    TooLarge,
    Malformed,
}

/// `Ok(None)` while the head is incomplete; then `(method, path)`.
pub fn parse_head(buf: &[u8]) -> Result<Option<(&str, &str)>, HeadError> {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err(HeadError::TooLarge)
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| HeadError::Malformed)?;
    let line = head.lines().next().ok_or(HeadError::Malformed)?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(path), Some(version)) if version.starts_with("HTTP/1.") => {
            let path = path.split('?').next().unwrap_or(path);
            Ok(Some((method, path)))
        }
        _ => Err(HeadError::Malformed),
    }
}

/// A complete response.
pub fn response(status: u16, reason: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"),
            Ok(None)
        );
        assert_eq!(
            parse_head(b"GET /status?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Some(("GET", "/status")))
        );
        assert_eq!(parse_head(b"junk\r\n\r\n"), Err(HeadError::Malformed));
        assert_eq!(
            parse_head(&vec![b'a'; MAX_HEAD + 1]),
            Err(HeadError::TooLarge)
        );
        let r = response(200, "OK", "text/plain", b"hi");
        assert!(r.starts_with(b"HTTP/1.1 200 OK\r\n") && r.ends_with(b"\r\n\r\nhi"));
    }
}
