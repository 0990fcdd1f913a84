//! `shmcat`: a pipe between two shells, through shared memory.
//!
//! ```text
//! cargo run --release --example shmcat -- send NAME < file     # in one shell
//! cargo run --release --example shmcat -- recv NAME > copy     # in another
//! ```
//!
//! Either side may start first: each opens the pipe `NAME` or creates it. `send` copies its
//! standard input into the pipe and leaves at end of input; `recv` copies the pipe to its
//! standard output until the sender has left and everything is read (end of file), as `cat`
//! at the end of a pipe does. Options: `--capacity BYTES` (default 4 MiB, used by whichever
//! side creates the pipe), `--backend posix|sysv|file:DIR`.

use std::io::{BufRead, Read, Write};

use shmchan::{Backend, Error, Options, pipe};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn usage() -> ! {
    eprintln!(
        "usage: shmcat send|recv NAME [--capacity BYTES] [--backend posix|sysv|file:DIR]\n\
         \n  shmcat send NAME < file    copy standard input into the pipe NAME\n  \
         shmcat recv NAME > file    copy the pipe NAME to standard output"
    );
    std::process::exit(2)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(mode), Some(name)) = (args.next(), args.next()) else {
        usage()
    };
    let mut opts = Options::new().capacity(4 << 20);
    while let Some(a) = args.next() {
        let val = args.next().unwrap_or_else(|| usage());
        opts = match a.as_str() {
            "--capacity" => opts.capacity(val.parse()?),
            "--backend" => opts.backend(match val.as_str() {
                "posix" => Backend::Posix,
                "sysv" => Backend::SysV,
                f if f.starts_with("file:") => Backend::File(f[5..].into()),
                _ => usage(),
            }),
            _ => usage(),
        };
    }
    match mode.as_str() {
        "send" => send(&name, &opts),
        "recv" => recv(&name, &opts),
        _ => usage(),
    }
}

/// Open `name` with `open`, or create it with `create` if it does not exist (yet), whichever
/// side comes first.
fn open_or_create<T>(
    open: impl Fn() -> std::result::Result<T, Error>,
    create: impl Fn() -> std::result::Result<T, Error>,
) -> std::result::Result<T, Error> {
    loop {
        match open() {
            Err(Error::NotFound { .. }) => match create() {
                Err(Error::AlreadyExists { .. }) => continue, // the other side was faster
                r => return r,
            },
            r => return r,
        }
    }
}

fn send(name: &str, opts: &Options) -> Result<()> {
    let mut w = open_or_create(
        || pipe::Writer::open(name, opts),
        || pipe::Writer::create(name, opts),
    )?;
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => {
                // End of input. The pipe goes with its last endpoint, so wait for a receiver to
                // attach (it may not have started yet) before dropping `w`, which is then end
                // of file for it once it has read everything.
                w.wait_for_peer(std::time::Duration::MAX)?;
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        match w.write_all(&buf[..n]) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                eprintln!("shmcat: the receiver of {name:?} is gone");
                std::process::exit(1);
            }
            r => r?,
        }
    }
}

fn recv(name: &str, opts: &Options) -> Result<()> {
    let mut r = open_or_create(
        || pipe::Reader::open(name, opts),
        || pipe::Reader::create(name, opts),
    )?;
    let mut stdout = std::io::stdout().lock();
    loop {
        // Straight from the ring to standard output: `fill_buf` lends the bytes in place.
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok(stdout.flush()?);
        }
        let n = chunk.len();
        stdout.write_all(chunk)?;
        r.consume(n);
    }
}
