//! Shared measurement harness for the Tokio peer binaries.
//!
//! Every workload is measured the same way as the C side (bench/bench_util.h):
//! a few warm-up iterations, then `iters` timed iterations; the median time per
//! iteration is printed as `BENCH <name> <median_ns> <iterations>`.

use std::time::Instant;

/// Iterations after warm-up; `BENCH_ITERS` overrides the workload's default.
pub fn iters(default: usize) -> usize {
    std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(default)
}

/// True when the workload `name` is selected by the command-line arguments (none:
/// everything). An argument selects a workload when it is the exact name, a group
/// prefix ending at a dot ("rt_multi" selects "rt_multi.ping_pong"), or, when it has
/// no dot, any substring ("ping"). The C side (bench/bench_util.h) uses the same rule.
pub fn selected(name: &str) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.is_empty()
        || args.iter().any(|a| {
            name == a
                || (name.starts_with(a.as_str()) && name[a.len()..].starts_with('.'))
                || (!a.contains('.') && name.contains(a.as_str()))
        })
}

/// Run `f` `warmup` times untimed and `n` times timed; print the median.
/// A time budget keeps a very slow workload from eating the run (as on the C
/// side): BENCH_MAX_SECONDS (default 10) bounds the timed part once at least 5
/// iterations are done, a fifth of it the warm-up; the line gives the iterations
/// actually timed.
pub fn measure<F: FnMut()>(name: &str, warmup: usize, n: usize, mut f: F) {
    let budget = std::time::Duration::from_secs(
        std::env::var("BENCH_MAX_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
    );
    let start = Instant::now();
    for _ in 0..warmup {
        if start.elapsed() >= budget / 5 {
            break;
        }
        f();
    }
    let mut samples: Vec<u128> = Vec::with_capacity(n);
    let start = Instant::now();
    while samples.len() < n && (samples.len() < 5 || start.elapsed() < budget) {
        let t0 = Instant::now();
        f();
        samples.push(t0.elapsed().as_nanos());
    }
    let done = samples.len();
    println!("BENCH {} {} {}", name, median(&mut samples), done);
}

/// Median of the samples (sorts them).
pub fn median(samples: &mut [u128]) -> u128 {
    samples.sort_unstable();
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    }
}

/// Resident set size of this process in bytes, from /proc/self/status (VmRSS).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            let kb: u64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0);
            return kb * 1024;
        }
    }
    0
}
