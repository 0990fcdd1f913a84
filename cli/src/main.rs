//! `shmchan`: see, watch and clean shmchan channels from a shell.
//!
//! A thin layer over `shmchan::inspect` and `shmchan::remove`: one module per subcommand
//! (`cmd/`), and `--json` printed from the same values the human tables print (`view.rs`).
//! It only reads, except `rm` and `gc`, which remove names through the library (under each
//! channel's lock, so never a name that a concurrent `create` just made).

#![deny(unsafe_op_in_unsafe_fn)]
// Under `--cfg loom` (the library's model checking, which builds the whole workspace) the
// library's OS backends and `shmchan::inspect` compile out, and so does this command: it is
// then an empty program.
#![cfg_attr(loom, allow(dead_code, unused_imports))]

#[cfg(not(loom))]
mod cmd;
#[cfg(not(loom))]
mod sys;
#[cfg(not(loom))]
mod view;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shmchan::Backend;

#[cfg(loom)]
fn main() {}

/// The field list of `--json`, shown by `--help` of the commands that print JSON.
const JSON_FIELDS: &str = "\
JSON (--json): `ls` prints an array and `stat` one object, with these fields (stable: fields
may be added, none renamed or removed):
  name            the channel's name
  backend         \"posix\", \"sysv\" or \"file:DIR\"
  state           \"live\" (an endpoint alive), \"abandoned\" (every endpoint gone, or closed),
                  \"not-ready\" (its creator has not published it), \"incompatible\" (another
                  layout version, or a header that makes no sense)
  problem         what is wrong, in words, or null
  version         the layout version in its header
  kind            \"spsc\", \"mpmc\", \"frame\", \"pipe\", \"broadcast\", or null when unknown
  payload         the payload type's name (\"bytes\" for frame and pipe), or null
  payload_size    bytes of one payload value, or null
  payload_align   its alignment, or null
  unit            \"messages\" (spsc, mpmc, broadcast) or \"bytes\" (frame, pipe): the unit of
                  the next four
  capacity        ring capacity
  len             what the ring holds now; broadcast: the lag of the slowest active subscriber
                  (attached, alive, not evicted), 0 with none
  sent            sent since creation (the producer position; frame and pipe: bytes of ring
                  written, record headers and padding included; mpmc: a hint that may trail;
                  broadcast: the publisher's position)
  received        received since creation (the consumer position, as `sent`); broadcast:
                  sent - len, the slowest active subscriber's position
  endpoints       [{\"index\": N, \"role\": \"sender\"|\"receiver\", \"pid\": N,
                    \"alive\": true|false, \"state\": \"attached\"|\"detached\"|\"dead\",
                    \"attached\": N}], one per place some endpoint has held: its index in the
                  endpoint table, the current (or last) occupant's role, pid and state, and
                  how many endpoints have held the place (places are reused: a new endpoint
                  takes the place of one that left or died); a broadcast topic's publisher
                  is place 0 (role \"sender\"), its subscribers the others (\"receiver\")
  overflow        broadcast: \"overwrite\" (the publisher never waits; a subscriber a ring
                  behind loses messages) or \"block\" (it waits for the slowest); else null
  evict_after_ms  broadcast, block: how long a stuck subscriber may hold the publisher back
                  before it is evicted; null if never (or not block)
  subscribers     broadcast: [{\"index\": N, \"pid\": N, \"alive\": true|false,
                    \"state\": \"attached\"|\"detached\"|\"dead\", \"attached\": N,
                    \"lag\": N, \"lagged\": N, \"evicted\": true|false, \"cursor\": N}],
                  one per subscriber place some subscriber has held (as in `endpoints`): lag,
                  messages published and not yet read (sent - cursor, at most capacity; the
                  cursor is published every few messages, so it may trail a little); lagged,
                  messages it was told it lost; evicted, evicted by the publisher (block).
                  Null for other kinds
  owner_uid       the object's owner
  mode            its permission bits, as an octal string (\"0600\")
  size            its size in bytes
  location        its path, or its System V key and id
  created         creation time, RFC 3339 UTC (\"2026-12-01T17:42:03.123Z\"), or null
  creator_pid     the creator's pid, or null
  creator_uid     the creator's user id, or null
  sysv_id         System V: the segment id, else null
  sysv_key        System V: the key (\"0x1234abcd\"), else null";

/// See, watch and clean shmchan channels (lock-free channels over shared memory).
///
/// Every command but `rm` and `gc` only reads: it maps headers read-only, never attaches as
/// an endpoint, never takes a lock and never wakes anyone.
#[derive(Parser, Debug)]
#[command(
    name = "shmchan",
    version,
    after_help = "Examples:\n  shmchan ls\n  shmchan stat ticks --json\n  shmchan watch ticks\n  \
                  shmchan gc --dry-run\n  shmchan doctor"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where channels live: `posix` (/dev/shm), `sysv` (System V segments) or `file:DIR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendArg(pub Backend);

impl std::str::FromStr for BackendArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "posix" => Ok(BackendArg(Backend::Posix)),
            "sysv" => Ok(BackendArg(Backend::SysV)),
            _ => match s.strip_prefix("file:") {
                Some("") => Err("file: needs a directory, as in file:/run/myapp".into()),
                Some(dir) => Ok(BackendArg(Backend::File(PathBuf::from(dir)))),
                None => Err(format!(
                    "unknown backend {s:?}: expected posix, sysv or file:DIR"
                )),
            },
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every shmchan channel, one line each.
    ///
    /// Without --backend: POSIX (/dev/shm) and System V. PEERS is each place's current (or last)
    /// occupant; ATTACHED how many endpoints have attached over the channel's life (places are
    /// reused: a new endpoint takes the place of one that left or died). A broadcast topic's
    /// PEERS are its publisher and how many subscribers are active (`p:4242 subs:3 +1 evicted
    /// +1 gone`), its LEN the lag of the slowest active subscriber, and its RECEIVED `-` (each
    /// subscriber has its own position: `stat` shows them). Objects a creator
    /// killed before it wrote the header carry no mark of shmchan and are not listed (`stat
    /// NAME` and `rm NAME` still handle them). Objects this user cannot read are named on
    /// standard error, with why, and counted.
    #[command(
        after_help = "Examples:\n  shmchan ls\n  shmchan ls --backend file:/run/myapp --json",
        after_long_help = format!("Examples:\n  shmchan ls\n  shmchan ls --backend file:/run/myapp --json\n\n{JSON_FIELDS}")
    )]
    Ls {
        /// posix, sysv or file:DIR (default: posix and sysv).
        #[arg(long, value_name = "BACKEND")]
        backend: Option<BackendArg>,
        /// Print a JSON array (see `shmchan ls --help` for the fields).
        #[arg(long)]
        json: bool,
    },
    /// Everything the header of one channel says.
    ///
    /// The endpoint table has a row per place some endpoint has held: its current (or last)
    /// occupant's role, pid and state, whether it is alive, and ATTACHED, how many endpoints
    /// have held the place. A broadcast topic also shows its overflow mode, and a subscriber
    /// table: each subscriber place's occupant, its LAG (messages published and not yet read,
    /// at most the capacity), LAGGED (messages it was told it lost) and whether it was
    /// EVICTED; the topic's len is the lag of its slowest active subscriber.
    #[command(
        after_help = "Example:\n  shmchan stat ticks --backend sysv",
        after_long_help = format!("Example:\n  shmchan stat ticks --backend sysv\n\n{JSON_FIELDS}")
    )]
    Stat {
        /// The channel's name.
        name: String,
        /// posix, sysv or file:DIR.
        #[arg(long, value_name = "BACKEND", default_value = "posix")]
        backend: BackendArg,
        /// Print one JSON object (see `shmchan stat --help` for the fields).
        #[arg(long)]
        json: bool,
    },
    /// Live rates in and out, fill level and peers of one channel (a topic: publish rate and
    /// subscriber lags), refreshed until Ctrl-C.
    ///
    /// Exits 0 on Ctrl-C, after --count refreshes, or when the channel goes away. A channel
    /// made anew under the name (removed and created again) is watched on: its rates start
    /// again from its own counts. A broadcast topic: the publish rate, the lag of the slowest
    /// active subscriber, and each subscriber's lag, lagged total and read rate (from the
    /// cursor it publishes every few messages), EVICTED if it was.
    #[command(after_help = "Examples:\n  shmchan watch ticks\n  \
                            shmchan watch ticks --interval 250 --count 20")]
    Watch {
        /// The channel's name.
        name: String,
        /// posix, sysv or file:DIR.
        #[arg(long, value_name = "BACKEND", default_value = "posix")]
        backend: BackendArg,
        /// Milliseconds between refreshes.
        #[arg(long, default_value_t = 1000, value_name = "MS",
              value_parser = clap::value_parser!(u64).range(10..))]
        interval: u64,
        /// Stop after this many refreshes (default: until Ctrl-C or the channel goes away).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Remove a channel's name (refused while an endpoint is alive, unless --force).
    ///
    /// Processes attached to a channel whose name is removed keep it; nobody can open it by
    /// name any more, and its memory is freed when the last of them exits.
    #[command(
        after_help = "Examples:\n  shmchan rm ticks\n  shmchan rm ticks --backend sysv --force"
    )]
    Rm {
        /// The channel's name.
        name: String,
        /// posix, sysv or file:DIR.
        #[arg(long, value_name = "BACKEND", default_value = "posix")]
        backend: BackendArg,
        /// Remove the name even if an endpoint is alive or the object is not a channel of
        /// this version; says what it broke.
        #[arg(long)]
        force: bool,
    },
    /// Remove every abandoned channel (every endpoint dead or gone) and stale half-made ones.
    ///
    /// Without --backend: POSIX and System V. Each channel is judged again under its lock
    /// before its name goes, so a channel that came alive meanwhile is left alone.
    #[command(
        after_help = "Examples:\n  shmchan gc --dry-run\n  shmchan gc --backend file:/run/myapp"
    )]
    Gc {
        /// posix, sysv or file:DIR (default: posix and sysv).
        #[arg(long, value_name = "BACKEND")]
        backend: Option<BackendArg>,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Forward channels to other hosts over Zenoh: runs `shmchan-bridge` (installed
    /// separately, from bridges/zenoh) with the rest of the command line.
    ///
    /// `shmchan bridge out NAME --key KEY ...`, `shmchan bridge in NAME --key KEY ...`,
    /// `shmchan bridge ls`; `shmchan bridge --help` is the bridge's own help.
    #[command(
        disable_help_flag = true,
        after_help = "Examples:\n  shmchan bridge out ticks --key shmchan/hostA/ticks --listen tcp/0.0.0.0:7447\n  \
                      shmchan bridge in ticks --key shmchan/hostA/ticks --connect tcp/hostA:7447\n  \
                      shmchan bridge ls"
    )]
    Bridge {
        /// The bridge's arguments.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<OsString>,
    },
    /// What on this host will bite: /dev/shm size, System V limits, /proc, membarrier,
    /// namespaces; each warning says what to do.
    #[command(after_help = "Example:\n  shmchan doctor")]
    Doctor {
        /// Print a JSON array of checks ({"check", "status": "ok"|"warn"|"info", "message"}).
        #[arg(long)]
        json: bool,
    },
}

#[cfg(not(loom))]
fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ls { backend, json } => cmd::ls::run(backend.map(|b| b.0), json),
        Command::Stat {
            name,
            backend,
            json,
        } => cmd::stat::run(&name, &backend.0, json),
        Command::Watch {
            name,
            backend,
            interval,
            count,
        } => cmd::watch::run(&name, &backend.0, interval, count),
        Command::Rm {
            name,
            backend,
            force,
        } => cmd::rm::run(&name, &backend.0, force),
        Command::Gc { backend, dry_run } => cmd::gc::run(backend.map(|b| b.0), dry_run),
        Command::Doctor { json } => cmd::doctor::run(json),
        Command::Bridge { args } => cmd::bridge::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("shmchan: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The backends a command without --backend covers.
pub fn default_backends(backend: Option<Backend>) -> Vec<Backend> {
    match backend {
        Some(b) => vec![b],
        None => vec![Backend::Posix, Backend::SysV],
    }
}
