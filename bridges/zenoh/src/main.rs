//! `shmchan-bridge`: forward shmchan channels between hosts over Zenoh.
//!
//! `out NAME --key KEY` attaches to the local channel `NAME` as its receiver and publishes what
//! it takes on `KEY`; `in NAME --key KEY` subscribes to `KEY` and writes into `NAME` as its
//! sender; `run` carries several routes in one Zenoh session (both directions on one key
//! without echo: each route hears only other processes, `Locality::Remote`); `ls` shows the
//! running bridges' counters. See README.md.

#![deny(unsafe_op_in_unsafe_fn)]

mod adaptive;
mod hops;
mod inbound;
mod local;
mod out;
mod session;
mod stats;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use shmchan::{Backend, Options, WaitStrategy};
use zenoh::Wait;

use crate::stats::{Counters, Route};

/// Forward shmchan channels between hosts over Zenoh (peer mode over TCP, no router, no
/// scouting: only the endpoints given).
#[derive(Parser, Debug)]
#[command(
    name = "shmchan-bridge",
    version,
    after_help = "Examples:\n  \
        hostA$ shmchan-bridge out ticks --key shmchan/hostA/ticks --listen tcp/0.0.0.0:7447\n  \
        hostB$ shmchan-bridge in ticks --key shmchan/hostA/ticks --connect tcp/hostA:7447 --create --capacity 4096\n  \
        shmchan-bridge ls"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Forward a local channel to Zenoh: attach as its receiver, publish on KEY.
    Out {
        /// The local channel (a frame channel, a typed SPSC or MPMC channel, or a topic).
        name: String,
        /// The Zenoh key to publish on (credit comes back on KEY/@credit).
        #[arg(long)]
        key: String,
        #[command(flatten)]
        common: Common,
    },
    /// Forward Zenoh into a local channel: subscribe to KEY, write as the channel's sender.
    In {
        /// The local channel.
        name: String,
        /// The Zenoh key to subscribe to.
        #[arg(long)]
        key: String,
        #[command(flatten)]
        common: Common,
    },
    /// Several routes in one process and one Zenoh session: --out NAME=KEY and --in NAME=KEY,
    /// any number of each. A route never hears this process's own routes, so one key may carry
    /// both directions without echo.
    Run {
        /// An out route, NAME=KEY.
        #[arg(long = "out", value_name = "NAME=KEY")]
        outs: Vec<String>,
        /// An in route, NAME=KEY.
        #[arg(long = "in", value_name = "NAME=KEY")]
        ins: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// The running bridges on this host and their counters.
    Ls {
        /// Print a JSON array, one object per route.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Backpressure end to end (the default): the out side takes from its ring only as far as
    /// the in side's credit goes, and sends again what a restarted in side did not write.
    #[arg(long, conflicts_with = "lossy")]
    lossless: bool,
    /// Never wait: the in side drops (and counts) what its ring has no room for.
    #[arg(long)]
    lossy: bool,
    /// Zenoh endpoint to listen on (repeatable), e.g. tcp/0.0.0.0:7447.
    #[arg(long, value_name = "ENDPOINT")]
    listen: Vec<String>,
    /// Zenoh endpoint to connect to (repeatable), e.g. tcp/hostA:7447; retried for ever.
    #[arg(long, value_name = "ENDPOINT")]
    connect: Vec<String>,
    /// Where the local channel lives: posix, sysv or file:DIR.
    #[arg(long, default_value = "posix", value_parser = parse_backend)]
    backend: Backend,
    /// in: create the local channel if it does not exist, for what the first message carries.
    #[arg(long)]
    create: bool,
    /// How the bridge waits on its local ring: `adaptive` (default: while messages come less
    /// than 1 ms apart, poll until about twice the recent gap after the last one, yielding
    /// the CPU between polls, so the next one needs no wake-up; else spin 50 us, then sleep),
    /// `spin-then-park` (the
    /// library's default: spin 50 us, then sleep), `spin` (a core at 100% while idle), `park`,
    /// or `spin-us:N` (spin N microseconds, then sleep).
    #[arg(long, default_value = "adaptive", value_parser = parse_wait)]
    wait: WaitArg,
    /// in, with --create: ring capacity (messages; bytes for frame channels).
    #[arg(long, default_value_t = 1024)]
    capacity: usize,
    /// in, with --create, a frame topic: the largest frame it takes, in bytes (each of its
    /// `--capacity` slots holds one).
    #[arg(long, default_value_t = 64 << 10, value_parser = parse_max_frame)]
    max_frame: usize,
    /// in, lossless: messages the out side may have in flight past what was written.
    #[arg(long, default_value_t = 16384)]
    window: u64,
    /// in, lossless: bytes the out side may have in flight past what was written.
    #[arg(long, default_value_t = 16 << 20)]
    window_bytes: u64,
}

/// `--wait`: the library's strategy for the ring, and whether the out route polls adaptively
/// before it (see `adaptive.rs`).
#[derive(Clone, Copy, Debug)]
struct WaitArg {
    strategy: WaitStrategy,
    adaptive: bool,
}

fn parse_max_frame(s: &str) -> Result<usize, String> {
    let max = shmchan::broadcast::MAX_FRAME;
    match s.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "max-frame {s:?}: expected a byte count from 1 to {max}"
        )),
    }
}

