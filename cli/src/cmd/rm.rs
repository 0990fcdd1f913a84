//! `shmchan rm NAME [--force]`: remove a name, through the library (under the channel's lock).

use std::process::ExitCode;

use shmchan::{Backend, Error, Options};

use crate::view;

pub fn run(name: &str, backend: &Backend, force: bool) -> Result<ExitCode, String> {
    let opts = Options::new().backend(backend.clone());
    let where_ = view::backend_name(backend);
    if force {
        return match shmchan::inspect::remove_forced(name, &opts) {
            Ok(None) => {
                println!("removed {name} ({where_})");
                Ok(ExitCode::SUCCESS)
            }
            Ok(Some(broke)) => {
                println!("removed {name} ({where_}), forced: {broke}");
                println!(
                    "  processes attached to it keep it and its memory until they exit, but \
                     nobody can open it by name any more; a new `create` of {name:?} makes \
                     another channel"
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Err(e.to_string()),
        };
    }
    match shmchan::remove(name, &opts) {
        Ok(()) => {
            println!("removed {name} ({where_})");
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ Error::InUse { .. }) => Err(format!(
            "{e}\n  (not removed; `shmchan rm --force {name}` removes the name anyway)"
        )),
        Err(e @ Error::Incompatible { .. }) => Err(format!(
            "{e}\n  (`shmchan rm --force {name}` removes it anyway)"
        )),
        Err(e) => Err(e.to_string()),
    }
}
