//! One test per diagnosis rule, on evidence built by hand (the integration tests prove the same
//! rules on recorded responses over HTTP).

use super::*;
use crate::evidence::{Failure, HttpFacts, Step, StepKind};
use crate::ews::response::{ResponseClass, ResponseMessage, SoapFault, SoapResponse};
use crate::transport::retry::Attempts;
use std::collections::BTreeMap;

const EXO: &str = "https://outlook.office365.com/EWS/Exchange.asmx";
const ONPREM: &str = "https://mail.contoso.com/EWS/Exchange.asmx";

fn step(id: &str) -> Step {
    Step {
        id: id.into(),
        kind: StepKind::Ews,
        operation: Some("GetFolder"),
        outcome: Outcome::Pass,
        duration_ms: 10.0,
        http: Some(HttpFacts {
            status: 200,
            reason: "OK".into(),
            headers: BTreeMap::new(),
            body_bytes: 100,
        }),
        soap: Some(SoapResponse {
            server_version: None,
            fault: None,
            messages: vec![msg(ResponseClass::Success, "NoError")],
        }),
        body_error: None,
        failure: None,
        attempts: Attempts {
            count: 1,
            ..Attempts::default()
        },
        skipped: None,
        detail: "HTTP 200 OK, NoError".into(),
        auth: None,
    }
}

fn msg(class: ResponseClass, code: &str) -> ResponseMessage {
    ResponseMessage {
        element: "GetFolderResponseMessage".into(),
        class,
        code: Some(code.into()),
        text: Some("text".into()),
        message_xml: vec![],
        item_ids: vec![],
    }
}

fn http_fail(id: &str, status: u16, headers: &[(&str, &str)]) -> Step {
    let mut s = step(id);
    s.outcome = Outcome::Fail;
    s.soap = None;
    let h = s.http.as_mut().unwrap();
    h.status = status;
    h.headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    s.detail = format!("HTTP {status}");
    s
}

fn fault_fail(id: &str, code: &str) -> Step {
    let mut s = step(id);
    s.outcome = Outcome::Fail;
    s.http.as_mut().unwrap().status = 500;
    s.soap = Some(SoapResponse {
        server_version: None,
        fault: Some(SoapFault {
            faultcode: code.into(),
            faultstring: "fault".into(),
            response_code: Some(code.into()),
            message: None,
            message_xml: vec![],
        }),
        messages: vec![],
    });
    s
}

fn message_fail(id: &str, code: &str) -> Step {
    let mut s = step(id);
    s.outcome = Outcome::Fail;
    s.soap.as_mut().unwrap().messages = vec![msg(ResponseClass::Error, code)];
    s
}

fn transport_fail(kind: FailureKind) -> Step {
    let mut s = step(plan::CONNECTIVITY.id);
    s.outcome = Outcome::Fail;
    s.http = None;
    s.soap = None;
    s.failure = Some(Failure {
        kind,
        message: "boom".into(),
    });
    s
}

/// Evidence where the connectivity step is `conn` and, when it passed, every feature check passed.
fn ev_with(
    endpoint: Option<&str>,
    auth: AuthMode,
    conn: Step,
    feature_steps: Vec<Step>,
) -> Evidence {
    let blocked = conn.outcome == Outcome::Fail;
    let mut steps = vec![conn];
    for c in plan::READ_CHECKS {
        let found = feature_steps.iter().find(|s| s.id == c.id).cloned();
        steps.push(match (found, blocked) {
            (Some(s), _) => s,
            (None, true) => Step::skipped(
                c.id,
                StepKind::Ews,
                None,
                "connectivity check failed".into(),
            ),
            (None, false) => step(c.id),
        });
    }
    Evidence {
        mailbox: "x".into(),
        endpoint: endpoint.map(str::to_string),
        auth,
        impersonating: false,
        write: false,
        steps,
        duration_ms: 1.0,
        discovery: None,
    }
}

fn verdict(addr: &str, ev: &Evidence) -> Verdict {
    diagnose(&Mailbox::parse(addr).unwrap(), ev)
}

fn codes(v: &Verdict) -> Vec<&'static str> {
    v.diagnoses.iter().map(|d| d.code.as_str()).collect()
}

fn conn_verdict(addr: &str, endpoint: &str, auth: AuthMode, conn: Step) -> Verdict {
    verdict(addr, &ev_with(Some(endpoint), auth, conn, vec![]))
}

