//! The Zenoh session: peer mode, no router, scouting off (multicast and gossip), so the
//! bridge talks only to the endpoints it is given; explicit `listen` and `connect` endpoints.

use zenoh::{Config, Session, Wait};

/// The endpoints and timings of a bridge's session.
#[derive(Clone, Debug, Default)]
pub struct Net {
    pub listen: Vec<String>,
    pub connect: Vec<String>,
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).expect("strings")
}

/// The Zenoh configuration for `net`.
pub fn config(net: &Net) -> Result<Config, String> {
    let mut c = Config::default();
    let set = |c: &mut Config, k: &str, v: &str| {
        c.insert_json5(k, v)
            .map_err(|e| format!("zenoh config {k} = {v}: {e}"))
    };
    set(&mut c, "mode", r#""peer""#)?;
    set(&mut c, "scouting/multicast/enabled", "false")?;
    set(&mut c, "scouting/gossip/enabled", "false")?;
    // Listen only where asked (a peer's default is every interface, on a random port).
    set(&mut c, "listen/endpoints", &json_list(&net.listen))?;
    set(&mut c, "connect/endpoints", &json_list(&net.connect))?;
    // Retry a lost connection every 0.25-1 s (default 1-4 s): a restarted peer is found
    // again well within 5 s.
    set(
        &mut c,
        "connect/retry",
        "{ period_init_ms: 250, period_max_ms: 1000, period_increase_factor: 2 }",
    )?;
    // A dead peer whose TCP connection did not close (a host gone) is seen within 3 s.
    set(&mut c, "transport/link/tx/lease", "3000")?;
    // No admin space, no timestamps: nothing the bridge uses.
    set(&mut c, "adminspace/enabled", "false")?;
    Ok(c)
}

/// Open the session (returns once listening; connections to `connect` are retried in the
/// background for ever).
pub fn open(net: &Net) -> Result<Session, String> {
    let c = config(net)?;
    zenoh::open(c)
        .wait()
        .map_err(|e| format!("cannot open the zenoh session: {e}"))
}
