//! Tokio side of the scheduler, timer and memory workloads (see docs/benchmarks.md).
//!
//! The rt_multi.* workloads follow the parameters of Tokio's own
//! benches/rt_multi_threaded.rs (4 workers, NUM_SPAWN = 10,000, 10 µs stall, ...),
//! re-expressed here as a plain program so that it prints the same line format as
//! the ekiden side (bench/ekiden_rt.c).

#[path = "../common.rs"]
#[allow(dead_code)]
mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{iters, measure, rss_bytes, selected};
use tokio::runtime::Runtime;

const WORKERS: usize = 4;
const NUM_SPAWN: usize = 10_000;
const STALL: Duration = Duration::from_micros(10);

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Busy for 10 µs, giving the CPU away between checks (as the Tokio bench does).
fn stall() {
    let start = Instant::now();
    while start.elapsed() < STALL {
        std::thread::yield_now();
    }
}

fn spawn_many_local(n: usize) {
    let rt = runtime();
    let (done_tx, done_rx) = mpsc::sync_channel::<()>(1000);
    let left = Arc::new(AtomicUsize::new(0));
    measure("rt_multi.spawn_many_local", 3, n, || {
        left.store(NUM_SPAWN, Relaxed);
        rt.block_on(async {
            for _ in 0..NUM_SPAWN {
                let done_tx = done_tx.clone();
                let left = left.clone();
                tokio::spawn(async move {
                    if left.fetch_sub(1, Relaxed) == 1 {
                        done_tx.send(()).unwrap();
                    }
                });
            }
            done_rx.recv().unwrap();
        });
    });
}

fn remote_spawn_and_join(rt: &Runtime, count: usize, joins: &mut Vec<tokio::task::JoinHandle<()>>) {
    for _ in 0..count {
        joins.push(rt.spawn(async {}));
    }
    rt.block_on(async {
        for j in joins.drain(..) {
            j.await.unwrap();
        }
    });
}

fn spawn_many_remote_idle(n: usize) {
    let rt = runtime();
    let mut joins = Vec::with_capacity(NUM_SPAWN);
    measure("rt_multi.spawn_many_remote_idle", 3, n, || {
        remote_spawn_and_join(&rt, NUM_SPAWN, &mut joins)
    });
}

fn spawn_many_remote_busy1(n: usize) {
    let rt = runtime();
    let running = Arc::new(AtomicBool::new(true));
    // 2 × workers background tasks that yield and stall forever.
    for _ in 0..2 * WORKERS {
        let running = running.clone();
        rt.spawn(async move {
            while running.load(Relaxed) {
                tokio::task::yield_now().await;
                stall();
            }
        });
    }
    let mut joins = Vec::with_capacity(NUM_SPAWN);
    measure("rt_multi.spawn_many_remote_busy1", 3, n, || {
        remote_spawn_and_join(&rt, NUM_SPAWN, &mut joins)
    });
    running.store(false, Relaxed);
}

fn busy_chain(running: Arc<AtomicBool>) {
    tokio::spawn(async move {
        if running.load(Relaxed) {
            stall();
            busy_chain(running);
        }
    });
}

fn spawn_many_remote_busy2(n: usize) {
    const COUNT: usize = 1_000;
    let rt = runtime();
    let running = Arc::new(AtomicBool::new(true));
    // One chain per worker: each task stalls, then spawns its successor.
    for _ in 0..WORKERS {
        let running = running.clone();
        rt.spawn(async move { busy_chain(running) });
    }
    let mut joins = Vec::with_capacity(COUNT);
    measure("rt_multi.spawn_many_remote_busy2", 3, n, || {
        remote_spawn_and_join(&rt, COUNT, &mut joins)
    });
    running.store(false, Relaxed);
}

fn ping_pong(n: usize) {
    const PINGS: usize = 1_000;
    let rt = runtime();
    let (done_tx, done_rx) = mpsc::sync_channel::<()>(1000);
    let left = Arc::new(AtomicUsize::new(0));
    measure("rt_multi.ping_pong", 3, n, || {
        let done_tx = done_tx.clone();
        let left = left.clone();
        left.store(PINGS, Relaxed);
        rt.block_on(async {
            tokio::spawn(async move {
                for _ in 0..PINGS {
                    let left = left.clone();
                    let done_tx = done_tx.clone();
                    tokio::spawn(async move {
                        let (ping_tx, ping_rx) = tokio::sync::oneshot::channel::<()>();
                        let (pong_tx, pong_rx) = tokio::sync::oneshot::channel::<()>();
                        tokio::spawn(async move {
                            ping_rx.await.unwrap();
                            pong_tx.send(()).unwrap();
                        });
                        ping_tx.send(()).unwrap();
                        pong_rx.await.unwrap();
                        if left.fetch_sub(1, Relaxed) == 1 {
                            done_tx.send(()).unwrap();
                        }
                    });
                }
            });
            done_rx.recv().unwrap();
        });
    });
}

