//! One module per subcommand. Each `run` returns the exit code, or an error message (printed as
//! `shmchan: ...`, exit 1).

pub mod bridge;
pub mod doctor;
pub mod gc;
pub mod ls;
pub mod rm;
pub mod stat;
pub mod watch;