fn parse_wait(s: &str) -> Result<WaitArg, String> {
    let lib = |strategy| WaitArg {
        strategy,
        adaptive: false,
    };
    match s {
        "adaptive" => Ok(WaitArg {
            strategy: WaitStrategy::default(),
            adaptive: true,
        }),
        "spin-then-park" => Ok(lib(WaitStrategy::default())),
        "spin" => Ok(lib(WaitStrategy::Spin)),
        "park" => Ok(lib(WaitStrategy::Park)),
        _ => s
            .strip_prefix("spin-us:")
            .and_then(|n| n.parse().ok())
            .map(|us| lib(WaitStrategy::SpinThenPark(Duration::from_micros(us))))
            .ok_or_else(|| {
                format!("wait {s:?}: expected adaptive, spin-then-park, spin, park or spin-us:N")
            }),
    }
}

fn parse_backend(s: &str) -> Result<Backend, String> {
    match s {
        "posix" => Ok(Backend::Posix),
        "sysv" => Ok(Backend::SysV),
        _ => match s.strip_prefix("file:") {
            Some(dir) if !dir.is_empty() => Ok(Backend::File(PathBuf::from(dir))),
            _ => Err(format!(
                "unknown backend {s:?}: expected posix, sysv or file:DIR"
            )),
        },
    }
}

/// Set by SIGINT and SIGTERM: every route stops, the state file is removed.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Relaxed); // async-signal-safe: one atomic store
}

fn install_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `on_signal` has the signature `signal` expects and only stores to an atomic,
        // which is async-signal-safe; replacing the default action affects only this process.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

enum Spec {
    Out(out::OutRoute),
    In(inbound::InRoute),
}

fn route(direction: &'static str, name: &str, key: &str, lossless: bool) -> Arc<Route> {
    Arc::new(Route {
        direction,
        name: name.into(),
        key: key.into(),
        mode: if lossless { "lossless" } else { "lossy" },
        fingerprint: Mutex::new(String::new()),
        counters: Arc::new(Counters::default()),
    })
}

fn spec(out: bool, name: &str, key: &str, common: &Common) -> Result<Spec, String> {
    if key.is_empty() || key.contains('@') || key.contains('*') || key.contains('$') {
        return Err(format!(
            "key {key:?}: give a plain key expression (no wildcards, no '@' chunks)"
        ));
    }
    let lossless = !common.lossy;
    let opts = Options::new()
        .backend(common.backend.clone())
        .capacity(common.capacity)
        .wait_strategy(common.wait.strategy);
    Ok(if out {
        Spec::Out(out::OutRoute {
            name: name.into(),
            key: key.into(),
            lossless,
            opts,
            adaptive: common.wait.adaptive,
            route: route("out", name, key, lossless),
        })
    } else {
        Spec::In(inbound::InRoute {
            name: name.into(),
            key: key.into(),
            lossless,
            opts,
            create: common.create,
            max_frame: common.max_frame,
            win_msgs: common.window.max(1),
            win_bytes: common.window_bytes.max(1),
            route: route("in", name, key, lossless),
        })
    })
}

fn split_route(s: &str) -> Result<(&str, &str), String> {
    s.split_once('=')
        .filter(|(n, k)| !n.is_empty() && !k.is_empty())
        .ok_or_else(|| format!("route {s:?}: expected NAME=KEY"))
}

fn run(specs: Vec<Spec>, common: &Common) -> Result<(), String> {
    install_signals();
    let net = session::Net {
        listen: common.listen.clone(),
        connect: common.connect.clone(),
    };
    let session = session::open(&net)?;
    let pid = std::process::id();
    let zid = session.zid().to_string();
    eprintln!(
        "shmchan-bridge: pid {pid}, zenoh id {zid}, listening on {:?}, connecting to {:?}",
        net.listen, net.connect
    );
    let routes: Vec<Arc<Route>> = specs
        .iter()
        .map(|s| match s {
            Spec::Out(r) => r.route.clone(),
            Spec::In(r) => r.route.clone(),
        })
        .collect();
    let dir = stats::state_dir();
    let failure: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for s in specs {
            let (session, failure) = (&session, &failure);
            scope.spawn(move || {
                let r = match s {
                    Spec::Out(r) => r.run(session, &STOP),
                    Spec::In(r) => r.run(session, &STOP),
                };
                if let Err(e) = r {
                    failure.lock().unwrap().get_or_insert(e);
                    STOP.store(true, Relaxed);
                }
            });
        }
        let mut warned = false;
        loop {
            let state = stats::State {
                pid,
                zid: zid.clone(),
                listen: net.listen.clone(),
                connect: net.connect.clone(),
                routes: routes.iter().map(|r| r.snapshot(pid)).collect(),
            };
            if let Err(e) = stats::write_state(&dir, &state) {
                if !warned {
                    eprintln!(
                        "shmchan-bridge: cannot write the state file in {}: {e}",
                        dir.display()
                    );
                    warned = true;
                }
            }
            if STOP.load(Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    stats::remove_state(&dir, pid);
    hops::dump();
    let _ = session.close().wait();
    match failure.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Out { name, key, common } => {
            spec(true, &name, &key, &common).and_then(|s| run(vec![s], &common))
        }
        Command::In { name, key, common } => {
            spec(false, &name, &key, &common).and_then(|s| run(vec![s], &common))
        }
        Command::Run { outs, ins, common } => (|| {
            let mut specs = Vec::new();
            for (list, is_out) in [(&outs, true), (&ins, false)] {
                for r in list {
                    let (name, key) = split_route(r)?;
                    specs.push(spec(is_out, name, key, &common)?);
                }
            }
            if specs.is_empty() {
                return Err("run: give at least one --out NAME=KEY or --in NAME=KEY".into());
            }
            run(specs, &common)
        })(),
        Command::Ls { json } => stats::list(&stats::state_dir())
            .map(|routes| stats::print(&routes, json))
            .map_err(|e| format!("ls: {e}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("shmchan-bridge: {msg}");
            ExitCode::FAILURE
        }
    }
}
