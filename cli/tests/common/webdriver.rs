//! What the page's end-to-end test drives a browser with: a static file server for the built
//! site, and headless Chromium under chromedriver, spoken to over plain HTTP/1.1 (the W3C
//! WebDriver protocol). The session is closed and chromedriver killed when the [`Browser`] drops,
//! also when a test fails.

use serde_json::{json, Value};
use std::env;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// chromedriver, unless `CHROMEDRIVER` names another (Debian's `chromium-driver` package).
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The browser binary itself, unless `CHROMIUM_BIN` names another: Debian's `/usr/bin/chromium`
/// is a wrapper script that chromedriver cannot drive.
const CHROMIUM: &str = "/usr/lib/chromium/chromium";
/// The browser's flags, unless `EGGROLL_CHROMIUM_ARGS` lists others: headless, and WebGPU, which
/// Chromium on Linux only offers with `--enable-unsafe-webgpu` (SwiftShader when there is no GPU).
const CHROMIUM_ARGS: &str = "--headless=new --no-sandbox --disable-dev-shm-usage --enable-unsafe-webgpu";

/// Serves the files under `root` on 127.0.0.1 from a background thread, for the life of the test
/// process; returns its port. `.wasm` files go out as `application/wasm`, which streaming
/// compilation requires.
pub fn serve_dir(root: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free local port for the site");
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            // A failed connection (the browser gave up on it) concerns only that request.
            thread::spawn(move || serve_one(stream, &root).ok());
        }
    });
    port
}

/// Answers one GET or HEAD request with a file under `root`, then closes the connection.
fn serve_one(stream: TcpStream, root: &Path) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    while !read_line(&mut reader)?.is_empty() {}
    let mut words = request.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or("/"));
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let path = if path.ends_with('/') { format!("{path}index.html") } else { path.to_string() };
    let file = (!path.split('/').any(|part| part == "..")).then(|| root.join(path.trim_start_matches('/')));
    let (status, body) = match (method, file.map(fs::read)) {
        ("GET" | "HEAD", Some(Ok(bytes))) => ("200 OK", bytes),
        ("GET" | "HEAD", _) => ("404 Not Found", b"not found".to_vec()),
        _ => ("405 Method Not Allowed", b"only GET and HEAD".to_vec()),
    };
    let kind = if status.starts_with("200") { content_type(&path) } else { "text/plain" };
    let mut stream = reader.into_inner();
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        stream.write_all(&body)?;
    }
    stream.flush()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript",
        "wasm" => "application/wasm",
        "css" => "text/css",
        "json" => "application/json",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

/// One line without its line ending; empty at the end of the headers or of the stream.
fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Sends one request to `127.0.0.1:port` and returns the status code and the JSON body (null when
/// empty). The body is read by its `Content-Length`, chunk by chunk, or to the end.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(stream);
    let status_line = read_line(&mut reader)?;
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let status = status.ok_or_else(|| io::Error::other(format!("not an HTTP response: {status_line:?}")))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        let line = read_line(&mut reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    let mut bytes = Vec::new();
    if chunked {
        loop {
            let size = read_line(&mut reader)?;
            let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| io::Error::other(format!("bad chunk size {size:?}")))?;
            if size == 0 {
                break;
            }
            let start = bytes.len();
            bytes.resize(start + size, 0);
            reader.read_exact(&mut bytes[start..])?;
            read_line(&mut reader)?;
        }
    } else if let Some(length) = length {
        bytes.resize(length, 0);
        reader.read_exact(&mut bytes)?;
    } else {
        reader.read_to_end(&mut bytes)?;
    }
    let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).map_err(io::Error::other)? };
    Ok((status, value))
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free local port").port()
}

fn env_or(name: &str, default: &str) -> String {
    env::var(name).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_string())
}

/// Headless Chromium in one WebDriver session, driven through its own chromedriver.
pub struct Browser {
    driver: Child,
    port: u16,
    session: Option<String>,
}

