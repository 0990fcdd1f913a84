//! `shmchan doctor`: what on this host will bite, each warning with what to do about it.

use std::process::ExitCode;

use serde_json::json;

use crate::view;

/// Docker gives a container a 64 MiB `/dev/shm` unless told otherwise.
const DOCKER_DEFAULT_SHM: u64 = 64 << 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Info,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Info => "info",
        }
    }
}

struct Check {
    name: &'static str,
    status: Status,
    message: String,
}

pub fn run(json: bool) -> Result<ExitCode, String> {
    let checks = [
        dev_shm(),
        sysv_limits(),
        proc_visibility(),
        membarrier(),
        namespaces(),
    ];
    if json {
        let all: Vec<_> = checks
            .iter()
            .map(|c| json!({"check": c.name, "status": c.status.as_str(), "message": c.message}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?
        );
    } else {
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|c| {
                vec![
                    c.status.as_str().to_uppercase(),
                    c.name.to_string(),
                    c.message.clone(),
                ]
            })
            .collect();
        print!("{}", view::table(&rows));
        let warnings = checks.iter().filter(|c| c.status == Status::Warn).count();
        println!("{warnings} warning(s)");
    }
    Ok(ExitCode::SUCCESS)
}

fn dev_shm() -> Check {
    let name = "/dev/shm";
    match crate::sys::statvfs("/dev/shm") {
        Err(e) => Check {
            name,
            status: Status::Warn,
            message: format!(
                "cannot read /dev/shm ({e}): the POSIX backend needs it mounted (a tmpfs); use \
                 --backend sysv or file:DIR otherwise"
            ),
        },
        Ok((size, free)) if size <= DOCKER_DEFAULT_SHM => Check {
            name,
            status: Status::Warn,
            message: format!(
                "{} with {} free: Docker's 64 MiB default or less; a channel larger than what is \
                 free fails at create. Give the container more (docker run --shm-size=1g, or \
                 shm_size in compose) or share the host's (--ipc=host)",
                view::bytes(size),
                view::bytes(free)
            ),
        },
        Ok((size, free)) if free < size / 10 => Check {
            name,
            status: Status::Warn,
            message: format!(
                "{} with only {} free: creates of large channels will fail; `shmchan gc` removes \
                 abandoned channels, `ls -la /dev/shm` shows what else is there",
                view::bytes(size),
                view::bytes(free)
            ),
        },
        Ok((size, free)) => Check {
            name,
            status: Status::Ok,
            message: format!("{} with {} free", view::bytes(size), view::bytes(free)),
        },
    }
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn sysv_limits() -> Check {
    let name = "System V limits";
    let (max, all, mni) = (
        read_u64("/proc/sys/kernel/shmmax"),
        read_u64("/proc/sys/kernel/shmall"),
        read_u64("/proc/sys/kernel/shmmni"),
    );
    let (Some(max), Some(all), Some(mni)) = (max, all, mni) else {
        return Check {
            name,
            status: Status::Info,
            message: "cannot read /proc/sys/kernel/shm{max,all,mni} (no /proc?): the System V \
                      backend's limits are unknown"
                .into(),
        };
    };
    let page = 4096u64;
    let in_use = std::fs::read_to_string("/proc/sysvipc/shm")
        .map(|s| s.lines().count().saturating_sub(1) as u64)
        .ok();
    let mut warns = Vec::new();
    if max < 64 << 20 {
        warns.push(format!(
            "shmmax is {}: no segment can be larger (sysctl -w kernel.shmmax=...)",
            view::bytes(max)
        ));
    }
    if all.saturating_mul(page) < 256 << 20 {
        warns.push(format!(
            "shmall is {all} pages ({}) for all segments together (sysctl -w kernel.shmall=...)",
            view::bytes(all.saturating_mul(page))
        ));
    }
    if let Some(n) = in_use {
        if n * 10 >= mni * 9 {
            warns.push(format!(
                "{n} of shmmni={mni} segments in use: each System V channel takes one, and each \
                 process using one takes one more (its liveness token); raise kernel.shmmni or \
                 remove abandoned ones (`shmchan gc --backend sysv`)"
            ));
        }
    }
    let limit = |v: u64, s: String| {
        if v >= 1 << 50 {
            "unlimited".to_string()
        } else {
            s
        }
    };
    let summary = format!(
        "shmmax {}, shmall {}, shmmni {mni}{}",
        limit(max, view::bytes(max)),
        limit(all, format!("{all} pages")),
        in_use.map_or_else(String::new, |n| format!(", {n} segments in use"))
    );
    if warns.is_empty() {
        Check {
            name,
            status: Status::Ok,
            message: summary,
        }
    } else {
        Check {
            name,
            status: Status::Warn,
            message: format!("{summary}; {}", warns.join("; ")),
        }
    }
}

fn proc_visibility() -> Check {
    let name = "/proc";
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Check {
            name,
            status: Status::Info,
            message: "/proc is not mounted: shmchan does not need it (liveness is asked of the \
                      kernel's locks), but the pids `ls` and `stat` show cannot be looked up here"
                .into(),
        };
    };
    let me = std::process::id();
    let pids = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|s| s.parse::<u32>().is_ok())
        })
        .count();
    let hidepid = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains(" /proc ") && l.contains("hidepid="));
    if pids <= 2 || hidepid {
        Check {
            name,
            status: Status::Info,
            message: format!(
                "shows {pids} process(es){}: other users' or other namespaces' processes are \
                 hidden. shmchan does not depend on /proc (liveness comes from kernel locks), \
                 but the pids `ls` shows may not be found in `ps` here",
                if hidepid {
                    " (mounted with hidepid)"
                } else {
                    ""
                }
            ),
        }
    } else {
        Check {
            name,
            status: Status::Ok,
            message: format!("shows {pids} processes (this one is {me})"),
        }
    }
}

