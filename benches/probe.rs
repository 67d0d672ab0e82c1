//! Single-probe speed (DESIGN §8): one read-only `probe`, as a whole process, against a loopback
//! server that answers every request after L = 50 ms. The physical limit is connection setup
//! plus 2 × L (the connectivity check, then every feature check in parallel). Prints the
//! median wall time over several runs and its ratio to the limit; the target is ≤ 1.15.
//!
//! Run: `cargo bench --bench probe` (release build). Figures go in the README.

use std::process::Command;
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const L: Duration = Duration::from_millis(50);
const RUNS: usize = 15;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(async {
        let s = MockServer::start().await;
        let body = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/ews/get_folder/success.xml"
        ))
        .unwrap();
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(body, "text/xml; charset=utf-8")
                    .set_delay(L),
            )
            .mount(&s)
            .await;
        s
    });
    let addr = *server.address();
    let url = format!("http://{addr}/EWS/Exchange.asmx");
    let exe = env!("CARGO_BIN_EXE_ews-probe");

    // Connection setup on this machine: a fresh TCP connect to the server.
    let setup = median(
        (0..50)
            .map(|_| {
                let t = Instant::now();
                let c = std::net::TcpStream::connect(addr).unwrap();
                let d = t.elapsed();
                drop(c);
                d
            })
            .collect(),
    );
    // Process start-up and teardown alone (the tool parses flags and exits), to show what of
    // the wall time is the process rather than the probe.
    let startup = median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                let out = Command::new(exe).arg("--version").output().unwrap();
                assert!(out.status.success());
                t.elapsed()
            })
            .collect(),
    );
    let mut walls = Vec::new();
    for i in 0..RUNS + 1 {
        let t = Instant::now();
        let out = Command::new(exe)
            .args([
                "probe",
                "bench@contoso.com",
                "--ews-url",
                &url,
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        let wall = t.elapsed();
        let code = out.status.code();
        assert!(
            code == Some(1) || code == Some(0),
            "probe ran: {:?} {}",
            code,
            String::from_utf8_lossy(&out.stderr)
        );
        if i > 0 {
            walls.push(wall); // the first run warms the page cache
        }
    }
    let wall = median(walls.clone());
    let limit = setup + 2 * L;
    let ratio = wall.as_secs_f64() / limit.as_secs_f64();
    println!(
        "single probe, L = {} ms, {RUNS} runs (whole processes)",
        L.as_millis()
    );
    println!(
        "  connection setup (median TCP connect) {:>8.2} ms",
        setup.as_secs_f64() * 1e3
    );
    println!(
        "  limit = setup + 2 x L                 {:>8.2} ms",
        limit.as_secs_f64() * 1e3
    );
    println!(
        "  process start-up alone (--version)    {:>8.2} ms",
        startup.as_secs_f64() * 1e3
    );
    println!(
        "  probe wall time, median               {:>8.2} ms (min {:.2}, max {:.2})",
        wall.as_secs_f64() * 1e3,
        walls.iter().min().unwrap().as_secs_f64() * 1e3,
        walls.iter().max().unwrap().as_secs_f64() * 1e3
    );
    println!("  wall / limit                          {ratio:>8.3}  (target <= 1.15)");
}