const C: &str = "ews.get_folder.msgfolderroot";

#[test]
fn consumer_account_401_basic_and_403_token() {
    for (status, auth) in [(401, AuthMode::Basic), (403, AuthMode::Bearer)] {
        let v = conn_verdict("a@outlook.com", EXO, auth, http_fail(C, status, &[]));
        assert_eq!(codes(&v), ["consumer_account_no_ews"]);
        assert_eq!(v.status, Status::Critical);
        assert!(
            v.features
                .iter()
                .all(|f| f.status == FeatureStatus::Unavailable)
        );
    }
}

#[test]
fn consumer_account_known_before_any_request() {
    let v = verdict(
        "a@live.com",
        &ev_with(None, AuthMode::None, step(C), vec![]).with_no_steps(),
    );
    assert_eq!(codes(&v), ["consumer_account_no_ews"]);
    assert_eq!(v.status, Status::Critical);
    let v = verdict(
        "a@contoso.com",
        &ev_with(None, AuthMode::None, step(C), vec![]).with_no_steps(),
    );
    assert_eq!(codes(&v), ["autodiscover_failed"]);
    assert_eq!(v.status, Status::Unknown);
}

impl Evidence {
    fn with_no_steps(mut self) -> Self {
        self.steps.clear();
        self
    }
}

#[test]
fn basic_rejected_by_exchange_online() {
    let v = conn_verdict(
        "a@contoso.com",
        EXO,
        AuthMode::Basic,
        http_fail(C, 401, &[("www-authenticate", "Basic Realm=\"\"")]),
    );
    assert_eq!(codes(&v), ["basic_auth_rejected"]);
    // Off Exchange Online, a Bearer challenge says the same.
    let v = conn_verdict(
        "a@contoso.com",
        ONPREM,
        AuthMode::Basic,
        http_fail(
            C,
            401,
            &[(
                "www-authenticate",
                "Bearer authorization_uri=\"x\", Basic realm=\"mail\"",
            )],
        ),
    );
    assert_eq!(codes(&v), ["basic_auth_rejected"]);
}

#[test]
fn x_ms_diagnostics_codes() {
    for (diag, code) in [
        (
            "2000002;reason=\"The token has expired.\";error_category=\"invalid_token\"",
            "token_expired",
        ),
        (
            "2000003;reason=\"The audience claim value is invalid 'aud'.\";error_category=\"invalid_resource\"",
            "token_wrong_audience",
        ),
        (
            "2000001;reason=\"The token is invalid.\";error_category=\"invalid_token\"",
            "token_invalid",
        ),
        (
            "2000008;reason=\"x\";error_category=\"invalid_grant\"",
            "token_invalid",
        ),
    ] {
        let v = conn_verdict(
            "a@contoso.com",
            EXO,
            AuthMode::Bearer,
            http_fail(C, 401, &[("x-ms-diagnostics", diag)]),
        );
        assert_eq!(codes(&v), [code], "{diag}");
        assert!(v.diagnoses[0].summary.contains("x-ms-diagnostics"));
    }
}

#[test]
fn bearer_refused_without_diagnostics_is_token_invalid() {
    let v = conn_verdict(
        "a@contoso.com",
        ONPREM,
        AuthMode::Bearer,
        http_fail(C, 401, &[]),
    );
    assert_eq!(codes(&v), ["token_invalid"]);
}

#[test]
fn negotiate_only_challenge_names_the_schemes() {
    let v = conn_verdict(
        "a@contoso.com",
        ONPREM,
        AuthMode::Basic,
        http_fail(C, 401, &[("www-authenticate", "Negotiate, NTLM")]),
    );
    assert_eq!(codes(&v), ["invalid_credentials"]);
    assert!(v.diagnoses[0].summary.contains("Negotiate and NTLM"));
    assert_eq!(v.account.kind, AccountKind::OnPremises);
}

#[test]
fn plain_401_and_no_credentials() {
    let v = conn_verdict(
        "a@contoso.com",
        ONPREM,
        AuthMode::Basic,
        http_fail(C, 401, &[("www-authenticate", "Basic realm=\"mail\"")]),
    );
    assert_eq!(codes(&v), ["invalid_credentials"]);
    let v = conn_verdict(
        "a@contoso.com",
        ONPREM,
        AuthMode::None,
        http_fail(C, 401, &[("www-authenticate", "Basic realm=\"mail\"")]),
    );
    assert_eq!(codes(&v), ["invalid_credentials"]);
    assert!(v.diagnoses[0].summary.contains("none was sent"));
}

