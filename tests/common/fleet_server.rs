//! A small HTTP/1.1 EWS test server for fleet tests and the fleet bench, on 127.0.0.1, in its
//! own thread and runtime (so tests can run the real binary with blocking calls).
//!
//! The URL path picks the scenario and names the mailbox: `/<scenario>/<id>/EWS/Exchange.asmx`.
//! Scenarios: `healthy` (every read-only check answered with its success fixture, chosen by
//! the body's markers as in tests/common/mod.rs), `consumer` (fixtures/http/consumer_401_basic.http),
//! `blocked` (fixtures/http/exo_403_ews_blocked.http). The first `busy` connectivity requests
//! are answered with the ErrorServerBusy fault (fixtures/ews/soap_fault/server_busy_short_backoff.xml,
//! BackOffMilliseconds 600). Every answer is sent `delay_ms` after its request arrived, to
//! within about 0.1 ms: a tokio timer would add 1–1.5 ms (its wheel ticks in whole milliseconds
//! and rounds up: `sleep(20 ms)` measured 21.1 ms median on an idle runtime), so one shared timer
//! thread ([`Timer`]) wakes the answers instead. The server records each answer's actual delay
//! (`Stats::delays_us`) so a bench can show it.
//! The standard path `/EWS/Exchange.asmx` (a discovered endpoint, whose URL names no mailbox)
//! is `healthy`, and names its mailbox by the `X-AnchorMailbox` header (sent with
//! `--impersonate`); a request without it (the challenge GET) is counted in flight but is no
//! mailbox's.
//!
//! The server counts requests in flight and distinct mailboxes in flight (peaks), and logs
//! each request (time, mailbox, connectivity or not).
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Clone)]
struct Canned {
    head: String,
    body: Vec<u8>,
}

fn fixture(rel: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

fn xml(status: &str, rel: &str) -> Canned {
    Canned {
        head: format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/xml; charset=utf-8\r\nrequest-id: 11111111-2222-3333-4444-555555555555\r\n"
        ),
        body: fixture(&format!("ews/{rel}")).into_bytes(),
    }
}

/// An `.http` fixture: status line, headers (comments and framing headers dropped), body.
fn http(rel: &str) -> Canned {
    let text = fixture(&format!("http/{rel}"));
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap().trim().to_string();
    let mut h = format!("{status}\r\n");
    for l in lines {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("content-length") || lower.starts_with("transfer-encoding") {
            continue;
        }
        h.push_str(l.trim_end());
        h.push_str("\r\n");
    }
    Canned {
        head: h,
        body: body.as_bytes().to_vec(),
    }
}

/// One timer thread for every server of the process: wakes each answer at its deadline, with
/// the OS's sleep precision (a condition variable's timed wait) instead of tokio's 1-ms wheel.
struct Timer {
    queue: Mutex<BinaryHeap<Reverse<Due>>>,
    wake: Condvar,
}

struct Due(Instant, u64, tokio::sync::oneshot::Sender<()>);

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        (self.0, self.1) == (o.0, o.1)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(o.0, o.1))
    }
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let t: &'static Timer = Box::leak(Box::new(Timer {
            queue: Mutex::new(BinaryHeap::new()),
            wake: Condvar::new(),
        }));
        std::thread::spawn(move || {
            let mut q = t.queue.lock().unwrap();
            loop {
                let now = Instant::now();
                while q.peek().is_some_and(|Reverse(d)| d.0 <= now) {
                    let Reverse(Due(_, _, tx)) = q.pop().unwrap();
                    let _ = tx.send(());
                }
                q = match q.peek() {
                    Some(Reverse(d)) => {
                        let wait = d.0.saturating_duration_since(now);
                        t.wake.wait_timeout(q, wait).unwrap().0
                    }
                    None => t.wake.wait(q).unwrap(),
                };
            }
        });
        t
    })
}

/// Resolves at `at` (within the OS's timer slack, about 0.05–0.1 ms).
async fn sleep_until(at: Instant) {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    if at <= Instant::now() {
        return;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let t = timer();
    {
        let mut q = t.queue.lock().unwrap();
        let first = q.peek().is_none_or(|Reverse(d)| at < d.0);
        q.push(Reverse(Due(at, SEQ.fetch_add(1, Ordering::Relaxed), tx)));
        if first {
            t.wake.notify_one();
        }
    }
    let _ = rx.await;
}

#[derive(Default)]
pub struct Stats {
    pub requests: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub peak_in_flight: AtomicUsize,
    pub peak_mailboxes: AtomicUsize,
    mailboxes: Mutex<HashMap<String, usize>>,
    /// (since start, mailbox path "/scenario/id", connectivity request?, answered busy?)
    pub log: Mutex<Vec<(Duration, String, bool, bool)>>,
    /// Each answer's delay from its request's arrival to its write, in microseconds.
    pub delays_us: Mutex<Vec<u32>>,
}

pub struct Server {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    pub delay_ms: Arc<AtomicU64>,
    pub busy: Arc<AtomicUsize>,
    pub started: Instant,
}

impl Server {
    pub fn url(&self, scenario: &str, id: usize) -> String {
        format!("http://{}/{scenario}/{id}/EWS/Exchange.asmx", self.addr)
    }
}

struct Answers {
    healthy: Vec<(&'static [&'static str], Canned)>,
    consumer: Canned,
    blocked: Canned,
    busy: Canned,
    fallback: Canned,
}

