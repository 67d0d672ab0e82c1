//! Fleet speed (DESIGN §8): 10,000 mailboxes, `--concurrency 100`, spread over 10 loopback
//! endpoints (so the per-endpoint cap of 10 is not what binds), each answering every request
//! after L = 20 ms. Each mailbox's critical path is 2 × L (the connectivity check, then the
//! feature checks in parallel), so the limit is concurrency / (2 × L) = 2,500 mailboxes/s.
//! Reports throughput / limit, peak RSS and CPU time per mailbox of the `ews-probe` process
//! (getrusage of the waited-for child), median over the runs. Targets: >= 0.90 of the limit,
//! <= 64 MiB peak RSS, <= 1 ms CPU per mailbox.
//!
//! The test server answers each request L after it arrived, to within about 0.1 ms (its own
//! timer thread; tokio's 1-ms timer wheel added 1–1.5 ms per answer, which counted against the
//! fleet). Each run prints the delays the server actually gave (mean, p50, p99), so the limit's
//! 2 × L is checked, not assumed.
//!
//! First it measures the test server alone (tests/common/fleet_server.rs, one thread and
//! runtime per endpoint) with a load of 100 concurrent keep-alive clients, to show it is not
//! the bottleneck: the fleet at its limit needs 8 requests per mailbox x 2,500/s = 20,000
//! requests/s (the challenge GET is sent once per endpoint, not per mailbox).
//!
//! Run: `cargo bench --bench fleet`. `FLEET_BENCH_MAILBOXES`, `FLEET_BENCH_RUNS` (and
//! `FLEET_BENCH_CONCURRENCY`) shrink it for a quick check; `FLEET_BENCH_EXE` runs another
//! build of ews-probe (to compare two builds on one machine). Figures go in the README.

#[path = "../tests/common/fleet_server.rs"]
mod fleet_server;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const L_MS: u64 = 20;
const ENDPOINTS: usize = 10;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The peak RSS (VmHWM, KiB) of a running process, watched until it exits. getrusage's
/// ru_maxrss cannot be used: at exec the kernel records the spawning (vfork-shared) memory
/// of this bench process as the child's maximum.
fn watch_hwm(pid: u32) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            else {
                break; // a zombie has no memory left to show
            };
            peak = peak.max(kb);
            std::thread::sleep(Duration::from_millis(5));
        }
        peak
    })
}