#[test]
fn forbidden_work_account_is_ews_blocked_with_the_right_remedy() {
    let v = conn_verdict(
        "a@contoso.com",
        EXO,
        AuthMode::Bearer,
        http_fail(C, 403, &[]),
    );
    assert_eq!(codes(&v), ["ews_access_blocked"]);
    assert!(v.diagnoses[0].remedy.contains("EwsAllowedAppIDs"));
    let v = conn_verdict(
        "a@contoso.com",
        ONPREM,
        AuthMode::Basic,
        http_fail(C, 403, &[]),
    );
    assert_eq!(codes(&v), ["ews_access_blocked"]);
    assert!(v.diagnoses[0].remedy.contains("Get-CASMailbox"));
}

#[test]
fn http_status_rules() {
    for (status, code, st) in [
        (456, "account_locked", Status::Critical),
        (404, "not_ews_endpoint", Status::Critical),
        (503, "throttled", Status::Warning),
        (429, "throttled", Status::Warning),
        (500, "server_error", Status::Critical),
        (407, "connection_failed", Status::Critical),
        (302, "unexpected_response", Status::Critical),
    ] {
        let v = conn_verdict(
            "a@contoso.com",
            ONPREM,
            AuthMode::Basic,
            http_fail(C, status, &[]),
        );
        assert_eq!(codes(&v), [code], "HTTP {status}");
        assert_eq!(v.status, st, "HTTP {status}");
    }
}

#[test]
fn html_or_non_soap_bodies_below_500_are_not_ews() {
    let mut s = http_fail(C, 200, &[]);
    s.body_error = Some(BodyError::Html {
        title: Some("Outlook".into()),
    });
    assert_eq!(
        codes(&conn_verdict("a@contoso.com", ONPREM, AuthMode::Basic, s)),
        ["not_ews_endpoint"]
    );
    let mut s = http_fail(C, 500, &[]);
    s.body_error = Some(BodyError::Html {
        title: Some("Runtime Error".into()),
    });
    assert_eq!(
        codes(&conn_verdict("a@contoso.com", ONPREM, AuthMode::Basic, s)),
        ["server_error"]
    );
    let mut s = http_fail(C, 200, &[]);
    s.body_error = Some(BodyError::Doctype);
    assert_eq!(
        codes(&conn_verdict("a@contoso.com", ONPREM, AuthMode::Basic, s)),
        ["unexpected_response"]
    );
}

#[test]
fn ews_code_table() {
    for (ews, code) in [
        ("ErrorServerBusy", "throttled"),
        ("ErrorExceededConnectionCount", "throttled"),
        ("ErrorSchemaValidation", "schema_mismatch"),
        ("ErrorInvalidServerVersion", "schema_mismatch"),
        ("ErrorIncorrectSchemaVersion", "schema_mismatch"),
        ("ErrorNonExistentMailbox", "mailbox_not_found"),
        ("ErrorMissingEmailAddress", "mailbox_not_found"),
        ("ErrorImpersonateUserDenied", "impersonation_denied"),
        ("ErrorImpersonationDenied", "impersonation_denied"),
        ("ErrorMailboxMoveInProgress", "mailbox_moving"),
        ("ErrorMailboxStoreUnavailable", "mailbox_unavailable"),
        ("ErrorMailboxFailover", "mailbox_unavailable"),
        ("ErrorAccountDisabled", "invalid_credentials"),
        ("ErrorPasswordExpired", "invalid_credentials"),
        ("ErrorInvalidLicense", "ews_access_blocked"),
        ("ErrorInternalServerError", "server_error"),
        ("ErrorSomethingNew", "unexpected_response"),
    ] {
        let v = conn_verdict("a@contoso.com", ONPREM, AuthMode::Basic, fault_fail(C, ews));
        assert_eq!(codes(&v), [code], "{ews}");
    }
}

