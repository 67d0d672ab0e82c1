//! Validates every request the tool can build against Microsoft's EWS schema, with xmllint.
//!
//! The schema folder comes only from `EWS_SCHEMA_DIR` (it holds `ews-validate.xsd`,
//! `messages.xsd`, `types.xsd`, `xml.xsd`); the schema files are never part of the project.
//! Each request becomes one document: a `v:Check` wrapper holding the SOAP header elements
//! and the body element, one per line, so an error's line number says which part is wrong.
//! All documents of a test go to one xmllint call (the schema compiles once); xmllint says
//! per file whether it validates, and the file is named after the request.
//!
//! Without `EWS_SCHEMA_DIR` the tests are skipped with a message, except under CI (`CI` set),
//! where a missing schema is a failure: a skipped schema check must never pass silently there.

use ews_probe::ews::envelope::SERVER_VERSIONS;
use ews_probe::ews::ops::create_item::CreateDraft;
use ews_probe::ews::ops::delete_item::HardDelete;
use ews_probe::ews::ops::find_item::{FindItem, View};
use ews_probe::ews::ops::get_folder::GetFolder;
use ews_probe::ews::ops::get_user_availability::GetUserAvailability;
use ews_probe::ews::ops::sync_folder_items::SyncFolderItems;
use ews_probe::ews::{Envelope, RequestContext, ServerVersion};
use ews_probe::probe::plan::{self, CheckOp};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use time::macros::datetime;

const CHECK_OPEN: &str = r#"<v:Check xmlns:v="urn:local:ews-validate-driver" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">"#;
const CHECK_CLOSE: &str = "</v:Check>";
const DRIVER: &str = "ews-validate.xsd";

/// The schema folder, or `None` when the test is to be skipped (not under CI). Panics when
/// validation was asked for but cannot run.
fn schema_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("EWS_SCHEMA_DIR").filter(|v| !v.is_empty());
    let Some(dir) = dir else {
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
            panic!(
                "EWS_SCHEMA_DIR is not set, and CI is set: the EWS schema validation must run in CI. \
                 Set EWS_SCHEMA_DIR to the folder holding ews-validate.xsd, messages.xsd, types.xsd and xml.xsd \
                 (e.g. EWS_SCHEMA_DIR=/work/shared/ews-schema) and install xmllint (libxml2-utils)."
            );
        }
        eprintln!(
            "SKIPPED: EWS schema validation did not run because EWS_SCHEMA_DIR is not set. \
             Set it to the folder holding ews-validate.xsd, messages.xsd, types.xsd and xml.xsd \
             (e.g. EWS_SCHEMA_DIR=/work/shared/ews-schema cargo test --test schema); \
             under CI (CI set) a missing EWS_SCHEMA_DIR fails instead."
        );
        return None;
    };
    let dir = PathBuf::from(dir);
    let driver = dir.join(DRIVER);
    assert!(
        driver.is_file(),
        "EWS_SCHEMA_DIR={} has no {DRIVER}: point it at the folder with ews-validate.xsd, messages.xsd, types.xsd and xml.xsd",
        dir.display()
    );
    match Command::new("xmllint").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "EWS_SCHEMA_DIR is set but `xmllint --version` failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "EWS_SCHEMA_DIR is set but xmllint cannot be run ({e}); install it (Debian/Ubuntu: apt-get install libxml2-utils)"
        ),
    }
    Some(dir)
}

/// The validation document of one request: the header elements, then the body element.
fn check_doc(env: &Envelope) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    s.push_str(CHECK_OPEN);
    s.push('\n');
    for h in &env.headers {
        s.push_str(h);
        s.push('\n');
    }
    s.push_str(&env.body);
    s.push('\n');
    s.push_str(CHECK_CLOSE);
    s.push('\n');
    s
}