fn membarrier() -> Check {
    let name = "membarrier";
    const GLOBAL_EXPEDITED: i64 = 1 << 1;
    match crate::sys::membarrier_query() {
        Ok(mask) if mask & GLOBAL_EXPEDITED != 0 => Check {
            name,
            status: Status::Ok,
            message: "MEMBARRIER_CMD_GLOBAL_EXPEDITED available: a waiter sleeps without a \
                      fence on every send"
                .into(),
        },
        Ok(_) => Check {
            name,
            status: Status::Warn,
            message: "the kernel lacks MEMBARRIER_CMD_GLOBAL_EXPEDITED (Linux 4.16+): parked \
                      waiters sleep at most 1 ms at a time, so a wake-up can be up to 1 ms late; \
                      use a newer kernel, or WaitStrategy::Spin where latency matters"
                .into(),
        },
        Err(e) => Check {
            name,
            status: Status::Warn,
            message: format!(
                "membarrier(2) refused ({e}; a seccomp profile such as Docker's default can \
                 forbid it): parked waiters sleep at most 1 ms at a time, so a wake-up can be up \
                 to 1 ms late; allow membarrier in the profile, or use WaitStrategy::Spin"
            ),
        },
    }
}

fn namespaces() -> Check {
    let name = "namespaces";
    let ns = |who: &str, kind: &str| std::fs::read_link(format!("/proc/{who}/ns/{kind}"));
    let (pid_self, ipc_self) = (ns("self", "pid"), ns("self", "ipc"));
    let (Ok(pid_self), Ok(ipc_self)) = (pid_self, ipc_self) else {
        return Check {
            name,
            status: Status::Info,
            message: "cannot read /proc/self/ns: namespaces unknown".into(),
        };
    };
    let mut msg = format!("pid {}, ipc {}", pid_self.display(), ipc_self.display());
    // pid 1's namespaces can be read only by who may trace it (its owner, or root where
    // allowed): not being able to read them says nothing about where it is.
    match (ns("1", "pid"), ns("1", "ipc")) {
        (Ok(pid_init), Ok(ipc_init)) => {
            if pid_init != pid_self || ipc_init != ipc_self {
                msg += " (pid 1 is in others)";
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            msg += &format!(
                " (cannot tell whether pid 1 shares them: /proc/1/ns cannot be read by this user: \
                 {e})"
            );
        }
    }
    // In a container, pid 1 is the container's init: same namespaces, nothing to compare.
    let host_pid = "pid:[4026531836]";
    let in_container = pid_self.display().to_string() != host_pid;
    if in_container {
        msg += ": not the host's pid namespace (a container?). Peers in other containers see \
                a channel if they share /dev/shm (POSIX, File) or the IPC namespace (System V): \
                run them with --ipc=host or --ipc=container:NAME; pids of peers outside are \
                shown as their own namespace numbers them";
        Check {
            name,
            status: Status::Info,
            message: msg,
        }
    } else {
        Check {
            name,
            status: Status::Ok,
            message: msg,
        }
    }
}
