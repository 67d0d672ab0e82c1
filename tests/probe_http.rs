//! The real client against recorded responses served over HTTP on 127.0.0.1 (wiremock): one
//! test per diagnosis code the HTTP/SOAP evidence can produce, plus mixed results, retries,
//! deadlines and hostile bodies. Each asserts on the report and, where it matters, on what the
//! server actually received.

mod common;
use common::*;
use ews_probe::diagnose::Status;
use std::io::Write;
use wiremock::MockServer;

fn secret_file(content: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "{content}").unwrap();
    f
}

async fn server() -> MockServer {
    MockServer::start().await
}

/// Probes `mailbox` at the mock server with the given auth (basic: password file; bearer: token file).
async fn run(
    server: &MockServer,
    mailbox: &str,
    auth: &str,
    extra: &[&str],
) -> ews_probe::report::Report {
    let url = ews_url(server);
    let secret = match auth {
        "basic" => Some(secret_file("Corr3ct-Horse!")),
        "bearer" => Some(secret_file(
            "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJodHRwczovL291dGxvb2sub2ZmaWNlMzY1LmNvbSJ9.c2ln",
        )),
        _ => None,
    };
    let path = secret.as_ref().map(|f| f.path().display().to_string());
    let mut args: Vec<&str> = vec![mailbox, "--ews-url", &url, "--auth", auth];
    if !extra.contains(&"--timeout") {
        args.extend(["--timeout", "10"]);
    }
    match auth {
        "basic" => args.extend(["--password-file", path.as_deref().unwrap()]),
        "bearer" => args.extend(["--token-file", path.as_deref().unwrap()]),
        _ => {}
    }
    args.extend_from_slice(extra);
    probe(&args).await
}