impl Browser {
    /// Starts chromedriver (`CHROMEDRIVER`) and a session of Chromium (`CHROMIUM_BIN`, flags from
    /// `EGGROLL_CHROMIUM_ARGS` plus `extra_args`). Panics, naming what is missing, when either is
    /// not installed or the session cannot start.
    pub fn start(extra_args: &[&str]) -> Browser {
        let chromedriver = env_or("CHROMEDRIVER", CHROMEDRIVER);
        let chromium = env_or("CHROMIUM_BIN", CHROMIUM);
        let mut args: Vec<String> = env_or("EGGROLL_CHROMIUM_ARGS", CHROMIUM_ARGS).split_whitespace().map(String::from).collect();
        args.extend(extra_args.iter().map(|a| a.to_string()));
        assert!(
            Path::new(&chromium).is_file(),
            "no Chromium at {chromium} (CHROMIUM_BIN): install Debian's chromium, e.g. by `source scripts/browser_env.sh`"
        );
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run chromedriver {chromedriver} (CHROMEDRIVER): {e}; install Debian's chromium-driver, e.g. by `source scripts/browser_env.sh`")
            });
        // From here on, dropping the browser kills chromedriver.
        let mut browser = Browser { driver, port, session: None };
        browser.wait_for_driver(&chromedriver);
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let created = browser.command("POST", "/session", Some(&capabilities));
        let id = created["sessionId"].as_str().unwrap_or_else(|| panic!("no session id in {created}"));
        browser.session = Some(id.to_string());
        browser
    }

    /// Waits until chromedriver answers `/status` as ready.
    fn wait_for_driver(&mut self, chromedriver: &str) {
        // Only a bound on how long a broken driver can hold the test; no timing is asserted.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, status)) = http(self.port, "GET", "/status", None) {
                if status["value"]["ready"] == true {
                    return;
                }
            }
            if let Ok(Some(exit)) = self.driver.try_wait() {
                panic!("chromedriver {chromedriver} exited before it was ready: {exit}");
            }
            assert!(Instant::now() < deadline, "chromedriver {chromedriver} did not get ready on port {}", self.port);
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends a WebDriver command and returns its `value`; panics with the driver's error.
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, mut reply) = http(self.port, method, path, body).unwrap_or_else(|e| panic!("WebDriver {method} {path} failed: {e}"));
        let value = reply["value"].take();
        assert!(status == 200, "WebDriver {method} {path}: HTTP {status}: {} {}", value["error"], value["message"]);
        value
    }

    fn session_path(&self, tail: &str) -> String {
        format!("/session/{}/{tail}", self.session.as_deref().expect("a session"))
    }

    /// Loads `url` in the session's window.
    pub fn goto(&self, url: &str) {
        self.command("POST", &self.session_path("url"), Some(&json!({ "url": url })));
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub fn execute(&self, script: &str) -> Value {
        self.command("POST", &self.session_path("execute/sync"), Some(&json!({ "script": script, "args": [] })))
    }

    /// A PNG screenshot of the window's viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let value = self.command("GET", &self.session_path("screenshot"), None);
        let text = value.as_str().unwrap_or_else(|| panic!("the screenshot is not a string: {value}"));
        base64_decode(text).unwrap_or_else(|e| panic!("the screenshot is not base64: {e}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(id) = self.session.take() {
            // Closes Chromium; if that fails, killing the driver below still ends the test's processes.
            let _ = http(self.port, "DELETE", &format!("/session/{id}"), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Decodes standard base64 (RFC 4648, `=` padding, no line breaks).
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let digit = |c: u8| -> Result<u32, String> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("byte {c:#04x} is not a base64 digit")),
        } as u32)
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    if !text.len().is_multiple_of(4) || text.len() - bytes.len() > 2 {
        return Err(format!("length {} with {} padding bytes", text.len(), text.len() - bytes.len()));
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut word = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            word |= digit(c)? << (18 - 6 * i);
        }
        out.extend_from_slice(&word.to_be_bytes()[1..chunk.len()]);
    }
    Ok(out)
}