#[test]
fn inner_error_of_internal_server_error_decides() {
    let mut s = message_fail(C, "ErrorInternalServerError");
    s.soap.as_mut().unwrap().messages[0].message_xml = vec![(
        "InnerErrorResponseCode".into(),
        "ErrorMailboxMoveInProgress".into(),
    )];
    let v = verdict(
        "a@contoso.com",
        &ev_with(Some(ONPREM), AuthMode::Basic, s, vec![]),
    );
    assert_eq!(codes(&v)[0], "mailbox_moving");
    assert!(v.diagnoses[0].summary.contains("inner error"));
}

#[test]
fn transport_failures() {
    for (kind, code) in [
        (FailureKind::Dns, "dns_failure"),
        (FailureKind::Tls, "tls_failure"),
        (FailureKind::Connect, "connection_failed"),
        (FailureKind::Timeout, "timeout"),
        (FailureKind::TooLarge, "unexpected_response"),
    ] {
        let v = conn_verdict(
            "a@contoso.com",
            ONPREM,
            AuthMode::Basic,
            transport_fail(kind),
        );
        assert_eq!(codes(&v), [code], "{kind:?}");
        assert_eq!(v.status, Status::Critical);
    }
}

#[test]
fn schema_mismatch_leaves_features_untested_and_status_unknown() {
    let v = conn_verdict(
        "a@contoso.com",
        ONPREM,
        AuthMode::Basic,
        fault_fail(C, "ErrorSchemaValidation"),
    );
    assert_eq!(v.status, Status::Unknown);
    assert!(
        v.features
            .iter()
            .all(|f| f.status == FeatureStatus::Untested)
    );
}

#[test]
fn one_folder_denied_is_a_warning_for_that_feature_only() {
    let ev = ev_with(
        Some(EXO),
        AuthMode::Bearer,
        step(C),
        vec![message_fail("ews.get_folder.drafts", "ErrorAccessDenied")],
    );
    let v = verdict("a@contoso.com", &ev);
    assert_eq!(codes(&v), ["folder_access_denied"]);
    assert_eq!(v.status, Status::Warning);
    let st: Vec<FeatureStatus> = v.features.iter().map(|f| f.status).collect();
    assert_eq!(
        st,
        [
            FeatureStatus::Available,
            FeatureStatus::Unavailable,
            FeatureStatus::Available,
            FeatureStatus::Available
        ]
    );
    assert_eq!(
        v.features[1].checks,
        ["ews.get_folder.msgfolderroot", "ews.get_folder.drafts"]
    );
}

#[test]
fn recovered_throttling_degrades_the_feature() {
    let mut s = step("ews.get_folder.calendar");
    s.attempts = Attempts {
        count: 2,
        waits_ms: vec![600],
        hint_past_deadline_ms: None,
    };
    let v = verdict(
        "a@contoso.com",
        &ev_with(Some(EXO), AuthMode::Bearer, step(C), vec![s]),
    );
    assert_eq!(codes(&v), ["throttled"]);
    assert_eq!(v.status, Status::Warning);
    assert_eq!(v.features[3].status, FeatureStatus::Degraded);
}

#[test]
fn most_specific_first_and_worst_status_wins() {
    let ev = ev_with(
        Some(EXO),
        AuthMode::Bearer,
        step(C),
        vec![
            fault_fail("ews.get_folder.sentitems", "ErrorSomethingNew"),
            message_fail("ews.get_folder.drafts", "ErrorAccessDenied"),
            fault_fail("ews.find_item.calendar_view", "ErrorSchemaValidation"),
        ],
    );
    let v = verdict("a@contoso.com", &ev);
    assert_eq!(
        codes(&v),
        [
            "folder_access_denied",
            "unexpected_response",
            "schema_mismatch"
        ]
    );
    assert_eq!(v.status, Status::Warning);
    assert_eq!(v.features[3].status, FeatureStatus::Untested);
}

#[test]
fn healthy_is_ok_and_the_same_evidence_gives_the_same_verdict() {
    let ev = ev_with(Some(EXO), AuthMode::Bearer, step(C), vec![]);
    let a = verdict("a@contoso.com", &ev);
    let b = verdict("a@contoso.com", &ev);
    assert_eq!(a.status, Status::Ok);
    assert!(a.diagnoses.is_empty());
    assert_eq!(a.account.kind, AccountKind::WorkOrSchool);
    assert_eq!(format!("{:?}", a.features), format!("{:?}", b.features));
}