/// Validates each `(name, document)` in one xmllint run. Returns, per name, `Ok` or the
/// xmllint messages about that document.
fn validate(schema: &Path, docs: &[(String, String)]) -> BTreeMap<String, Result<(), String>> {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let mut files = Vec::new();
    for (name, xml) in docs {
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "request name '{name}' must be usable as a file name"
        );
        let file = format!("{name}.xml");
        std::fs::write(tmp.path().join(&file), xml).expect("write validation document");
        files.push(file);
    }
    let out = Command::new("xmllint")
        .current_dir(tmp.path())
        .arg("--noout")
        .arg("--schema")
        .arg(schema.join(DRIVER))
        .args(&files)
        .output()
        .expect("run xmllint");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // xmllint exits 5 when the schema itself does not compile: no document was checked.
    assert!(
        out.status.code() != Some(5) && !text.contains("failed to compile"),
        "the schema in {} did not compile ({}):\n{text}",
        schema.display(),
        out.status
    );
    let mut results = BTreeMap::new();
    for ((name, _), file) in docs.iter().zip(&files) {
        let validates = text.lines().any(|l| l == format!("{file} validates"));
        let messages: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with(&format!("{file}:")) || *l == format!("{file} fails to validate")
            })
            .collect();
        let r = if validates && messages.is_empty() {
            Ok(())
        } else if messages.is_empty() {
            Err(format!(
                "xmllint gave no verdict for {file} ({}):\n{text}",
                out.status
            ))
        } else {
            Err(messages.join("\n"))
        };
        results.insert(name.clone(), r);
    }
    results
}

