//! Just enough HTTP/1.1 for the admin endpoint: find the end of a request head, read its method
//! and path, route it, and write a complete response (`Connection: close`).
//!
//! Peers may be hostile: the head is bounded ([`MAX_HEAD`]), anything that is not a plain
//! request line is refused with 400, and nothing here panics on any input. Request bodies are
//! never read.

/// Longest request head accepted; the endpoint only serves small requests.
pub const MAX_HEAD: usize = 8192;

/// Why a request head cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Longer than [`MAX_HEAD`] (answered 431).
    TooLarge,
    /// Not an HTTP/1.x request line (answered 400).
    Malformed,
}

/// A request method the endpoint knows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    /// Answered as `GET` without the body.
    Head,
    Post,
    /// Any other well-formed method: answered 405.
    Other,
}

impl Method {
    fn parse(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            _ => Method::Other,
        }
    }
}

/// The end of the head: after the blank line (CRLF CRLF, or bare LF LF from sloppy clients).
fn head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = memchr::memmem::find(buf, b"\r\n\r\n").map(|i| (i, i + 4));
    let lf = memchr::memmem::find(buf, b"\n\n").map(|i| (i, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// `Ok(None)` while the head is incomplete; then the method and the path (query dropped).
pub fn parse_head(buf: &[u8]) -> Result<Option<(Method, &str)>, HeadError> {
    let Some((end, after)) = head_end(buf) else {
        return if buf.len() > MAX_HEAD {
            Err(HeadError::TooLarge)
        } else {
            Ok(None)
        };
    };
    if after > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| HeadError::Malformed)?;
    let line = head.lines().next().ok_or(HeadError::Malformed)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    let token = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphabetic());
    let printable = |t: &str| t.bytes().all(|b| b.is_ascii_graphic());
    if !token(method)
        || !target.starts_with('/')
        || !printable(target)
        || !matches!(version, "HTTP/1.0" | "HTTP/1.1")
        || head
            .bytes()
            .any(|b| b.is_ascii_control() && b != b'\r' && b != b'\n' && b != b'\t')
    {
        return Err(HeadError::Malformed);
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    Ok(Some((Method::parse(method), path)))
}

/// What the endpoint serves.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Page {
    /// `/`: the status page for a browser.
    Index,
    Healthz,
    Readyz,
    Metrics,
    Status,
    /// `POST /reload`: reload the configuration file, answer with the outcome.
    Reload,
}

/// One route: its path, the methods it takes (a `GET` route takes `HEAD` too), and what it is,
/// for the 404 hint.
pub struct Route {
    pub path: &'static str,
    pub page: Page,
    pub methods: &'static [Method],
    pub what: &'static str,
}

/// Every route, in the order the 404 hint lists them.
pub const ROUTES: &[Route] = &[
    Route {
        path: "/",
        page: Page::Index,
        methods: &[Method::Get],
        what: "status page for a browser",
    },
    Route {
        path: "/healthz",
        page: Page::Healthz,
        methods: &[Method::Get],
        what: "200 while the process serves",
    },
    Route {
        path: "/readyz",
        page: Page::Readyz,
        methods: &[Method::Get],
        what: "200 when ready to take events, else 503 with the reason",
    },
    Route {
        path: "/metrics",
        page: Page::Metrics,
        methods: &[Method::Get],
        what: "Prometheus text",
    },
    Route {
        path: "/status",
        page: Page::Status,
        methods: &[Method::Get],
        what: "JSON",
    },
    Route {
        path: "/reload",
        page: Page::Reload,
        methods: &[Method::Post],
        what: "reload the configuration file (JSON outcome)",
    },
];

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Routed {
    /// Serve `page`; with `head_only`, the headers of the `GET` answer and no body.
    Serve {
        page: Page,
        head_only: bool,
    },
    NotFound,
    /// The path exists; the `Allow` header value.
    WrongMethod {
        allow: String,
    },
}

pub fn route(method: Method, path: &str) -> Routed {
    let Some(r) = ROUTES.iter().find(|r| r.path == path) else {
        return Routed::NotFound;
    };
    let takes = |m: Method| r.methods.contains(&m);
    match method {
        Method::Head if takes(Method::Get) => Routed::Serve {
            page: r.page,
            head_only: true,
        },
        m if m != Method::Other && m != Method::Head && takes(m) => Routed::Serve {
            page: r.page,
            head_only: false,
        },
        _ => {
            let mut allow: Vec<&str> = Vec::new();
            for m in r.methods {
                match m {
                    Method::Get => allow.extend(["GET", "HEAD"]),
                    Method::Post => allow.push("POST"),
                    Method::Head | Method::Other => {}
                }
            }
            Routed::WrongMethod {
                allow: allow.join(", "),
            }
        }
    }
}

/// The 404 body: every route and what it is.
pub fn not_found_hint(path: &str) -> String {
    let mut out = format!("no page at {path}; the admin endpoint serves:\n");
    for r in ROUTES {
        let methods: Vec<&str> = r
            .methods
            .iter()
            .map(|m| match m {
                Method::Get => "GET",
                Method::Post => "POST",
                Method::Head => "HEAD",
                Method::Other => "",
            })
            .collect();
        out.push_str(&format!(
            "  {:<5} {:<9} {}\n",
            methods.join(","),
            r.path,
            r.what
        ));
    }
    out
}

