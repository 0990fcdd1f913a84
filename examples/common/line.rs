//! The message of the two-terminal demo: a line of text in a fixed-size `Pod` struct.
// Each example uses half of this file.
#![allow(dead_code)]

/// Up to 248 bytes of UTF-8 text.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Line {
    len: u64,
    bytes: [u8; 248],
}

impl Line {
    /// The line, cut to 248 bytes at a character boundary.
    pub fn new(text: &str) -> Line {
        let mut end = text.len().min(248);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0u8; 248];
        bytes[..end].copy_from_slice(&text.as_bytes()[..end]);
        Line {
            len: end as u64,
            bytes,
        }
    }

    /// The text (a peer is not trusted: the length is clamped and bad UTF-8 replaced).
    pub fn text(&self) -> String {
        let len = (self.len as usize).min(self.bytes.len());
        String::from_utf8_lossy(&self.bytes[..len]).into_owned()
    }
}
