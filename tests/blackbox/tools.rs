//! Outside tools the tests drive, installed by the tests themselves at pinned versions
//! (nothing by hand): Python packages (`tests/tools/requirements.txt`) in a venv, npm
//! packages (`tests/tools/package.json`) and Debian's Chromium.
//!
//! Each install is built in a scratch directory and renamed into place when complete,
//! so concurrent test processes and interrupted runs never see half an install.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const TOOLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/tools");

/// One install at a time within this test process.
static INSTALL: Mutex<()> = Mutex::new(());

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `dir` (under the target directory, named by the contents of the pinned `files`),
/// filled by `fill(scratch)` the first time.
fn installed(name: &str, files: &[&str], fill: impl FnOnce(&Path)) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        std::fs::read(Path::new(TOOLS).join(file))
            .unwrap()
            .hash(&mut hasher);
    }
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = root.join(format!("{name}-{:016x}", hasher.finish()));
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if dir.exists() {
        return dir;
    }
    let scratch = root.join(format!("{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    fill(&scratch);
    // Another process may have finished first; either copy is complete.
    if std::fs::rename(&scratch, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    dir
}

/// A console script of the pinned Python packages (`schemathesis`,
/// `openapi-spec-validator`), run by the venv's interpreter: the scripts' own `#!` lines
/// name the scratch directory the venv was built in.
pub fn python_tool(script: &str) -> Command {
    let python = python();
    let mut cmd = Command::new(&python);
    cmd.arg(python.with_file_name(script));
    cmd
}

/// A Python venv with the pinned packages; returns its interpreter.
pub fn python() -> PathBuf {
    let venv = installed("pytools", &["requirements.txt"], |scratch| {
        run(Command::new("python3").arg("-m").arg("venv").arg(scratch));
        run(Command::new(scratch.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("-r")
            .arg(Path::new(TOOLS).join("requirements.txt")));
    });
    venv.join("bin/python")
}

/// `node_modules` with the pinned npm packages (`npm ci` from the lock file).
pub fn node_modules() -> PathBuf {
    let dir = installed(
        "nodetools",
        &["package.json", "package-lock.json"],
        |scratch| {
            for file in ["package.json", "package-lock.json"] {
                std::fs::copy(Path::new(TOOLS).join(file), scratch.join(file)).unwrap();
            }
            run(Command::new("npm")
                .args(["ci", "--silent", "--no-audit", "--no-fund"])
                .current_dir(scratch));
        },
    );
    dir.join("node_modules")
}

/// Debian's Chromium, installed with apt when the machine lacks it.
pub fn chromium() -> PathBuf {
    let path = PathBuf::from("/usr/bin/chromium");
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if !path.exists() {
        run(Command::new("apt-get").arg("update").arg("-qq"));
        run(Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "chromium",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive"));
    }
    path
}
