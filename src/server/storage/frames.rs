//! A fetch answer as it is read and sent: `length (u32 BE) || blob` for each object, kept
//! as the parts it was read into (a run of small objects in one buffer, each large object
//! in the buffer the disk or the object store filled) and written out one after another,
//! so no object is copied into one big buffer on its way to the socket.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Objects smaller than this are copied into the open buffer by [`Frames::add`].
const COPY_BELOW: usize = 64 << 10;

#[derive(Debug, Default)]
pub struct Frames {
    parts: Vec<Bytes>,
    /// Where length prefixes and small objects go until a large object is pushed.
    open: Vec<u8>,
    len: u64,
}

impl Frames {
    /// The buffer the next length prefix or small object is appended to; `note` each
    /// append's length.
    pub fn open(&mut self) -> &mut Vec<u8> {
        &mut self.open
    }

    /// A frame's length prefix.
    pub fn prefix(&mut self, size: u64) {
        self.open.extend_from_slice(&(size as u32).to_be_bytes());
        self.len += 4;
    }

    /// Counts `n` bytes appended to `open()`.
    pub fn note(&mut self, n: u64) {
        self.len += n;
    }

    /// A whole object, kept as it is.
    pub fn push(&mut self, object: Bytes) {
        if !self.open.is_empty() {
            self.parts.push(Bytes::from(std::mem::take(&mut self.open)));
        }
        self.len += object.len() as u64;
        self.parts.push(object);
    }

    /// An object as it came: a small one copied after the others (a few parts of many
    /// objects rather than many tiny parts), a large one kept as it is.
    pub fn add(&mut self, object: Bytes) {
        if object.len() < COPY_BELOW {
            self.open.extend_from_slice(&object);
            self.len += object.len() as u64;
        } else {
            self.push(object);
        }
    }

    /// The parts in order.
    pub fn into_parts(mut self) -> Vec<Bytes> {
        if !self.open.is_empty() {
            self.parts.push(Bytes::from(self.open));
        }
        self.parts
    }

    /// All of it in one buffer (tests, and callers that need it whole).
    pub fn to_vec(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len as usize);
        for part in self.into_parts() {
            out.extend_from_slice(&part);
        }
        out
    }

    /// A response body that writes the parts one after another, its length known.
    pub fn into_body(self) -> FramesBody {
        FramesBody {
            left: self.len,
            parts: self.into_parts().into(),
        }
    }
}

/// See [`Frames::into_body`].
pub struct FramesBody {
    parts: VecDeque<Bytes>,
    left: u64,
}

impl Body for FramesBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.parts.pop_front();
        if let Some(part) = &next {
            self.left -= part.len() as u64;
        }
        Poll::Ready(next.map(|part| Ok(Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn parts_come_out_in_order_as_one_answer_of_the_length_told() {
        let mut frames = Frames::default();
        frames.prefix(3);
        frames.open().extend_from_slice(b"abc");
        frames.note(3);
        frames.prefix(5);
        frames.push(Bytes::from_static(b"large"));
        frames.prefix(0);
        frames.prefix(2);
        frames.add(Bytes::from_static(b"ok"));
        let big = Bytes::from(vec![7u8; COPY_BELOW]);
        frames.prefix(big.len() as u64);
        frames.add(big.clone());
        let body = frames.into_body();
        assert_eq!(
            body.size_hint().exact(),
            Some((4 + 3 + 4 + 5 + 4 + 4 + 2 + 4 + COPY_BELOW) as u64)
        );
        let whole = body.collect().await.unwrap().to_bytes();
        let got = crate::api::frame::decode_frames(&whole).unwrap();
        assert_eq!(got, vec![&b"abc"[..], b"large", b"", b"ok", &big[..]]);
    }
}
