//! Tokio side of the sync.* workloads: the parameters of Tokio's own
//! benches/sync_mpsc.rs and benches/sync_semaphore.rs (6 workers), printed in the
//! `BENCH <name> <median_ns> <iterations>` format of the ekiden side
//! (bench/ekiden_sync.c).

#[path = "../common.rs"]
#[allow(dead_code)]
mod common;

use std::hint::black_box;
use std::sync::Arc;

use common::{iters, measure, selected};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, Semaphore};

const WORKERS: usize = 6;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .build()
        .expect("runtime")
}

/// 512 bytes (only moved through the channel, never read).
#[allow(dead_code)]
#[derive(Clone, Copy)]
struct Medium([usize; 64]);
impl Default for Medium {
    fn default() -> Self {
        Medium([0; 64])
    }
}

/// 32 KiB.
#[allow(dead_code)]
#[derive(Clone)]
struct Large([Medium; 64]);
impl Default for Large {
    fn default() -> Self {
        Large([Medium::default(); 64])
    }
}

/// One message through a fresh channel of capacity 1,000, each step driven by its
/// own block_on (as in Tokio's send_data).
fn send_data<T: Default>(name: &str, n: usize) {
    let rt = runtime();
    measure(name, 10, n, || {
        let (tx, mut rx) = mpsc::channel::<T>(1000);
        let _ = rt.block_on(tx.send(T::default()));
        black_box(rt.block_on(rx.recv()).unwrap());
    });
}

fn contention_bounded(name: &str, capacity: usize, n: usize) {
    let rt = runtime();
    measure(name, 5, n, || {
        rt.block_on(async move {
            let (tx, mut rx) = mpsc::channel::<usize>(capacity);
            for _ in 0..5 {
                let tx = tx.clone();
                tokio::spawn(async move {
                    for i in 0..1000 {
                        tx.send(i).await.unwrap();
                    }
                });
            }
            for _ in 0..1000 * 5 {
                black_box(rx.recv().await);
            }
        })
    });
}

fn contention_unbounded(n: usize) {
    let rt = runtime();
    measure("sync_mpsc.contention_unbounded", 5, n, || {
        rt.block_on(async move {
            let (tx, mut rx) = mpsc::unbounded_channel::<usize>();
            for _ in 0..5 {
                let tx = tx.clone();
                tokio::spawn(async move {
                    for i in 0..1000 {
                        tx.send(i).unwrap();
                    }
                });
            }
            for _ in 0..1000 * 5 {
                black_box(rx.recv().await);
            }
        })
    });
}

fn uncontended_bounded(n: usize) {
    let rt = runtime();
    measure("sync_mpsc.uncontended_bounded", 5, n, || {
        rt.block_on(async move {
            let (tx, mut rx) = mpsc::channel::<usize>(1_000_000);
            for i in 0..5000 {
                tx.send(i).await.unwrap();
            }
            for _ in 0..5000 {
                black_box(rx.recv().await);
            }
        })
    });
}

fn uncontended_unbounded(n: usize) {
    let rt = runtime();
    measure("sync_mpsc.uncontended_unbounded", 5, n, || {
        rt.block_on(async move {
            let (tx, mut rx) = mpsc::unbounded_channel::<usize>();
            for i in 0..5000 {
                tx.send(i).unwrap();
            }
            for _ in 0..5000 {
                black_box(rx.recv().await);
            }
        })
    });
}

/// Six sequential acquire + release on Semaphore(10) inside one block_on.
fn semaphore_uncontended(n: usize) {
    let rt = runtime();
    let sem = Arc::new(Semaphore::new(10));
    measure("sync_semaphore.uncontended", 10, n, || {
        let sem = sem.clone();
        rt.block_on(async move {
            for _ in 0..6 {
                let permit = sem.acquire().await.unwrap();
                drop(permit);
            }
        })
    });
}

async fn acquire_release(sem: Arc<Semaphore>) {
    let permit = sem.acquire().await.unwrap();
    drop(permit);
}

/// Six spawned tasks each acquire and release one permit; block_on joins them.
fn semaphore_concurrent(name: &str, permits: usize, n: usize) {
    let rt = runtime();
    let sem = Arc::new(Semaphore::new(permits));
    measure(name, 10, n, || {
        let sem = sem.clone();
        rt.block_on(async move {
            let joins: Vec<_> = (0..6)
                .map(|_| tokio::spawn(acquire_release(sem.clone())))
                .collect();
            for j in joins {
                j.await.unwrap();
            }
        })
    });
}

fn main() {
    let n = iters(100);
    if selected("sync_mpsc.send_data_512") {
        send_data::<Medium>("sync_mpsc.send_data_512", n);
    }
    if selected("sync_mpsc.send_data_32k") {
        send_data::<Large>("sync_mpsc.send_data_32k", n);
    }
    if selected("sync_mpsc.contention_bounded") {
        contention_bounded("sync_mpsc.contention_bounded", 1_000_000, n);
    }
    if selected("sync_mpsc.contention_bounded_full") {
        contention_bounded("sync_mpsc.contention_bounded_full", 100, n);
    }
    if selected("sync_mpsc.contention_unbounded") {
        contention_unbounded(n);
    }
    if selected("sync_mpsc.uncontended_bounded") {
        uncontended_bounded(n);
    }
    if selected("sync_mpsc.uncontended_unbounded") {
        uncontended_unbounded(n);
    }
    if selected("sync_semaphore.uncontended") {
        semaphore_uncontended(n);
    }
    if selected("sync_semaphore.uncontended_concurrent_multi") {
        semaphore_concurrent("sync_semaphore.uncontended_concurrent_multi", 10, n);
    }
    if selected("sync_semaphore.contended_concurrent_multi") {
        semaphore_concurrent("sync_semaphore.contended_concurrent_multi", 5, n);
    }
}