/// (max RSS of waited-for children in KiB, their total user+system CPU in seconds).
fn children_usage() -> (i64, f64) {
    // SAFETY: getrusage writes into the struct we pass and nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (u.ru_maxrss, t(u.ru_utime) + t(u.ru_stime))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Requests/s the servers sustain alone under `clients` concurrent keep-alive clients.
fn server_capacity(servers: &[fleet_server::Server], clients: usize, secs: f64) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = r#"<m:GetFolder><m:FolderIds><t:DistinguishedFolderId Id="msgfolderroot"/></m:FolderIds></m:GetFolder>"#;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .build()
            .unwrap();
        let done = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + Duration::from_secs_f64(secs);
        let mut tasks = Vec::new();
        for i in 0..clients {
            let url = servers[i % servers.len()].url("healthy", i);
            let (client, done) = (client.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < until {
                    let r = client.post(&url).body(body).send().await.unwrap();
                    let _ = r.bytes().await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let t = Instant::now();
        for t in tasks {
            t.await.unwrap();
        }
        done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64()
    })
}

fn main() {
    let n = env_num("FLEET_BENCH_MAILBOXES", 10_000);
    let runs = env_num("FLEET_BENCH_RUNS", 3);
    #[allow(non_snake_case)]
    let CONCURRENCY = env_num("FLEET_BENCH_CONCURRENCY", 100);
    let servers: Vec<_> = (0..ENDPOINTS)
        .map(|_| fleet_server::start(L_MS, 0))
        .collect();
    let limit = CONCURRENCY as f64 / (2.0 * L_MS as f64 / 1000.0);
    println!(
        "fleet bench: {n} mailboxes, --concurrency {CONCURRENCY}, {ENDPOINTS} endpoints, L = {L_MS} ms; limit {limit:.0} mailboxes/s"
    );
    println!("  load average before: {}", load_avg());

    // The server alone: with L = 20 ms, 100 clients can do at most 5,000 requests/s, so the
    // zero-delay figure is the server's real capacity.
    for s in &servers {
        s.delay_ms.store(0, Ordering::SeqCst);
    }
    let raw = server_capacity(&servers, CONCURRENCY, 2.0);
    for s in &servers {
        s.delay_ms.store(L_MS, Ordering::SeqCst);
    }
    let delayed = server_capacity(&servers, 800, 2.0);
    println!(
        "  test server alone: {raw:.0} requests/s with no delay ({CONCURRENCY} clients); {delayed:.0} requests/s with L = {L_MS} ms (800 clients, bound {:.0}); the fleet at its limit needs {:.0}",
        800.0 / (L_MS as f64 / 1000.0),
        8.0 * limit
    );

    let dir = std::env::temp_dir().join(format!("ews-probe-fleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.csv");
    // Each endpoint's mailboxes share its one EWS URL, as in a tenant (so the challenge step
    // is observed once per endpoint, not once per mailbox).
    let mut csv = String::from("mailbox,ews_url\n");
    for i in 0..n {
        csv.push_str(&format!(
            "bench{i}@contoso.com,{}\n",
            servers[i % ENDPOINTS].url("healthy", 0)
        ));
    }
    std::fs::write(&input, csv).unwrap();
    // FLEET_BENCH_EXE: another build of ews-probe, to compare two builds on one machine.
    let exe = std::env::var("FLEET_BENCH_EXE")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ews-probe").to_string());
    let (mut rates, mut cpus, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        for s in &servers {
            s.stats.delays_us.lock().unwrap().clear();
        }
        let out = dir.join(format!("out{run}.ndjson"));
        let (_, cpu0) = children_usage();
        let t = Instant::now();
        let child = Command::new(&exe)
            .args([
                "fleet",
                "--input",
                input.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
                "--concurrency",
                &CONCURRENCY.to_string(),
                "--no-progress",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let hwm = watch_hwm(child.id());
        let o = child.wait_with_output().unwrap();
        let wall = t.elapsed().as_secs_f64();
        let (_, cpu1) = children_usage();
        let maxrss = hwm.join().unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let lines = std::fs::read_to_string(&out).unwrap().lines().count();
        assert_eq!(lines, n, "one report per mailbox");
        let rate = n as f64 / wall;
        let cpu_ms = (cpu1 - cpu0) * 1000.0 / n as f64;
        println!(
            "  run {}: {wall:.2} s, {rate:.0} mailboxes/s ({:.3} of limit), CPU {cpu_ms:.3} ms/mailbox, peak RSS {:.1} MiB",
            run + 1,
            rate / limit,
            maxrss as f64 / 1024.0
        );
        let mut delays: Vec<u32> = servers
            .iter()
            .flat_map(|s| std::mem::take(&mut *s.stats.delays_us.lock().unwrap()))
            .collect();
        delays.sort_unstable();
        if !delays.is_empty() {
            let ms = |us: u32| us as f64 / 1000.0;
            let mean = delays.iter().map(|&d| d as f64).sum::<f64>() / delays.len() as f64 / 1000.0;
            println!(
                "         the server's answers: {} requests, delay mean {mean:.3} ms, p50 {:.3}, p99 {:.3}, max {:.3} (L = {L_MS})",
                delays.len(),
                ms(delays[delays.len() / 2]),
                ms(delays[delays.len() * 99 / 100]),
                ms(delays[delays.len() - 1])
            );
        }
        rates.push(rate);
        cpus.push(cpu_ms);
        rss.push(maxrss as f64 / 1024.0);
    }
    let rate = median(rates);
    println!(
        "  median throughput   {rate:>8.0} mailboxes/s = {:.3} of the limit (target >= 0.90)",
        rate / limit
    );
    println!(
        "  peak RSS            {:>8.1} MiB (max over runs; target <= 64)",
        rss.iter().cloned().fold(0.0, f64::max)
    );
    println!(
        "  CPU per mailbox     {:>8.3} ms median (user+system; target <= 1)",
        median(cpus)
    );
    println!("  load average after: {}", load_avg());
    let _ = std::fs::remove_dir_all(&dir);
}
