//! What crosses Zenoh: data and hello messages on the route's key (out to in), credit messages
//! on `KEY/@credit` (in to out). Little-endian, fixed headers, no serializer.
//!
//! ```text
//! data / hello, on KEY
//!  0  magic "SHB1"
//!  4  type u8 (0 data, 1 hello)   5 flags u8 (LOSSLESS, RESYNC)   6 fingerprint length u16
//!  8  epoch u64       the out route's, random per start
//! 16  in_epoch u64    the in route the out is following (lossless), 0 otherwise
//! 24  seq u64         the first message's sequence number (hello: the next one)
//! 32  count u32       messages in the body (hello: 0)     36 reserved u32
//! 40  fingerprint     "frame", "topic", or "spsc;NAME;SIZE;ALIGN;le" / "mpmc;..." / "topic;..."
//!     body            typed: count * SIZE bytes; frames: count * (u32 length, bytes)
//!
//! credit, on KEY/@credit
//!  0  magic "SHC1"    4 flags u8 (KNOWN, NACK, POSITIONAL)   5..8 reserved
//!  8  out_epoch u64   the out route this is for
//! 16  in_epoch u64    the in route's, random per start
//! 24  delivered u64   the next sequence number not yet written to the local ring (KNOWN)
//! 32  ring_pos u64    the local ring's producer position (POSITIONAL): after `delivered`
//!                     when KNOWN, now otherwise
//! 40  ring_cap u64    the local ring's capacity (messages, or bytes for frames)
//! 48  win_msgs u64    how many messages the out may have taken and not had acknowledged
//! 56  win_bytes u64   and how many bytes
//! ```
//!
//! Everything read here comes from the network: every length is checked, and a message that
//! does not parse is dropped (and counted as malformed by the caller).

pub const DATA_MAGIC: [u8; 4] = *b"SHB1";
pub const CREDIT_MAGIC: [u8; 4] = *b"SHC1";
pub const DATA_HEADER: usize = 40;
pub const CREDIT_LEN: usize = 64;

pub const TYPE_DATA: u8 = 0;
pub const TYPE_HELLO: u8 = 1;

/// The out route waits for credit (lossless).
pub const F_LOSSLESS: u8 = 1;
/// The out route cannot go back as far as the in route asked: take this as the next message.
pub const F_RESYNC: u8 = 2;

/// Credit: `delivered` and `ring_pos` describe this out route's messages.
pub const C_KNOWN: u8 = 1;
/// Credit: a jump was seen at `delivered`; send again from there.
pub const C_NACK: u8 = 2;
/// Credit: `ring_pos` is meaningful (SPSC and frame channels, the in route their only sender).
pub const C_POSITIONAL: u8 = 4;

/// A data or hello message's header, as decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Data<'a> {
    pub kind: u8,
    pub flags: u8,
    pub epoch: u64,
    pub in_epoch: u64,
    pub seq: u64,
    pub count: u32,
    pub fingerprint: &'a str,
    pub body: &'a [u8],
}

/// Start a data (or hello) message in `out` (cleared first); the body is appended after.
#[allow(clippy::too_many_arguments)]
pub fn begin_data(
    out: &mut Vec<u8>,
    kind: u8,
    flags: u8,
    epoch: u64,
    in_epoch: u64,
    seq: u64,
    count: u32,
    fingerprint: &str,
) {
    out.clear();
    out.extend_from_slice(&DATA_MAGIC);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(fingerprint.len() as u16).to_le_bytes());
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&in_epoch.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(fingerprint.as_bytes());
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Decode a data or hello message; `None` if it is not one.
pub fn parse_data(b: &[u8]) -> Option<Data<'_>> {
    if b.len() < DATA_HEADER || b[..4] != DATA_MAGIC {
        return None;
    }
    let fp_len = u16::from_le_bytes([b[6], b[7]]) as usize;
    let fp = b.get(DATA_HEADER..DATA_HEADER + fp_len)?;
    Some(Data {
        kind: b[4],
        flags: b[5],
        epoch: u64_at(b, 8),
        in_epoch: u64_at(b, 16),
        seq: u64_at(b, 24),
        count: u32_at(b, 32),
        fingerprint: std::str::from_utf8(fp).ok()?,
        body: &b[DATA_HEADER + fp_len..],
    })
}

