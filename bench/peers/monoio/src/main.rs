//! monoio echo server for bench/run.sh: thread-per-core io_uring (monoio's own
//! model), one listener per thread on the same address (SO_REUSEPORT, as the
//! epoll server), backlog 1024 like every other peer, TCP_NODELAY, 64 KiB reads.
//!
//!   echo_server ADDR            threads: MONOIO_THREADS (default 1)
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{ListenerOpts, TcpListener, TcpStream};

const BUF: usize = 65536;

async fn serve(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; BUF];
    loop {
        let (r, b) = s.read(buf).await;
        buf = b;
        let n = match r {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let slice = monoio::buf::IoBufMut::slice_mut(buf, 0..n);
        let (w, sl) = s.write_all(slice).await;
        buf = sl.into_inner();
        if w.is_err() {
            return;
        }
    }
}

fn run(addr: std::net::SocketAddr) {
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(1024)
        .build()
        .expect("monoio: io_uring runtime (the kernel refused the ring?)");
    rt.block_on(async move {
        let opts = ListenerOpts::new().reuse_port(true).reuse_addr(true).backlog(1024);
        let l = TcpListener::bind_with_config(addr, &opts).expect("bind");
        loop {
            match l.accept().await {
                Ok((s, _)) => {
                    monoio::spawn(serve(s));
                }
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    });
}

fn main() {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()
        .expect("address");
    let threads: usize = std::env::var("MONOIO_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let hs: Vec<_> = (0..threads).map(|_| std::thread::spawn(move || run(addr))).collect();
    for h in hs {
        let _ = h.join();
    }
}
