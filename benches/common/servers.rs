//! Shared by the benchmarks that start a real server of their own on 127.0.0.1.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process, killed when the benchmark ends however it ends.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `command` quietly and wait until it listens on `port`.
pub fn start(command: &mut Command, port: u16, what: &str) -> Server {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} is needed: run scripts/install-test-servers.sh ({e})"));
    let server = Server(child);
    wait_for_port(port, what);
    server
}

/// Wait up to 10 s for `port` to accept connections.
fn wait_for_port(port: u16, what: &str) {
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not start listening on 127.0.0.1:{port}");
}

/// A tool installed by scripts/install-test-servers.sh: `$ENV` or `~/.cargo/bin/<name>`.
pub fn tool(env: &str, name: &str) -> String {
    std::env::var(env)
        .unwrap_or_else(|_| format!("{}/.cargo/bin/{name}", std::env::var("HOME").unwrap()))
}
