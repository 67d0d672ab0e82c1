//! Shared test helpers: fixtures served over real HTTP on 127.0.0.1 by wiremock, and the
//! probe run in-process through the same code path as the binary.
#![allow(dead_code)]

pub mod fleet_server;
pub mod oauth;
pub mod tls;

use clap::Parser;
use ews_probe::cli::{Cli, Command};
use ews_probe::report::Report;
use ews_probe::transport::httpfile;
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub fn fixture(rel: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// A SOAP fixture as an HTTP 200 answer.
pub fn xml(rel: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/xml; charset=utf-8")
        .insert_header("request-id", "11111111-2222-3333-4444-555555555555")
        .set_body_string(fixture(&format!("ews/{rel}")))
}

/// An Autodiscover JSON fixture (its leading `//` comment lines dropped) as an HTTP 200 answer.
pub fn autodiscover_json(rel: &str) -> ResponseTemplate {
    let text = fixture(&format!("autodiscover/{rel}"));
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    ResponseTemplate::new(200).set_body_raw(body, "application/json; charset=utf-8")
}

/// An Autodiscover XML fixture as an HTTP 200 answer.
pub fn autodiscover_xml(rel: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(
        fixture(&format!("autodiscover/{rel}")),
        "text/xml; charset=utf-8",
    )
}

/// A SOAP fault fixture as the HTTP 500 Exchange sends it with.
pub fn fault(rel: &str) -> ResponseTemplate {
    ResponseTemplate::new(500)
        .insert_header("content-type", "text/xml; charset=utf-8")
        .set_body_string(fixture(&format!("ews/soap_fault/{rel}")))
}

/// An `.http` fixture (status, headers, body) as the answer.
pub fn http(rel: &str) -> ResponseTemplate {
    let rec = httpfile::parse(&fixture(&format!("http/{rel}"))).expect("valid .http fixture");
    let r = rec.outcome.expect("a response, not an error");
    let mut t = ResponseTemplate::new(r.status);
    let mut content_type = None;
    for (n, v) in &r.headers {
        let lower = n.to_ascii_lowercase();
        // wiremock sets these itself from the body.
        if lower == "content-length" || lower == "transfer-encoding" {
            continue;
        }
        if lower == "content-type" {
            content_type = Some(v.clone());
            continue;
        }
        t = t.append_header(n.as_str(), v.as_str());
    }
    match content_type {
        Some(ct) => t.set_body_raw(r.body, &ct),
        None => t.set_body_bytes(r.body),
    }
}

/// Body markers that pick out each check's request.
pub const CONNECTIVITY: &[&str] = &["<m:GetFolder>", "Id=\"msgfolderroot\""];
pub const SENTITEMS: &[&str] = &["<m:GetFolder>", "Id=\"sentitems\""];
pub const INBOX: &[&str] = &["<m:FindItem", "Id=\"inbox\""];
pub const DRAFTS: &[&str] = &["<m:GetFolder>", "Id=\"drafts\""];
pub const AVAILABILITY: &[&str] = &["<m:GetUserAvailabilityRequest>"];
pub const CALENDAR: &[&str] = &["<m:GetFolder>", "Id=\"calendar\""];
pub const CALENDAR_VIEW: &[&str] = &["<m:CalendarView"];
pub const SYNC: &[&str] = &["<m:SyncFolderItems>"];
pub const CREATE_DEFERRED: &[&str] = &["<m:CreateItem", "0x3FEF"];
pub const CREATE: &[&str] = &["<m:CreateItem"];
pub const DELETE: &[&str] = &["<m:DeleteItem"];

/// Answers requests whose body contains every marker. Priority 1 wins over the defaults.
pub async fn on(server: &MockServer, markers: &[&str], resp: ResponseTemplate) {
    on_prio(server, markers, resp, 1).await;
}

pub async fn on_prio(server: &MockServer, markers: &[&str], resp: ResponseTemplate, prio: u8) {
    let mut m = Mock::given(method("POST"));
    for mk in markers {
        m = m.and(body_string_contains(*mk));
    }
    m.respond_with(resp).with_priority(prio).mount(server).await;
}

/// Every read-only check answered with success, at the lowest priority.
pub async fn healthy(server: &MockServer) {
    let p = 10;
    on_prio(server, CONNECTIVITY, xml("get_folder/success.xml"), p).await;
    on_prio(server, SENTITEMS, xml("get_folder/success.xml"), p).await;
    on_prio(server, INBOX, xml("find_item/success_inbox.xml"), p).await;
    on_prio(server, DRAFTS, xml("get_folder/success.xml"), p).await;
    on_prio(
        server,
        AVAILABILITY,
        xml("get_user_availability/success.xml"),
        p,
    )
    .await;
    on_prio(server, CALENDAR, xml("get_folder/success_calendar.xml"), p).await;
    on_prio(
        server,
        CALENDAR_VIEW,
        xml("find_item/success_calendar_view.xml"),
        p,
    )
    .await;
    on_prio(server, SYNC, xml("sync_folder_items/success.xml"), p).await;
    on_prio(server, CREATE, xml("create_item/success.xml"), p + 1).await;
    on_prio(server, DELETE, xml("delete_item/success.xml"), p).await;
}

pub fn ews_url(server: &MockServer) -> String {
    format!("{}/EWS/Exchange.asmx", server.uri())
}

/// Runs `ews-probe probe ARGS…` in-process and returns the report.
pub async fn probe(args: &[&str]) -> Report {
    try_probe(args).await.expect("the probe runs")
}

pub async fn try_probe(args: &[&str]) -> Result<Report, ews_probe::app::AppError> {
    let mut argv = vec!["ews-probe", "probe"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("valid flags");
    match cli.command {
        Command::Probe(a) => ews_probe::app::probe(&a).await,
        _ => unreachable!(),
    }
}

pub fn codes(r: &Report) -> Vec<&'static str> {
    r.diagnoses.iter().map(|d| d.code.as_str()).collect()
}

pub fn feature_statuses(r: &Report) -> Vec<String> {
    r.features
        .iter()
        .map(|f| {
            serde_json::to_value(f.status)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Bodies of the requests the server received.
pub async fn bodies(server: &MockServer) -> Vec<String> {
    posts(server)
        .await
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

/// The POST requests the server received (the EWS calls; the challenge step is a GET).
pub async fn posts(server: &MockServer) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .collect()
}
