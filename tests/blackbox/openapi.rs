//! The OpenAPI documents, checked by outside tools: each validates as OpenAPI 3.1
//! (openapi-spec-validator), and schemathesis, driving the real server from each
//! document, finds no answer the document does not describe.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

use crate::harness::Server;
use crate::tools::python_tool;

pub const DIALECTS: [&str; 4] = ["ucloud", "zstack", "authendpoints", "saasu"];

fn committed(dialect: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../openapi/{dialect}.json"))
}

fn output(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every committed document (the server serves exactly these; a unit test in
/// crates/server keeps them equal to what the code generates) is valid OpenAPI 3.1.
#[test]
fn documents_validate_as_openapi_3_1() {
    for dialect in DIALECTS {
        let path = committed(dialect);
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1."),
            "{dialect}: {}",
            doc["openapi"]
        );
        let (ok, text) = output(python_tool("openapi-spec-validator").arg(&path));
        assert!(ok && text.contains(": OK"), "{dialect}: {text}");
    }
}

/// The validator is not a rubber stamp: a response without its required description,
/// or an operationId used twice, is refused.
#[test]
fn validator_refuses_broken_documents() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(committed("authendpoints")).unwrap()).unwrap();
    let response = doc["paths"]["/users/me"]["get"]["responses"]["200"]
        .as_object_mut()
        .unwrap();
    response.remove("description");
    let path = dir.path().join("broken.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    let (ok, text) = output(python_tool("openapi-spec-validator").arg(&path));
    assert!(!ok, "a response without a description passed: {text}");
}

/// schemathesis over one document: its examples, its boundary cases and random inputs
/// (bounded, with a fixed seed), each answer checked against the document: status,
/// content type, headers and body schema, and no 5xx unless `server_errors_are_wire`
/// (ZStack's wire answers 500 and 503 with its own error bodies, all documented).
fn schemathesis(s: &Server, dialect: &str, headers: &[String], server_errors_are_wire: bool) {
    let work = tempfile::tempdir().unwrap();
    let mut checks = vec![
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ];
    if !server_errors_are_wire {
        checks.push("not_a_server_error");
    }
    let mut cmd = python_tool("schemathesis");
    cmd.current_dir(work.path())
        .arg("run")
        .arg(s.url(&format!("/openapi/{dialect}.json")))
        .args(["--checks", &checks.join(",")])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args([
            "--max-examples",
            "30",
            "--seed",
            "20261202",
            "--workers",
            "1",
        ])
        .args(["--generation-database", "none", "--no-color"])
        .env("NO_COLOR", "1");
    for header in headers {
        cmd.args(["--header", header]);
    }
    let (ok, text) = output(&mut cmd);
    assert!(
        ok,
        "schemathesis found answers that contradict {dialect}'s document:\n{text}"
    );
    assert!(text.contains("Tested:"), "{text}");
}

pub fn schemathesis_ucloud(s: Server) {
    s.add_user("sam", "sam-password");
    let (status, body) = crate::ucloud::login_form(&s, "sam", "sam-password");
    assert_eq!(status, 200, "{body}");
    let token = body["accessToken"].as_str().unwrap();
    // Credentials first: a long run can outlast the client's idle pooled connection.
    schemathesis(&s, "ucloud", &[], false);
    schemathesis(
        &s,
        "ucloud",
        &[format!("Authorization: Bearer {token}")],
        false,
    );
}

pub fn schemathesis_zstack(s: Server) {
    s.add_user("sam", "sam-password");
    let session = crate::zstack::session(&s, "sam", "sam-password", &[]);
    // Credentials first: a long run can outlast the client's idle pooled connection.
    schemathesis(&s, "zstack", &[], true);
    schemathesis(
        &s,
        "zstack",
        &[format!("Authorization: OAuth {session}")],
        true,
    );
}

pub fn schemathesis_authendpoints(s: Server) {
    s.add_user("sam", "sam-password");
    let (access, _) = crate::authendpoints::tokens(&s, "sam", "sam-password");
    // Credentials first: a long run can outlast the client's idle pooled connection.
    schemathesis(&s, "authendpoints", &[], false);
    schemathesis(
        &s,
        "authendpoints",
        &[format!("Authorization: Bearer {access}")],
        false,
    );
}

pub fn schemathesis_saasu(s: Server) {
    s.add_user("sam", "sam-password");
    let grant = crate::saasu::token(&s, "sam", "sam-password");
    let token = grant["access_token"].as_str().unwrap();
    // Credentials first: a long run can outlast the client's idle pooled connection.
    schemathesis(&s, "saasu", &[], false);
    schemathesis(
        &s,
        "saasu",
        &[format!("Authorization: Bearer {token}")],
        false,
    );
}
