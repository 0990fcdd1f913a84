//! `shmchan bridge ...`: runs `shmchan-bridge` (the Zenoh bridge, `bridges/zenoh/`) with the
//! rest of the command line, the way `git` runs its external subcommands. The bridge is its
//! own program and its own cargo workspace, so this command does not carry Zenoh's crates.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const PROGRAM: &str = "shmchan-bridge";

/// Where `shmchan-bridge` is: next to this executable first, then on `PATH`.
fn find() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(PROGRAM)));
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(PROGRAM));
    beside.into_iter().chain(on_path).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Replace this process with `shmchan-bridge ARGS...`; returns only if that fails.
pub fn run(args: &[OsString]) -> Result<ExitCode, String> {
    let Some(path) = find() else {
        return Err(format!(
            "`{PROGRAM}` is not installed (looked next to this executable and on PATH): \
             build it with `cargo install --path bridges/zenoh` from the shmchan sources, \
             or put it on PATH"
        ));
    };
    let err = Command::new(&path).args(args).exec();
    Err(format!("cannot run {}: {err}", path.display()))
}