fn yield_many(n: usize) {
    const TASKS: usize = 200;
    const YIELDS: usize = 1_000;
    let rt = runtime();
    measure("rt_multi.yield_many", 3, n, || {
        let (done_tx, done_rx) = mpsc::sync_channel::<()>(TASKS);
        for _ in 0..TASKS {
            let done_tx = done_tx.clone();
            rt.spawn(async move {
                for _ in 0..YIELDS {
                    tokio::task::yield_now().await;
                }
                done_tx.send(()).unwrap();
            });
        }
        for _ in 0..TASKS {
            done_rx.recv().unwrap();
        }
    });
}

fn chain(done_tx: mpsc::SyncSender<()>, remaining: usize) {
    if remaining == 0 {
        done_tx.send(()).unwrap();
    } else {
        tokio::spawn(async move { chain(done_tx, remaining - 1) });
    }
}

fn chained_spawn(n: usize) {
    const LENGTH: usize = 1_000;
    let rt = runtime();
    let (done_tx, done_rx) = mpsc::sync_channel::<()>(1000);
    measure("rt_multi.chained_spawn", 3, n, || {
        let done_tx = done_tx.clone();
        rt.block_on(async {
            tokio::spawn(async move { chain(done_tx, LENGTH) });
            done_rx.recv().unwrap();
        });
    });
}

/// libuv's million_timers with Tokio sleeps: N tasks, task i sleeps
/// 1 + i / 1000 ms (stepped 1 ms per 1,000 timers); the time from the first spawn
/// until the last task has finished. N = BENCH_TIMERS (default 1,000,000).
/// Also prints `time.million_timers.init`: the time to create and spawn them all
/// (libuv's "init" phase).
fn million_timers(runs: usize) {
    let timers: usize = std::env::var("BENCH_TIMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = runtime();
    let mut totals = Vec::with_capacity(runs);
    let mut inits = Vec::with_capacity(runs);
    for _ in 0..runs {
        let left = Arc::new(AtomicUsize::new(timers));
        let done = Arc::new(tokio::sync::Notify::new());
        let start = Instant::now();
        let init = rt.block_on(async {
            for i in 0..timers {
                let left = left.clone();
                let done = done.clone();
                // The deadline is fixed here, when the timer is created (as
                // uv_timer_start does); the sleep registers on its first poll.
                let sleep = tokio::time::sleep(Duration::from_millis(1 + (i / 1000) as u64));
                tokio::spawn(async move {
                    sleep.await;
                    if left.fetch_sub(1, Relaxed) == 1 {
                        done.notify_one();
                    }
                });
            }
            let init = start.elapsed();
            done.notified().await;
            init
        });
        totals.push(start.elapsed().as_nanos());
        inits.push(init.as_nanos());
    }
    println!(
        "BENCH time.million_timers {} {}",
        common::median(&mut totals),
        runs
    );
    println!(
        "BENCH time.million_timers.init {} {}",
        common::median(&mut inits),
        runs
    );
}

/// Polls of idle tasks so far (the memory workload waits until every task has
/// been polled once, so that its future is in its pending state).
static IDLE_POLLS: AtomicUsize = AtomicUsize::new(0);

/// A future that never completes and keeps no waker (like std::future::pending),
/// counting its polls. Zero-sized, as the ekiden side's state is NULL.
struct Idle;

impl Future for Idle {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        IDLE_POLLS.fetch_add(1, Relaxed);
        Poll::Pending
    }
}

/// Resident memory per idle task: RSS growth after spawning 1,000,000 tasks that
/// are each polled once and then wait forever, divided by the task count.
fn idle_task_bytes() {
    const TASKS: usize = 1_000_000;
    let rt = runtime();
    // Warm the runtime (threads, first allocations) before the baseline.
    rt.block_on(async { tokio::spawn(async {}).await.unwrap() });
    let before = rss_bytes();
    for _ in 0..TASKS {
        // Detached: the JoinHandle is dropped at once, as for a fire-and-forget task.
        drop(rt.spawn(Idle));
    }
    while IDLE_POLLS.load(Relaxed) < TASKS {
        std::thread::sleep(Duration::from_millis(5));
    }
    let after = rss_bytes();
    let per_task = (after.saturating_sub(before)) / TASKS as u64;
    println!("BENCH mem.idle_task_bytes {} 1", per_task);
    rt.shutdown_background();
}

fn main() {
    let n = iters(50);
    let small = iters(30);
    // Memory first, on a fresh heap (memory freed by earlier workloads would be
    // reused without growing the resident set).
    if selected("mem.idle_task_bytes") {
        idle_task_bytes();
    }
    if selected("rt_multi.spawn_many_local") {
        spawn_many_local(n);
    }
    if selected("rt_multi.spawn_many_remote_idle") {
        spawn_many_remote_idle(n);
    }
    if selected("rt_multi.spawn_many_remote_busy1") {
        spawn_many_remote_busy1(n);
    }
    if selected("rt_multi.spawn_many_remote_busy2") {
        spawn_many_remote_busy2(n);
    }
    if selected("rt_multi.ping_pong") {
        ping_pong(n);
    }
    if selected("rt_multi.yield_many") {
        yield_many(small);
    }
    if selected("rt_multi.chained_spawn") {
        chained_spawn(n);
    }
    if selected("time.million_timers") {
        million_timers(
            std::env::var("BENCH_TIMER_RUNS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(3),
        );
    }
}