/// The count field of a data message, without decoding the rest (for counting drops).
pub fn peek_count(b: &[u8]) -> u64 {
    match parse_data(b) {
        Some(d) if d.kind == TYPE_DATA => d.count as u64,
        _ => 0,
    }
}

/// Append one frame to a frames body.
pub fn push_frame(out: &mut Vec<u8>, frame: &[u8]) {
    out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    out.extend_from_slice(frame);
}

/// The frames of a frames body, in order; `None` if the body is not `count` whole frames.
pub fn frames(body: &[u8], count: u32) -> Option<Vec<&[u8]>> {
    let mut out = Vec::with_capacity(count.min(1 << 16) as usize);
    let mut rest = body;
    for _ in 0..count {
        if rest.len() < 4 {
            return None;
        }
        let len = u32_at(rest, 0) as usize;
        let frame = rest.get(4..4 + len)?;
        out.push(frame);
        rest = &rest[4 + len..];
    }
    rest.is_empty().then_some(out)
}

/// A credit message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credit {
    pub flags: u8,
    pub out_epoch: u64,
    pub in_epoch: u64,
    pub delivered: u64,
    pub ring_pos: u64,
    pub ring_cap: u64,
    pub win_msgs: u64,
    pub win_bytes: u64,
}

impl Credit {
    pub fn encode(&self) -> [u8; CREDIT_LEN] {
        let mut b = [0u8; CREDIT_LEN];
        b[..4].copy_from_slice(&CREDIT_MAGIC);
        b[4] = self.flags;
        for (at, v) in [
            (8, self.out_epoch),
            (16, self.in_epoch),
            (24, self.delivered),
            (32, self.ring_pos),
            (40, self.ring_cap),
            (48, self.win_msgs),
            (56, self.win_bytes),
        ] {
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    pub fn parse(b: &[u8]) -> Option<Credit> {
        if b.len() != CREDIT_LEN || b[..4] != CREDIT_MAGIC {
            return None;
        }
        Some(Credit {
            flags: b[4],
            out_epoch: u64_at(b, 8),
            in_epoch: u64_at(b, 16),
            delivered: u64_at(b, 24),
            ring_pos: u64_at(b, 32),
            ring_cap: u64_at(b, 40),
            win_msgs: u64_at(b, 48),
            win_bytes: u64_at(b, 56),
        })
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_round_trips() {
        let mut b = Vec::new();
        begin_data(&mut b, TYPE_DATA, F_LOSSLESS, 7, 9, 100, 2, "frame");
        push_frame(&mut b, b"ab");
        push_frame(&mut b, b"");
        let d = parse_data(&b).unwrap();
        assert_eq!(
            (d.kind, d.flags, d.epoch, d.in_epoch),
            (TYPE_DATA, F_LOSSLESS, 7, 9)
        );
        assert_eq!((d.seq, d.count, d.fingerprint), (100, 2, "frame"));
        assert_eq!(frames(d.body, 2).unwrap(), vec![&b"ab"[..], &b""[..]]);
        assert!(frames(d.body, 3).is_none());
        assert!(frames(d.body, 1).is_none());
        assert_eq!(peek_count(&b), 2);
        assert!(parse_data(&b[..39]).is_none());
    }

    #[test]
    fn bad_lengths_do_not_parse() {
        let mut b = Vec::new();
        begin_data(&mut b, TYPE_DATA, 0, 1, 0, 0, 1, "frame");
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        let d = parse_data(&b).unwrap();
        assert!(frames(d.body, 1).is_none());
        b[6] = 0xff; // fingerprint longer than the message
        assert!(parse_data(&b).is_none());
    }

    #[test]
    fn credit_round_trips() {
        let c = Credit {
            flags: C_KNOWN | C_POSITIONAL,
            out_epoch: 1,
            in_epoch: 2,
            delivered: 3,
            ring_pos: 4,
            ring_cap: 5,
            win_msgs: 6,
            win_bytes: 7,
        };
        assert_eq!(Credit::parse(&c.encode()), Some(c));
        assert!(Credit::parse(&c.encode()[..63]).is_none());
    }
}
