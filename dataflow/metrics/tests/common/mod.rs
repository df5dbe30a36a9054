//! Helpers shared by the integration tests: a minimal HTTP/1.0 client over loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Sends one HTTP/1.0 request and returns (status code, lower-cased head, body). Panics on I/O errors.
pub fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => panic!("connect {addr}: {e}"),
    };
    assert!(s.set_read_timeout(Some(Duration::from_secs(10))).is_ok());
    assert!(write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").is_ok());
    let mut raw = Vec::new();
    assert!(s.read_to_end(&mut raw).is_ok());
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters kept).
#[allow(dead_code)]
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
