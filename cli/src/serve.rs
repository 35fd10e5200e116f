//! Where `shmstate metrics` puts its text: stdout, an HTTP `/metrics`
//! endpoint (`--listen`), or a file for node_exporter's textfile collector
//! (`--textfile`).
//!
//! The HTTP side is the least a Prometheus scrape needs: `GET /metrics` (or
//! `/`), one request per connection, `Connection: close`. Requests are read
//! with a deadline and a size bound, so a slow or hostile client costs one
//! connection's timeout and nothing else; connections are served one at a time
//! (scrapes are seconds apart, and a scrape is a read of /dev/shm).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::errors::{code, Failure};
use crate::metrics::Format;

/// The longest request head we read before answering 431.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request, and to take our answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `render(format)` on `addr` until the process is stopped.
pub fn listen(addr: SocketAddr, render: impl Fn(Format) -> String) -> Result<(), Failure> {
    let listener =
        TcpListener::bind(addr).map_err(|e| Failure::new(code::OTHER, format!("listening on {addr}: {e}")))?;
    let local = listener.local_addr().map_or(addr, |a| a);
    // One line on stderr so scripts and tests know the port (`--listen 127.0.0.1:0`).
    eprintln!("shmstate: serving metrics on http://{local}/metrics");
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        // A client's failure is its own: the next scrape gets a fresh connection.
        let _ = answer(stream, &render);
    }
    Ok(())
}

/// The request's method, path and whether it accepts OpenMetrics, from its head.
fn parse_head(head: &str) -> Option<(&str, &str, bool)> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?, first.next()?);
    let openmetrics = lines.any(|l| {
        l.split_once(':')
            .is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case("accept") && v.contains("application/openmetrics-text"))
    });
    Some((method, path, openmetrics))
}

fn answer(mut stream: TcpStream, render: &impl Fn(Format) -> String) -> std::io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST_HEAD {
            return respond(&mut stream, "431 Request Header Fields Too Large", "text/plain", "request too large\n");
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    match parse_head(&head) {
        Some(("GET", "/metrics" | "/", openmetrics)) => {
            let format = if openmetrics { Format::OpenMetrics } else { Format::Prometheus };
            respond(&mut stream, "200 OK", format.content_type(), &render(format))
        }
        Some(("GET", _, _)) => respond(&mut stream, "404 Not Found", "text/plain", "try /metrics\n"),
        Some(_) => respond(&mut stream, "405 Method Not Allowed", "text/plain", "only GET\n"),
        None => respond(&mut stream, "400 Bad Request", "text/plain", "bad request\n"),
    }
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

/// Writes `text` to `dir/shmstate.prom` atomically (a temporary file in the
/// same directory, renamed over it), as node_exporter's textfile collector
/// requires: it never reads a half-written file.
pub fn write_textfile(dir: &Path, text: &str) -> Result<(), Failure> {
    let fail = |what: &str, e: std::io::Error| Failure::new(code::OTHER, format!("{what} in {}: {e}", dir.display()));
    let tmp = dir.join(format!(".shmstate.prom.{}", std::process::id()));
    let dst = dir.join("shmstate.prom");
    let mut f = std::fs::File::create(&tmp).map_err(|e| fail("creating a temporary file", e))?;
    f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail("writing the temporary file", e)
    })?;
    std::fs::rename(&tmp, &dst).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail("renaming it to shmstate.prom", e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        assert_eq!(parse_head("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Some(("GET", "/metrics", false)));
        let om = "GET / HTTP/1.1\r\naccept: application/openmetrics-text; version=1.0.0,text/plain;q=0.5\r\n\r\n";
        assert_eq!(parse_head(om), Some(("GET", "/", true)));
        assert_eq!(parse_head("garbage"), None);
    }
}
