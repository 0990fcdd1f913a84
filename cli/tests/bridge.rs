//! `shmchan bridge ...` runs `shmchan-bridge` with the rest of the command line (from PATH
//! here; next to `shmchan` first), and says clearly when it is not installed.

use std::path::PathBuf;
use std::process::Command;

const SHMCHAN: &str = env!("CARGO_BIN_EXE_shmchan");

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shmchan-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn bridge_runs_shmchan_bridge_with_its_arguments() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("bridge");
    let fake = dir.join("shmchan-bridge");
    std::fs::write(&fake, "#!/bin/sh\necho \"fake bridge: $*\"\nexit 3\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(SHMCHAN)
        .args(["bridge", "out", "ticks", "--key", "a/b", "--help"])
        .env("PATH", &dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "fake bridge: out ticks --key a/b --help\n"
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "the bridge's exit status is the command's"
    );
}

#[test]
fn bridge_says_when_shmchan_bridge_is_not_installed() {
    let dir = scratch("nobridge");
    let out = Command::new(SHMCHAN)
        .args(["bridge", "ls"])
        .env("PATH", &dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("`shmchan-bridge` is not installed"), "{err}");
    assert!(err.contains("bridges/zenoh"), "{err}");
}