/// Validates requests and fails naming every request that does not validate, with its
/// document and xmllint's messages.
fn assert_all_valid(schema: &Path, requests: &[(String, Envelope)]) {
    let docs: Vec<(String, String)> = requests
        .iter()
        .map(|(name, env)| (name.clone(), check_doc(env)))
        .collect();
    let results = validate(schema, &docs);
    let failures: Vec<String> = docs
        .iter()
        .filter_map(|(name, doc)| match &results[name] {
            Ok(()) => None,
            Err(msg) => Some(format!(
                "request {name} is not schema-valid:\n{msg}\ndocument:\n{doc}"
            )),
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed EWS schema validation:\n\n{}",
        failures.len(),
        docs.len(),
        failures.join("\n\n")
    );
    eprintln!(
        "{} requests validated against {}",
        docs.len(),
        schema.display()
    );
}

/// The contexts every operation is built with: plain, and impersonating another mailbox.
fn contexts() -> Vec<(&'static str, RequestContext)> {
    vec![
        ("default", RequestContext::default()),
        (
            "impersonate",
            RequestContext {
                impersonate: Some("user@contoso.com".into()),
                ..RequestContext::default()
            },
        ),
    ]
}

/// Every operation in every shape the tool can build (own folder and delegate, both views,
/// with and without optional parts), named for failure messages.
fn operations(ctx: &RequestContext) -> Vec<(String, Envelope)> {
    let start = datetime!(2026-11-25 10:30:00 +01:00);
    let end = start + time::Duration::days(7);
    let mut v: Vec<(String, Envelope)> = Vec::new();
    for folder in ["msgfolderroot", "inbox", "sentitems", "drafts", "calendar"] {
        v.push((
            format!("GetFolder.own.{folder}"),
            Envelope::new(ctx, &GetFolder::distinguished(folder)),
        ));
    }
    v.push((
        "GetFolder.delegate.calendar".into(),
        Envelope::new(
            ctx,
            &GetFolder {
                folder: "calendar",
                mailbox: Some("boss@contoso.com".into()),
            },
        ),
    ));
    // Characters the envelope writer must escape.
    v.push((
        "GetFolder.delegate.escaped-address".into(),
        Envelope::new(
            ctx,
            &GetFolder {
                folder: "inbox",
                mailbox: Some("o'neil&co<x>@contoso.com".into()),
            },
        ),
    ));
    for (who, mailbox) in [
        ("own", None),
        ("delegate", Some("boss@contoso.com".to_string())),
    ] {
        v.push((
            format!("FindItem.IndexedPage.{who}.inbox"),
            Envelope::new(
                ctx,
                &FindItem {
                    folder: "inbox",
                    mailbox: mailbox.clone(),
                    view: View::IndexedPage { max: 1 },
                },
            ),
        ));
        v.push((
            format!("FindItem.Calendar.{who}.calendar"),
            Envelope::new(
                ctx,
                &FindItem {
                    folder: "calendar",
                    mailbox: mailbox.clone(),
                    view: View::Calendar { start, end, max: 1 },
                },
            ),
        ));
        v.push((
            format!("SyncFolderItems.{who}.calendar"),
            Envelope::new(
                ctx,
                &SyncFolderItems {
                    folder: "calendar",
                    mailbox,
                    max_changes: 1,
                },
            ),
        ));
    }
    // Out-of-range values are clamped into the schema's 1..=512.
    for max in [0u16, 512, u16::MAX] {
        v.push((
            format!("SyncFolderItems.own.calendar.max{max}"),
            Envelope::new(
                ctx,
                &SyncFolderItems {
                    folder: "calendar",
                    mailbox: None,
                    max_changes: max,
                },
            ),
        ));
    }
    v.push((
        "GetUserAvailability.self".into(),
        Envelope::new(
            ctx,
            &GetUserAvailability {
                mailbox: "user@contoso.com".into(),
                start: datetime!(2026-11-25 10:00:00 UTC),
                end: datetime!(2026-11-26 10:00:00 UTC),
            },
        ),
    ));
    v.push((
        "CreateItem.draft".into(),
        Envelope::new(
            ctx,
            &CreateDraft {
                mailbox: "user@contoso.com".into(),
                deferred_send: None,
            },
        ),
    ));
    v.push((
        "CreateItem.deferred_send".into(),
        Envelope::new(
            ctx,
            &CreateDraft {
                mailbox: "user@contoso.com".into(),
                deferred_send: Some(datetime!(2027-11-25 09:00:00 +02:00)),
            },
        ),
    ));
    v.push((
        "CreateItem.draft.escaped-address".into(),
        Envelope::new(
            ctx,
            &CreateDraft {
                mailbox: "o'neil&co@contoso.com".into(),
                deferred_send: None,
            },
        ),
    ));
    // A realistic Exchange item id: base64 with '+', '/' and '='.
    let item_id = "AAMkADk0N2E4ZjQ1LWU5ODEtNDFjYi1hMGI5LTM4MzQ1MzVjOWM2ZABGAAAAAAC+/4bGz5XcTaYgq3zmC1sUBwBp8ZXyAAA=";
    v.push((
        "DeleteItem.HardDelete.with-change-key".into(),
        Envelope::new(
            ctx,
            &HardDelete {
                item_id: item_id.into(),
                change_key: Some("CQAAABYAAABp8ZXy+/dxR5BUtaCPcAAAAAAb".into()),
            },
        ),
    ));
    v.push((
        "DeleteItem.HardDelete.no-change-key".into(),
        Envelope::new(
            ctx,
            &HardDelete {
                item_id: item_id.into(),
                change_key: None,
            },
        ),
    ));
    v
}

/// The request of one check of the probe's plan, built the way the check runner builds it.
fn plan_request(ctx: &RequestContext, op: CheckOp) -> Vec<Envelope> {
    let now = datetime!(2026-11-25 09:41:17 UTC);
    let mailbox = "megan.bowen@contoso.onmicrosoft.com";
    match op {
        CheckOp::GetFolder(f) => vec![Envelope::new(ctx, &GetFolder::distinguished(f))],
        CheckOp::FindItemIndexed(f) => vec![Envelope::new(
            ctx,
            &FindItem {
                folder: f,
                mailbox: None,
                view: View::IndexedPage { max: 1 },
            },
        )],
        CheckOp::FindItemCalendarView => vec![Envelope::new(
            ctx,
            &FindItem {
                folder: "calendar",
                mailbox: None,
                view: View::Calendar {
                    start: now,
                    end: now + time::Duration::days(7),
                    max: 1,
                },
            },
        )],
        CheckOp::GetUserAvailability => vec![Envelope::new(
            ctx,
            &GetUserAvailability {
                mailbox: mailbox.into(),
                start: datetime!(2026-11-25 09:00:00 UTC),
                end: datetime!(2026-11-26 09:00:00 UTC),
            },
        )],
        CheckOp::SyncFolderItems(f) => vec![Envelope::new(
            ctx,
            &SyncFolderItems {
                folder: f,
                mailbox: None,
                max_changes: 1,
            },
        )],
        CheckOp::WriteDraft { deferred_send } => vec![
            Envelope::new(
                ctx,
                &CreateDraft {
                    mailbox: mailbox.into(),
                    deferred_send: deferred_send.then(|| now + time::Duration::days(365)),
                },
            ),
            Envelope::new(
                ctx,
                &HardDelete {
                    item_id: "AAMkAGI2TG93AAA=".into(),
                    change_key: Some("CQAAABYAAAA=".into()),
                },
            ),
        ],
    }
}

#[test]
fn every_operation_validates_with_and_without_impersonation() {
    let Some(schema) = schema_dir() else { return };
    let mut requests = Vec::new();
    for (ctx_name, ctx) in contexts() {
        for (op_name, env) in operations(&ctx) {
            // What is validated must be exactly what is sent.
            let xml = env.to_xml();
            for part in env.headers.iter().chain(std::iter::once(&env.body)) {
                assert!(
                    xml.contains(part.as_str()),
                    "{ctx_name}.{op_name}: to_xml() does not carry {part}"
                );
            }
            assert_eq!(
                env.headers.len(),
                if ctx.impersonate.is_some() { 2 } else { 1 },
                "{ctx_name}.{op_name}: headers {:?}",
                env.headers
            );
            requests.push((format!("{ctx_name}.{op_name}"), env));
        }
    }
    assert_all_valid(&schema, &requests);
}

#[test]
fn every_check_of_the_probe_plan_validates() {
    let Some(schema) = schema_dir() else { return };
    let mut requests = Vec::new();
    for (ctx_name, ctx) in contexts() {
        for check in plan::checks(true) {
            for (i, env) in plan_request(&ctx, check.op).into_iter().enumerate() {
                requests.push((format!("{ctx_name}.plan.{}.{i}", check.id), env));
            }
        }
    }
    assert!(
        requests.len() >= 2 * 10,
        "the plan lost checks: {}",
        requests.len()
    );
    assert_all_valid(&schema, &requests);
}

#[test]
fn every_server_version_validates() {
    let Some(schema) = schema_dir() else { return };
    assert!(SERVER_VERSIONS.contains(&ServerVersion::DEFAULT.as_str()));
    let mut requests = Vec::new();
    for v in SERVER_VERSIONS {
        let version: ServerVersion = v.parse().expect("every SERVER_VERSIONS value parses");
        assert_eq!(version.as_str(), *v);
        for (name, impersonate) in [
            ("default", None),
            ("impersonate", Some("user@contoso.com".to_string())),
        ] {
            let ctx = RequestContext {
                version,
                impersonate,
            };
            requests.push((
                format!("version.{v}.{name}.GetFolder"),
                Envelope::new(&ctx, &GetFolder::distinguished("msgfolderroot")),
            ));
        }
    }
    assert_all_valid(&schema, &requests);
}

/// Proves the validation can fail, and that a failure is pinned to the right request: one
/// valid and several hand-written invalid documents go through the same xmllint run.
#[test]
fn negative_control_invalid_requests_are_rejected() {
    let Some(schema) = schema_dir() else { return };
    let good = check_doc(&Envelope::new(
        &RequestContext::default(),
        &GetFolder::distinguished("msgfolderroot"),
    ));
    let wrap = |inner: &str| {
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n{CHECK_OPEN}\n{inner}\n{CHECK_CLOSE}\n"
        )
    };
    let docs = vec![
        ("control.valid".to_string(), good),
        (
            "control.bad-folder-id".to_string(),
            wrap(
                r#"<t:RequestServerVersion Version="Exchange2013_SP1"/><m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="notafolder"/></m:FolderIds></m:GetFolder>"#,
            ),
        ),
        (
            // Sent by older exchangelib releases; not in the schema's enumeration.
            "control.bad-server-version".to_string(),
            wrap(r#"<t:RequestServerVersion Version="Exchange2019"/>"#),
        ),
        (
            // FindItemType's order is ItemShape, view, ParentFolderIds.
            "control.wrong-element-order".to_string(),
            wrap(
                r#"<m:FindItem Traversal="Shallow"><m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape></m:FindItem>"#,
            ),
        ),
        (
            "control.not-well-formed".to_string(),
            wrap("<m:GetFolder><m:FolderShape>"),
        ),
    ];
    let results = validate(&schema, &docs);
    assert_eq!(
        results["control.valid"],
        Ok(()),
        "the valid control document must validate"
    );
    for (name, needle) in [
        ("control.bad-folder-id", "notafolder"),
        ("control.bad-server-version", "Exchange2019"),
        ("control.wrong-element-order", "ParentFolderIds"),
        ("control.not-well-formed", "control.not-well-formed.xml"),
    ] {
        match &results[name] {
            Ok(()) => panic!("{name}: xmllint accepted a document that breaks the EWS schema"),
            Err(msg) => assert!(
                msg.contains(needle),
                "{name}: expected the error to mention '{needle}', got:\n{msg}"
            ),
        }
    }
}
