//! `docker/`: this machine has no container engine, so what can be checked without one
//! is: the files parse, every `TWOFA_*` variable they set is a setting of the server,
//! and the image's command, environment and health check, run here on the real binary,
//! serve and pass.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::Server;
use crate::tools;

fn docker_file(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docker")
            .join(name),
    )
    .unwrap()
}

/// The Dockerfile's instructions of the final stage, continuation lines joined.
fn final_stage() -> Vec<(String, String)> {
    let text = docker_file("Dockerfile").replace("\\\n", " ");
    let mut stage = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (instruction, args) = line.split_once(' ').unwrap_or((line, ""));
        if instruction == "FROM" {
            stage.clear();
        }
        stage.push((instruction.to_string(), args.trim().to_string()));
    }
    stage
}

fn instruction<'a>(stage: &'a [(String, String)], name: &str) -> &'a str {
    &stage
        .iter()
        .rfind(|(i, _)| i == name)
        .unwrap_or_else(|| panic!("no {name} in the final stage"))
        .1
}

fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not exec form: {args}: {e}"))
}

/// `ENV a=b c=d` pairs of the final stage.
fn image_env(stage: &[(String, String)]) -> BTreeMap<String, String> {
    stage
        .iter()
        .filter(|(i, _)| i == "ENV")
        .flat_map(|(_, args)| args.split_whitespace())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The `TWOFA_*` variables the server reads, from its own `--help`.
fn server_variables(s: &Server) -> Vec<String> {
    let help = s.cli(&["--help"], None);
    help.split("env: ")
        .skip(1)
        .map(|rest| rest.split(['=', ']']).next().unwrap().to_string())
        .collect()
}

/// compose.yaml as JSON (PyYAML, from the pinned test tools).
fn compose() -> Value {
    let out = Command::new(tools::python())
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(docker_file("compose.yaml").as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "compose.yaml does not parse");
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn docker_image_and_compose(s: Server) {
    let known = server_variables(&s);
    assert!(known.contains(&"TWOFA_BIND".to_string()), "{known:?}");

    // The image: pinned builder, non-root user, /data volume, health check on /healthz.
    let text = docker_file("Dockerfile");
    let builder = text
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .expect("built with the rust image");
    let version = builder.split('-').next().unwrap();
    assert_eq!(
        version.split('.').count(),
        3,
        "toolchain not pinned: {builder}"
    );
    let stage = final_stage();
    let user = instruction(&stage, "USER");
    assert!(user != "root" && user != "0", "runs as {user}");
    assert_eq!(exec_form(instruction(&stage, "VOLUME")), ["/data"]);
    let env = image_env(&stage);
    assert_eq!(env["TWOFA_DATA_DIR"], "/data");
    for name in env.keys() {
        assert!(known.contains(name), "the image sets {name}, not a setting");
    }
    let health = instruction(&stage, "HEALTHCHECK");
    let health_cmd = exec_form(health.split_once("CMD ").unwrap().1);
    assert!(
        health_cmd.iter().any(|a| a.ends_with("/healthz")),
        "{health}"
    );

    // compose.yaml: the server with PostgreSQL and a mail sink, settings in one block.
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    for service in ["twofa", "postgres", "mail"] {
        assert!(services.contains_key(service), "no {service} service");
    }
    let settings = services["twofa"]["environment"].as_object().unwrap();
    assert_eq!(
        compose["x-twofa-settings"].as_object().unwrap(),
        settings,
        "the settings block is the server's environment"
    );
    for name in settings.keys() {
        assert!(known.contains(name), "compose sets {name}, not a setting");
    }
    assert!(settings["TWOFA_DATABASE_URL"]
        .as_str()
        .unwrap()
        .starts_with("postgres://"));
    assert!(settings["TWOFA_SMTP_URL"]
        .as_str()
        .unwrap()
        .contains("mail:"));

    // The image's entrypoint, command and environment on the real binary (data
    // directory and port moved to this test's), then its health check.
    let mut argv = exec_form(instruction(&stage, "ENTRYPOINT"));
    argv.extend(exec_form(instruction(&stage, "CMD")));
    assert_eq!(argv[1..], ["serve"], "the command the black-box tests run");
    assert!(argv[0].ends_with("/twofa"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_twofa"))
        .args(&argv[1..])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&env)
        .env("TWOFA_DATA_DIR", data.path())
        .env("TWOFA_BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let check = |cmd: &[String]| {
        let args: Vec<String> = cmd
            .iter()
            .map(|a| a.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}")))
            .collect();
        Command::new(&args[0])
            .args(&args[1..])
            .status()
            .is_ok_and(|s| s.success())
    };
    let healthy = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        check(&health_cmd)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(healthy, "the image's health check never passed");
    assert!(
        data.path().join("master.key").exists(),
        "state goes to the volume"
    );
}
