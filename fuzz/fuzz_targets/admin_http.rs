//! Arbitrary bytes as a request head to the admin endpoint: parsing, routing and the answers a
//! hostile client can reach. Nothing may panic; a head longer than the bound is refused, never
//! buffered; a parsed path is a slice of what was sent; every answer's `Content-Length` is its
//! body's length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::admin::http::{not_found_hint, parse_head, refusal, route, Response, Routed, MAX_HEAD};

fn check(response: &Response, head_only: bool) {
    let bytes = response.to_bytes(head_only);
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse::<usize>().ok())
        .expect("a Content-Length");
    if !head_only {
        assert_eq!(length, body.len(), "Content-Length is the body's length");
    }
}

fuzz_target!(|data: &[u8]| {
    match parse_head(data) {
        Ok(None) => assert!(data.len() <= MAX_HEAD, "an incomplete head beyond the bound"),
        Ok(Some((method, path))) => {
            let start = path.as_ptr() as usize - data.as_ptr() as usize;
            assert!(start + path.len() <= data.len(), "the path is a slice of the request");
            assert!(path.starts_with('/'));
            match route(method, path) {
                Routed::NotFound => check(&Response::text(404, not_found_hint(path)), false),
                Routed::WrongMethod { allow } => assert!(!allow.is_empty()),
                Routed::Serve { .. } => {}
            }
        }
        Err(e) => check(&refusal(&e), false),
    }
});
