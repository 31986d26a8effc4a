//! Files the server writes (database, key files, outboxes) are private to its user:
//! directories 0700 and files 0600, whatever the process umask.

use std::io;
use std::path::Path;

/// Mode of every directory the server creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file the server creates.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents with mode 0700, and sets `dir` itself to 0700
/// when it already existed.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir)?;
    set_mode(dir, DIR_MODE)
}

/// Options that create a file with mode 0600.
pub fn private_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options
}

/// Creates `path` empty with mode 0600 if it is missing, and sets an existing one to 0600.
pub fn private_file(path: &Path) -> io::Result<()> {
    private_options().create(true).append(true).open(path)?;
    set_mode(path, FILE_MODE)
}

/// Sets an existing file's mode to 0600; a missing one is left missing.
pub fn restrict_if_present(path: &Path) -> io::Result<()> {
    match set_mode(path, FILE_MODE) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}