fn answers() -> Answers {
    Answers {
        healthy: vec![
            (
                &["<m:GetFolder>", "Id=\"msgfolderroot\""],
                xml("200 OK", "get_folder/success.xml"),
            ),
            (
                &["<m:FindItem", "Id=\"inbox\""],
                xml("200 OK", "find_item/success_inbox.xml"),
            ),
            (
                &["<m:GetUserAvailabilityRequest>"],
                xml("200 OK", "get_user_availability/success.xml"),
            ),
            (
                &["<m:CalendarView"],
                xml("200 OK", "find_item/success_calendar_view.xml"),
            ),
            (
                &["<m:SyncFolderItems>"],
                xml("200 OK", "sync_folder_items/success.xml"),
            ),
            (
                &["<m:GetFolder>", "Id=\"calendar\""],
                xml("200 OK", "get_folder/success_calendar.xml"),
            ),
            (&["<m:GetFolder>"], xml("200 OK", "get_folder/success.xml")),
        ],
        consumer: http("consumer_401_basic.http"),
        blocked: http("exo_403_ews_blocked.http"),
        busy: xml(
            "500 Internal Server Error",
            "soap_fault/server_busy_short_backoff.xml",
        ),
        fallback: Canned {
            head: "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\n".into(),
            body: b"not found".to_vec(),
        },
    }
}

/// Starts a server; `delay_ms` before each answer; the first `busy` connectivity requests
/// are answered ErrorServerBusy.
pub fn start(delay_ms: u64, busy: usize) -> Server {
    let (tx, rx) = std::sync::mpsc::channel();
    let stats = Arc::new(Stats::default());
    let delay = Arc::new(AtomicU64::new(delay_ms));
    let busy = Arc::new(AtomicUsize::new(busy));
    let started = Instant::now();
    let (s2, d2, b2) = (stats.clone(), delay.clone(), busy.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            let answers = Arc::new(answers());
            loop {
                let Ok((sock, _)) = l.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                let (s, d, b, a) = (s2.clone(), d2.clone(), b2.clone(), answers.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, s, d, b, a, started).await;
                });
            }
        });
    });
    let addr = rx.recv().unwrap();
    Server {
        addr,
        stats,
        delay_ms: delay,
        busy,
        started,
    }
}

/// A loopback port nothing listens on (connections are refused).
pub fn dead_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn serve(
    sock: tokio::net::TcpStream,
    stats: Arc<Stats>,
    delay: Arc<AtomicU64>,
    busy: Arc<AtomicUsize>,
    a: Arc<Answers>,
    started: Instant,
) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let arrived = Instant::now();
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut len = 0usize;
        let mut anchor = None;
        loop {
            line.clear();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("x-anchormailbox")
            {
                anchor = Some(v.trim().to_ascii_lowercase());
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await?;
        let body = String::from_utf8_lossy(&body);
        let mut seg = path.trim_start_matches('/').split('/');
        let mut scenario = seg.next().unwrap_or("").to_string();
        let mut mailbox = format!("/{scenario}/{}", seg.next().unwrap_or(""));
        if path.eq_ignore_ascii_case("/EWS/Exchange.asmx") {
            scenario = "healthy".into();
            mailbox = anchor.unwrap_or_default();
        }
        let counted = !mailbox.is_empty();
        let connectivity = body.contains("Id=\"msgfolderroot\"");

        // Count.
        stats.requests.fetch_add(1, Ordering::SeqCst);
        let n = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.peak_in_flight.fetch_max(n, Ordering::SeqCst);
        if counted {
            let mut m = stats.mailboxes.lock().unwrap();
            *m.entry(mailbox.clone()).or_default() += 1;
            stats.peak_mailboxes.fetch_max(m.len(), Ordering::SeqCst);
        }
        let busy_now = connectivity
            && busy
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
                .is_ok();
        stats.log.lock().unwrap().push((
            started.elapsed(),
            mailbox.clone(),
            connectivity,
            busy_now,
        ));

        let d = delay.load(Ordering::SeqCst);
        if d > 0 {
            sleep_until(arrived + Duration::from_millis(d)).await;
        }
        let c = if busy_now {
            &a.busy
        } else {
            match scenario.as_str() {
                "consumer" => &a.consumer,
                "blocked" => &a.blocked,
                "healthy" => a
                    .healthy
                    .iter()
                    .find(|(m, _)| m.iter().all(|k| body.contains(k)))
                    .map(|(_, c)| c)
                    .unwrap_or(&a.fallback),
                _ => &a.fallback,
            }
        };
        let mut out = Vec::with_capacity(c.head.len() + c.body.len() + 64);
        out.extend_from_slice(c.head.as_bytes());
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", c.body.len()).as_bytes());
        out.extend_from_slice(&c.body);

        // Uncount before answering, so a client that sends its next request at once is not
        // counted twice.
        if counted {
            let mut m = stats.mailboxes.lock().unwrap();
            if let Some(k) = m.get_mut(&mailbox) {
                *k -= 1;
                if *k == 0 {
                    m.remove(&mailbox);
                }
            }
        }
        stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        let us = arrived.elapsed().as_micros().min(u32::MAX as u128) as u32;
        stats.delays_us.lock().unwrap().push(us);
        w.write_all(&out).await?;
    }
}
