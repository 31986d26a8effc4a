//! Swagger UI, tried as a person would, in Debian's headless Chromium driven by
//! Playwright (tests/tools/swagger_ui.mjs): each of the four documents selected in the
//! top bar, one operation each run with "Try it out", and the answer the page shows
//! checked. Screenshots stay in the target directory (`swagger-ui-screens/`).

use serde_json::{json, Value};
use std::process::Command;

use crate::harness::{Server, ADMIN_PASSWORD};
use crate::tools;

pub fn swagger_ui_try_it_out(s: Server) {
    let chromium = tools::chromium();
    let node_modules = tools::node_modules();
    // ES modules find packages beside the script, so it runs from the install.
    let script = node_modules.with_file_name(format!("swagger_ui-{}.mjs", std::process::id()));
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/tools/swagger_ui.mjs"
        ),
        &script,
    )
    .unwrap();
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("swagger-ui-screens");
    std::fs::create_dir_all(&shots).unwrap();
    let login = json!({"username": "admin", "password": ADMIN_PASSWORD}).to_string();
    let plan = json!([
        {"dialect": "ucloud", "title": "UCloud dialect", "operation": "operations-auth-logout"},
        {"dialect": "zstack", "title": "ZStack dialect", "operation": "operations-twofactorauthentication-state"},
        {"dialect": "authendpoints", "title": "AuthEndpoints dialect", "operation": "operations-jwt-create", "body": login},
        {"dialect": "saasu", "title": "Saasu dialect", "operation": "operations-authorisation-ping"},
    ]);
    let out = Command::new("node")
        .arg(&script)
        .env("BASE", &s.base)
        .env("CHROMIUM", &chromium)
        .env("PLAN", plan.to_string())
        .env("SHOTS", &shots)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let expected = [
        ("ucloud", "401", ""),
        ("zstack", "200", "\"state\": \"Disable\""),
        ("authendpoints", "200", "\"accessToken\""),
        ("saasu", "401", ""),
    ];
    assert_eq!(shown.len(), expected.len(), "{stdout}");
    for (page, (dialect, status, body)) in shown.iter().zip(expected) {
        assert_eq!(page["dialect"], dialect);
        assert_eq!(page["status"], status, "{page}");
        assert!(page["body"].as_str().unwrap().contains(body), "{page}");
        assert!(shots.join(format!("{dialect}.png")).exists());
    }
}
