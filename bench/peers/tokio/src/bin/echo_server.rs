//! The echo server of Tokio's README (read up to 1 KiB, write it all back, one
//! task per connection), with TCP_NODELAY set on every accepted connection as
//! every echo server in bench/ does. Usage: echo_server HOST:PORT
//! The read buffer is the README's 1 KiB; ECHO_BUF_SIZE in the environment
//! changes it (docs/benchmarks.md).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let buf_size: usize = std::env::var("ECHO_BUF_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(1024);
    // The same backlog as every server in bench/ (1024; TcpListener::bind's
    // is not the same on every Tokio/mio version).
    let addr: std::net::SocketAddr = addr.parse().expect("HOST:PORT");
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(1024)?;
    loop {
        let (mut socket, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; buf_size];
            loop {
                let n = match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if socket.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}