#[tokio::test(flavor = "multi_thread")]
async fn healthy_mailbox_every_feature_available() {
    let s = server().await;
    healthy(&s).await;
    let r = run(&s, "megan@contoso.com", "bearer", &[]).await;
    assert_eq!(r.status, Status::Ok, "{:#?}", r.diagnoses);
    assert_eq!(r.exit_code, 0);
    assert_eq!(feature_statuses(&r), ["available"; 4]);
    // The unauthenticated challenge (wiremock answers GET with 404), then the 8 checks.
    assert_eq!(r.steps.len(), 9);
    assert_eq!(r.steps[0].id, "auth.challenge");
    assert!(r.steps.iter().skip(1).all(|s| s.http_status == Some(200)));
    // Every request carried the token, X-AnchorMailbox and the SOAP content type.
    let reqs = posts(&s).await;
    assert_eq!(reqs.len(), 8);
    for q in &reqs {
        assert!(
            q.headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("Bearer eyJ")
        );
        assert_eq!(
            q.headers.get("x-anchormailbox").unwrap(),
            "megan@contoso.com"
        );
        assert!(
            q.headers
                .get("content-type")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("text/xml")
        );
        let body = String::from_utf8_lossy(&q.body);
        assert!(body.contains(r#"<t:RequestServerVersion Version="Exchange2013_SP1"/>"#));
        assert!(
            !body.contains("ExchangeImpersonation"),
            "delegated tokens do not impersonate"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_address_with_basic_401_is_consumer_account() {
    let s = server().await;
    on(&s, CONNECTIVITY, http("consumer_401_basic.http")).await;
    let r = run(&s, "jamie@outlook.com", "basic", &[]).await;
    assert_eq!(codes(&r), ["consumer_account_no_ews"]);
    assert_eq!(r.exit_code, 2);
    assert_eq!(feature_statuses(&r), ["unavailable"; 4]);
    // The feature checks were not sent once the connectivity check failed on auth.
    assert_eq!(posts(&s).await.len(), 1);
    assert!(
        r.steps
            .iter()
            .skip(2)
            .all(|s| s.outcome == ews_probe::evidence::Outcome::Skip)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_token_403_is_consumer_account() {
    let s = server().await;
    on(&s, CONNECTIVITY, http("consumer_403_empty.http")).await;
    let r = run(&s, "jamie@hotmail.co.uk", "bearer", &[]).await;
    assert_eq!(codes(&r), ["consumer_account_no_ews"]);
    assert_eq!(r.account.kind, ews_probe::target::AccountKind::Consumer);
    assert_eq!(r.exit_code, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn work_domain_401_is_not_a_consumer_account() {
    let s = server().await;
    on(&s, CONNECTIVITY, http("consumer_401_basic.http")).await;
    let r = run(&s, "jamie@contoso.com", "basic", &[]).await;
    assert!(
        !codes(&r).contains(&"consumer_account_no_ews"),
        "{:?}",
        codes(&r)
    );
    // The challenge offers Bearer: Basic was refused by a modern-auth server.
    assert_eq!(codes(&r), ["basic_auth_rejected"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn exchange_online_refuses_basic() {
    let s = server().await;
    on(&s, CONNECTIVITY, http("exo_401_basic_rejected.http")).await;
    let r = run(&s, "adele@contoso.com", "basic", &[]).await;
    assert_eq!(codes(&r), ["basic_auth_rejected"]);
    assert_eq!(r.exit_code, 2);
    assert!(r.diagnoses[0].remedy.contains("device-code"));
    assert!(r.diagnoses[0].evidence[0].contains("request-id: d494a4bc"));
}

#[tokio::test(flavor = "multi_thread")]
async fn x_ms_diagnostics_decide_token_codes() {
    for (fixture, code) in [
        ("exo_401_token_expired.http", "token_expired"),
        ("exo_401_wrong_audience.http", "token_wrong_audience"),
        ("exo_401_token_invalid.http", "token_invalid"),
    ] {
        let s = server().await;
        on(&s, CONNECTIVITY, http(fixture)).await;
        let r = run(&s, "adele@contoso.com", "bearer", &[]).await;
        assert_eq!(codes(&r), [code], "{fixture}");
        assert_eq!(r.exit_code, 2);
        assert_eq!(
            r.steps[1]
                .headers
                .get("x-ms-diagnostics")
                .map(|v| v.starts_with("200000")),
            Some(true)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exchange_online_403_for_work_account_is_ews_blocked() {
    let s = server().await;
    on(&s, CONNECTIVITY, http("exo_403_ews_blocked.http")).await;
    // Pin outlook.office365.com to the mock server, so the endpoint is Exchange Online's name.
    let port = s.address().port();
    let url = format!("http://outlook.office365.com:{port}/EWS/Exchange.asmx");
    let pin = format!("outlook.office365.com:{port}:127.0.0.1");
    let tok = secret_file("eyJ0eXAi.token.sig");
    let r = probe(&[
        "adele@contoso.com",
        "--ews-url",
        &url,
        "--resolve",
        &pin,
        "--auth",
        "bearer",
        "--token-file",
        tok.path().to_str().unwrap(),
    ])
    .await;
    assert_eq!(codes(&r), ["ews_access_blocked"]);
    assert_eq!(r.account.kind, ews_probe::target::AccountKind::WorkOrSchool);
    let d = &r.diagnoses[0];
    assert!(
        d.summary.contains("2026-10-01") && d.remedy.contains("EwsAllowedAppIDs"),
        "{d:?}"
    );
    assert_eq!(r.exit_code, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn ntlm_only_challenge_is_invalid_credentials_naming_schemes() {
    let s = server().await;
    on(&s, CONNECTIVITY, http("onprem_401_ntlm_only.http")).await;
    let r = run(&s, "j.smith@contoso.com", "basic", &[]).await;
    assert_eq!(codes(&r), ["invalid_credentials"]);
    let d = &r.diagnoses[0];
    assert!(d.summary.contains("Negotiate and NTLM"), "{}", d.summary);
    assert!(d.remedy.contains("--auth ntlm"));
    assert_eq!(r.account.kind, ews_probe::target::AccountKind::OnPremises);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_credentials_sent_is_invalid_credentials() {
    let s = server().await;
    on(&s, CONNECTIVITY, http("onprem_401_ntlm_only.http")).await;
    let r = run(&s, "j.smith@contoso.com", "none", &[]).await;
    assert_eq!(codes(&r), ["invalid_credentials"]);
    let q = &posts(&s).await[0];
    assert!(q.headers.get("authorization").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn account_locked_456() {
    let s = server().await;
    on(&s, CONNECTIVITY, http("http_456_account_locked.http")).await;
    let r = run(&s, "adele@contoso.com", "basic", &[]).await;
    assert_eq!(codes(&r), ["account_locked"]);
    assert_eq!(r.exit_code, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_folder_denied_leaves_the_other_features_available() {
    let s = server().await;
    healthy(&s).await;
    on(&s, CALENDAR, xml("get_folder/error_access_denied.xml")).await;
    let r = run(&s, "megan@contoso.com", "bearer", &[]).await;
    assert_eq!(codes(&r), ["folder_access_denied"]);
    assert_eq!(
        feature_statuses(&r),
        ["available", "available", "available", "unavailable"]
    );
    assert_eq!(r.exit_code, 1);
    assert_eq!(r.status, Status::Warning);
}

#[tokio::test(flavor = "multi_thread")]
async fn free_busy_denied_only_hits_insert_availability() {
    let s = server().await;
    healthy(&s).await;
    on(
        &s,
        AVAILABILITY,
        xml("get_user_availability/error_no_free_busy_access.xml"),
    )
    .await;
    let r = run(&s, "megan@contoso.com", "bearer", &[]).await;
    assert_eq!(codes(&r), ["folder_access_denied"]);
    assert_eq!(
        feature_statuses(&r),
        ["available", "available", "unavailable", "available"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn availability_proxy_failure_is_server_error() {
    let s = server().await;
    healthy(&s).await;
    on(
        &s,
        AVAILABILITY,
        xml("get_user_availability/error_proxy_failed.xml"),
    )
    .await;
    let r = run(&s, "megan@contoso.com", "bearer", &[]).await;
    assert_eq!(codes(&r), ["server_error"]);
    assert_eq!(r.exit_code, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn own_mailbox_unknown_to_availability_is_mailbox_not_found() {
    let s = server().await;
    healthy(&s).await;
    on(
        &s,
        AVAILABILITY,
        xml("get_user_availability/error_recipient_not_found.xml"),
    )
    .await;
    let r = run(&s, "megan@contoso.com", "bearer", &[]).await;
    assert_eq!(codes(&r), ["mailbox_not_found"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_busy_is_retried_after_the_back_off_and_recovers() {
    let s = server().await;
    healthy(&s).await;
    // First FindItem inbox: fault with BackOffMilliseconds=600; then success.
    wiremock::Mock::given(wiremock::matchers::body_string_contains("Id=\"inbox\""))
        .respond_with(fault("server_busy_short_backoff.xml"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&s)
        .await;
    let started = std::time::Instant::now();
    let r = run(&s, "megan@contoso.com", "bearer", &[]).await;
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(600),
        "the back-off was honoured"
    );
    assert_eq!(codes(&r), ["throttled"]);
    assert_eq!(
        feature_statuses(&r),
        ["degraded", "available", "available", "available"]
    );
    assert_eq!(r.exit_code, 1);
    let inbox = r
        .steps
        .iter()
        .find(|s| s.id == "ews.find_item.inbox")
        .unwrap();
    assert_eq!(inbox.attempts, 2);
    let inbox_requests = bodies(&s)
        .await
        .iter()
        .filter(|b| b.contains("Id=\"inbox\""))
        .count();
    assert_eq!(inbox_requests, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn back_off_longer_than_the_deadline_is_reported_not_slept() {
    let s = server().await;
    on(&s, CONNECTIVITY, fault("server_busy_long_backoff.xml")).await;
    let started = std::time::Instant::now();
    let r = run(&s, "megan@contoso.com", "bearer", &[]).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(codes(&r), ["throttled"]);
    assert!(
        r.diagnoses[0].summary.contains("297749"),
        "{}",
        r.diagnoses[0].summary
    );
    assert_eq!(feature_statuses(&r), ["untested"; 4]);
    assert_eq!(r.exit_code, 1);
    assert_eq!(posts(&s).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_503_is_retried_with_retry_after() {
    let s = server().await;
    healthy(&s).await;
    wiremock::Mock::given(wiremock::matchers::body_string_contains("Id=\"sentitems\""))
        .respond_with(http("http_503_retry_after.http"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&s)
        .await;
    let r = run(&s, "megan@contoso.com", "bearer", &[]).await;
    let st = r
        .steps
        .iter()
        .find(|s| s.id == "ews.get_folder.sentitems")
        .unwrap();
    assert_eq!(st.attempts, 2);
    assert!(
        st.duration_ms >= 1000.0,
        "Retry-After: 1 honoured ({} ms)",
        st.duration_ms
    );
    assert_eq!(codes(&r), ["throttled"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn exceeded_connection_count_is_throttled() {
    let s = server().await;
    on(&s, CONNECTIVITY, fault("exceeded_connection_count.xml")).await;
    let r = run(&s, "megan@contoso.com", "bearer", &["--timeout", "3"]).await;
    assert_eq!(codes(&r), ["throttled"]);
    // Three attempts in all (two retries), then reported.
    assert_eq!(r.steps[1].attempts, 3);
    assert_eq!(posts(&s).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_validation_fault_blames_the_request_not_the_mailbox() {
    let s = server().await;
    on(&s, CONNECTIVITY, fault("schema_validation.xml")).await;
    let r = run(&s, "megan@contoso.com", "bearer", &[]).await;
    assert_eq!(codes(&r), ["schema_mismatch"]);
    assert_eq!(r.status, Status::Unknown);
    assert_eq!(r.exit_code, 3);
    assert_eq!(feature_statuses(&r), ["untested"; 4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_server_version_is_schema_mismatch() {
    let s = server().await;
    on(&s, CONNECTIVITY, fault("invalid_server_version.xml")).await;
    let r = run(
        &s,
        "megan@contoso.com",
        "bearer",
        &["--server-version", "V2018_01_08"],
    )
    .await;
    assert_eq!(codes(&r), ["schema_mismatch"]);
    let b = &bodies(&s).await[0];
    assert!(b.contains(r#"Version="V2018_01_08""#));
}

#[tokio::test(flavor = "multi_thread")]
async fn non_existent_mailbox_fault() {
    let s = server().await;
    on(&s, CONNECTIVITY, fault("non_existent_mailbox.xml")).await;
    let r = run(&s, "nobody@contoso.com", "bearer", &[]).await;
    assert_eq!(codes(&r), ["mailbox_not_found"]);
    assert_eq!(r.exit_code, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn impersonation_denied_and_headers_sent() {
    let s = server().await;
    on(&s, CONNECTIVITY, fault("impersonate_user_denied.xml")).await;
    let r = run(
        &s,
        "megan@contoso.com",
        "basic",
        &["--impersonate", "--user", "svc-probe@contoso.com"],
    )
    .await;
    assert_eq!(codes(&r), ["impersonation_denied"]);
    let q = &posts(&s).await[0];
    assert_eq!(
        q.headers.get("x-anchormailbox").unwrap(),
        "megan@contoso.com"
    );
    let body = String::from_utf8_lossy(&q.body);
    assert!(body.contains("<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>megan@contoso.com</t:PrimarySmtpAddress>"));
}

#[tokio::test(flavor = "multi_thread")]
async fn mailbox_moving_and_unavailable() {
    for (fx, code) in [
        ("get_folder/error_mailbox_move.xml", "mailbox_moving"),
        (
            "get_folder/error_store_unavailable.xml",
            "mailbox_unavailable",
        ),
        (
            "get_folder/error_internal_inner_store.xml",
            "mailbox_unavailable",
        ),
    ] {
        let s = server().await;
        healthy(&s).await;
        on(&s, CONNECTIVITY, xml(fx)).await;
        on(&s, SENTITEMS, xml(fx)).await;
        let r = run(&s, "megan@contoso.com", "bearer", &[]).await;
        assert_eq!(codes(&r)[0], code, "{fx}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_gateway_is_server_error() {
    let s = server().await;
    on(&s, CONNECTIVITY, http("http_502_bad_gateway.http")).await;
    let r = run(&s, "megan@contoso.com", "bearer", &[]).await;
    assert_eq!(codes(&r), ["server_error"]);
    assert_eq!(r.exit_code, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_that_are_not_ews() {
    for fx in [
        "iis_404_html.http",
        "html_login_page_200.http",
        "json_error_200.http",
    ] {
        let s = server().await;
        on(&s, CONNECTIVITY, http(fx)).await;
        let r = run(&s, "megan@contoso.com", "basic", &[]).await;
        assert_eq!(codes(&r), ["not_ews_endpoint"], "{fx}");
        assert_eq!(r.exit_code, 2, "{fx}");
    }
    // Nothing mounted: wiremock answers 404 with an empty body.
    let s = server().await;
    let r = run(&s, "megan@contoso.com", "basic", &[]).await;
    assert_eq!(codes(&r), ["not_ews_endpoint"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn doctype_and_truncated_bodies_are_refused() {
    for (fx, needle) in [
        ("doctype_entity_bomb.http", "DOCTYPE"),
        ("truncated_soap.http", "truncated"),
    ] {
        let s = server().await;
        on(&s, CONNECTIVITY, http(fx)).await;
        let r = run(&s, "megan@contoso.com", "bearer", &[]).await;
        assert_eq!(codes(&r), ["unexpected_response"], "{fx}");
        assert!(r.steps[1].detail.contains(needle), "{}", r.steps[1].detail);
        assert!(
            !r.steps[1].detail.contains("lollol"),
            "no entity was expanded"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_body_is_refused_at_the_cap() {
    let s = server().await;
    let big = "x".repeat(9 * 1024 * 1024);
    on(
        &s,
        CONNECTIVITY,
        wiremock::ResponseTemplate::new(200).set_body_raw(big, "text/xml"),
    )
    .await;
    let r = run(&s, "megan@contoso.com", "bearer", &[]).await;
    assert_eq!(codes(&r), ["unexpected_response"]);
    assert!(
        r.steps[1].detail.contains("8 MiB cap"),
        "{}",
        r.steps[1].detail
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deadline_exceeded_is_timeout() {
    let s = server().await;
    on(
        &s,
        CONNECTIVITY,
        xml("get_folder/success.xml").set_delay(std::time::Duration::from_secs(5)),
    )
    .await;
    let started = std::time::Instant::now();
    let r = run(&s, "megan@contoso.com", "bearer", &["--timeout", "1"]).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    assert_eq!(codes(&r), ["timeout"]);
    assert_eq!(r.exit_code, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_refused_is_connection_failed() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/EWS/Exchange.asmx");
    let r = probe(&["megan@contoso.com", "--ews-url", &url]).await;
    assert_eq!(codes(&r), ["connection_failed"]);
    assert_eq!(r.exit_code, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_reset_is_connection_failed() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        // Accept, read the request head, then drop the socket without answering (bounded).
        for _ in 0..10 {
            let Ok((mut sock, _)) = l.accept().await else {
                break;
            };
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await;
            drop(sock);
        }
    });
    let url = format!("http://127.0.0.1:{port}/EWS/Exchange.asmx");
    let r = probe(&["megan@contoso.com", "--ews-url", &url, "--timeout", "5"]).await;
    assert_eq!(codes(&r), ["connection_failed"], "{:?}", r.steps[1].detail);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_handshake_failure_is_tls_failure() {
    // A plain-text server on a port the probe speaks TLS to.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..5 {
            let Ok((mut sock, _)) = l.accept().await else {
                break;
            };
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await;
            let _ = tokio::io::AsyncWriteExt::write_all(
                &mut sock,
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            )
            .await;
        }
    });
    let url = format!("https://127.0.0.1:{port}/EWS/Exchange.asmx");
    let r = probe(&["megan@contoso.com", "--ews-url", &url, "--timeout", "5"]).await;
    assert_eq!(codes(&r), ["tls_failure"], "{:?}", r.steps[1].detail);
    assert!(r.diagnoses[0].remedy.contains("--ca-file"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unresolvable_name_is_dns_failure_without_a_query() {
    let r = probe(&[
        "megan@contoso.com",
        "--ews-url",
        "https://ews.contoso.invalid/EWS/Exchange.asmx",
    ])
    .await;
    assert_eq!(codes(&r), ["dns_failure"]);
    assert_eq!(r.exit_code, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn write_checks_create_then_hard_delete_the_draft_and_never_send() {
    let s = server().await;
    healthy(&s).await;
    let r = run(&s, "megan@contoso.com", "bearer", &["--write"]).await;
    assert_eq!(r.exit_code, 0, "{:#?}", r.diagnoses);
    let ids: Vec<&str> = r.steps.iter().map(|s| s.id.as_str()).collect();
    for id in [
        "ews.create_item.draft",
        "ews.delete_item.draft",
        "ews.create_item.deferred_send",
        "ews.delete_item.deferred_send",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let b = bodies(&s).await;
    let creates: Vec<&String> = b.iter().filter(|x| x.contains("<m:CreateItem")).collect();
    assert_eq!(creates.len(), 2);
    assert!(
        creates
            .iter()
            .all(|x| x.contains(r#"MessageDisposition="SaveOnly""#))
    );
    assert_eq!(
        creates
            .iter()
            .filter(|x| x.contains(r#"PropertyTag="0x3FEF""#))
            .count(),
        1
    );
    let deletes: Vec<&String> = b.iter().filter(|x| x.contains("<m:DeleteItem")).collect();
    assert_eq!(deletes.len(), 2);
    assert!(
        deletes.iter().all(
            |x| x.contains(r#"DeleteType="HardDelete""#) && x.contains(r#"Id="AAMkADdraft1=""#)
        )
    );
    assert!(
        !b.iter()
            .any(|x| x.contains("SendOnly") || x.contains("SendAndSaveCopy"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_cleanup_is_reported() {
    let s = server().await;
    healthy(&s).await;
    on(&s, DELETE, xml("delete_item/error_item_not_found.xml")).await;
    let r = run(&s, "megan@contoso.com", "bearer", &["--write"]).await;
    assert_eq!(codes(&r), ["cleanup_failed"]);
    assert!(r.diagnoses[0].remedy.contains("ews-probe test draft"));
    assert_eq!(r.exit_code, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn write_requests_are_never_retried() {
    let s = server().await;
    healthy(&s).await;
    on(&s, CREATE_DEFERRED, fault("server_busy_short_backoff.xml")).await;
    let r = run(&s, "megan@contoso.com", "bearer", &["--write"]).await;
    let st = r
        .steps
        .iter()
        .find(|s| s.id == "ews.create_item.deferred_send")
        .unwrap();
    assert_eq!(st.attempts, 1);
    assert_eq!(
        bodies(&s)
            .await
            .iter()
            .filter(|b| b.contains("0x3FEF"))
            .count(),
        1
    );
    // Send Later untested (throttled), nothing to clean up.
    assert_eq!(feature_statuses(&r)[1], "untested");
    let del = r
        .steps
        .iter()
        .find(|s| s.id == "ews.delete_item.deferred_send")
        .unwrap();
    assert_eq!(del.outcome, ews_probe::evidence::Outcome::Skip);
}

#[tokio::test(flavor = "multi_thread")]
async fn quota_exceeded_on_create_is_kept_as_unexpected_response_with_evidence() {
    let s = server().await;
    healthy(&s).await;
    on(&s, CREATE, xml("create_item/error_quota_exceeded.xml")).await;
    let r = run(&s, "megan@contoso.com", "bearer", &["--write"]).await;
    assert!(
        codes(&r).contains(&"unexpected_response"),
        "{:?}",
        codes(&r)
    );
    let d = r
        .diagnoses
        .iter()
        .find(|d| d.code.as_str() == "unexpected_response")
        .unwrap();
    assert!(d.summary.contains("ErrorQuotaExceeded"));
}