pub const TEXT: &str = "text/plain; charset=utf-8";
pub const JSON: &str = "application/json; charset=utf-8";
pub const HTML: &str = "text/html; charset=utf-8";
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A complete answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// For 405: the methods the path takes.
    pub allow: Option<String>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
            allow: None,
        }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, TEXT, body.into())
    }

    /// The bytes to write; with `head_only`, the same headers without the body.
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if let Some(allow) = &self.allow {
            out.push_str(&format!("Allow: {allow}\r\n"));
        }
        if self.content_type == HTML {
            // Everything the page needs comes from here: no other origin, no plugins.
            out.push_str("Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:\r\n");
        }
        out.push_str("Connection: close\r\n\r\n");
        let mut out = out.into_bytes();
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// The answer to a head that cannot be served.
pub fn refusal(e: &HeadError) -> Response {
    match e {
        HeadError::TooLarge => Response::text(431, "request head too large\n"),
        HeadError::Malformed => Response::text(400, "bad request: not an HTTP/1.x request\n"),
    }
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
            Ok(Some((Method::Get, "/status")))
        );
        assert_eq!(
            parse_head(b"HEAD / HTTP/1.0\n\n"),
            Ok(Some((Method::Head, "/")))
        );
        assert_eq!(
            parse_head(b"BREW /pot HTTP/1.1\r\n\r\n"),
            Ok(Some((Method::Other, "/pot")))
        );
        assert_eq!(parse_head(b"junk\r\n\r\n"), Err(HeadError::Malformed));
        assert_eq!(
            parse_head(&vec![b'a'; MAX_HEAD + 1]),
            Err(HeadError::TooLarge)
        );
        let r = Response::text(200, "hi").to_bytes(false);
        assert!(r.starts_with(b"HTTP/1.1 200 OK\r\n") && r.ends_with(b"\r\n\r\nhi"));
        let h = Response::text(200, "hi").to_bytes(true);
        let h = String::from_utf8(h).unwrap();
        assert!(
            h.contains("Content-Length: 2\r\n") && h.ends_with("\r\n\r\n"),
            "{h}"
        );
        assert!(
            h.contains("Content-Type: text/plain; charset=utf-8\r\n"),
            "{h}"
        );
    }

    #[test]
    fn hostile_heads_are_refused_without_panicking() {
        for bad in [
            &b"GET  / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET / HTTP/2\r\n\r\n",
            b"GET relative HTTP/1.1\r\n\r\n",
            b"G\x00T / HTTP/1.1\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\n\r\n",
            b"GET /\xff\xfe HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
            b"\n\n",
            b"GET / HTTP/1.1\r\nX: \x01\r\n\r\n",
            b" / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse_head(bad), Err(HeadError::Malformed), "{bad:?}");
        }
        // A terminator past the limit is still too large.
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(vec![b'a'; MAX_HEAD]);
        long.extend(b"\r\n\r\n");
        assert_eq!(parse_head(&long), Err(HeadError::TooLarge));
        // Every prefix and every byte value at every position of a good head: no panic.
        let good = b"GET /metrics?x HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 0..good.len() {
            let _ = parse_head(&good[..cut]);
            for b in [0u8, b' ', b'\r', b'\n', b'?', 0x80, 0xff] {
                let mut v = good.to_vec();
                v[cut] = b;
                let _ = parse_head(&v);
            }
        }
    }

    proptest::proptest! {
        /// Any bytes, whole or cut anywhere: no panic, a path that is a plain absolute path, and
        /// the same outcome once the head is complete however it arrived.
        #[test]
        fn any_bytes_parse_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            prefix in 0usize..3,
            cut in 0usize..400,
        ) {
            let mut input = [&b"GET /"[..], b"\r\n", b""][prefix].to_vec();
            input.extend(&bytes);
            let whole = parse_head(&input).map(|o| o.map(|(m, p)| (m, p.to_owned())));
            if let Ok(Some((_, path))) = &whole {
                proptest::prop_assert!(path.starts_with('/'));
                proptest::prop_assert!(path.bytes().all(|b| b.is_ascii_graphic() && b != b'?'));
                let _ = route(Method::Get, path);
            }
            let cut = cut.min(input.len());
            if let Ok(Some(_)) = parse_head(&input[..cut]) {
                // A complete head in the prefix: the rest of the input does not change it.
                let early = parse_head(&input[..cut]).map(|o| o.map(|(m, p)| (m, p.to_owned())));
                proptest::prop_assert_eq!(early, whole);
            }
        }
    }

    #[test]
    fn routes_answer_head_404_with_a_hint_and_405_with_allow() {
        assert_eq!(
            route(Method::Get, "/healthz"),
            Routed::Serve {
                page: Page::Healthz,
                head_only: false
            }
        );
        for r in ROUTES.iter().filter(|r| r.methods.contains(&Method::Get)) {
            assert_eq!(
                route(Method::Head, r.path),
                Routed::Serve {
                    page: r.page,
                    head_only: true
                }
            );
            assert_eq!(
                route(Method::Other, r.path),
                Routed::WrongMethod {
                    allow: "GET, HEAD".into()
                }
            );
        }
        assert_eq!(
            route(Method::Post, "/metrics"),
            Routed::WrongMethod {
                allow: "GET, HEAD".into()
            }
        );
        assert_eq!(route(Method::Get, "/nope"), Routed::NotFound);
        let hint = not_found_hint("/nope");
        for r in ROUTES {
            assert!(hint.contains(r.path), "{hint}");
        }
        let mut wrong = Response::text(405, "");
        wrong.allow = Some("GET, HEAD".into());
        let bytes = String::from_utf8(wrong.to_bytes(false)).unwrap();
        assert!(bytes.contains("\r\nAllow: GET, HEAD\r\n"), "{bytes}");
    }
}
