//! A fetch answer streamed from the packs: the objects asked for are read a piece at a time
//! (at most `PIECE_BYTES` of them), each piece counted against `limits.fetch_memory` for
//! its holder only while it is read and sent. A batch of 64 MiB held 64 MiB until its last
//! byte was sent; now an answer holds at most three pieces (one being sent, one read ahead
//! and waiting, one being read), so a client that stops reading pins little until the
//! connection's write deadline cuts it off, and a fast one still finds the next piece ready.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::error::{ApiError, ApiResult};
use crate::memory::{Held, MemoryBound};
use crate::storage::BlobStore;

/// How much of an answer is read from the packs at once.
pub const PIECE_BYTES: u64 = 8 << 20;

/// Where an object is: its pack, offset and size.
pub type Location = (String, u64, u64);

/// One piece read: its frames' parts and its share of the fetch memory.
type Piece = (VecDeque<Bytes>, Held);

/// Starts reading `wanted` (in order) for `holder`, and waits for the first piece, so an
/// object that cannot be read at the start is an error answer rather than a cut-off body.
/// A later piece that cannot be read ends the body with an error, which ends the
/// connection: the client sees a short answer and asks again.
pub async fn stream(
    blobs: Arc<dyn BlobStore>,
    answers: Arc<MemoryBound>,
    holder: String,
    library: String,
    wanted: Vec<Location>,
) -> ApiResult<Streamed> {
    let length = wanted.iter().map(|(_, _, size)| size + 4).sum();
    let (tx, mut rx) = mpsc::channel(1);
    tokio::spawn(read_pieces(
        blobs,
        answers,
        holder,
        library,
        pieces(wanted),
        tx,
    ));
    let current = match rx.recv().await {
        Some(piece) => Some(piece?),
        None => None,
    };
    Ok(Streamed {
        rx,
        current,
        left: length,
    })
}

/// `wanted` cut into runs of at most `PIECE_BYTES` (an object larger than that is a piece
/// of its own).
fn pieces(wanted: Vec<Location>) -> Vec<Vec<Location>> {
    let mut out: Vec<Vec<Location>> = Vec::new();
    let mut bytes = 0u64;
    for location in wanted {
        let size = location.2 + 4;
        match out.last_mut() {
            Some(last) if bytes + size <= PIECE_BYTES => {
                last.push(location);
                bytes += size;
            }
            _ => {
                out.push(vec![location]);
                bytes = size;
            }
        }
    }
    out
}

/// Reads the pieces one after another into `tx`, each with its share of the memory bound
/// taken first; stops when the answer's body is gone (sent, or its connection ended).
async fn read_pieces(
    blobs: Arc<dyn BlobStore>,
    answers: Arc<MemoryBound>,
    holder: String,
    library: String,
    pieces: Vec<Vec<Location>>,
    tx: mpsc::Sender<ApiResult<Piece>>,
) {
    let library: Arc<str> = library.into();
    for piece in pieces {
        let bytes = piece.iter().map(|(_, _, size)| size + 4).sum();
        let held = tokio::select! {
            held = answers.acquire(&holder, bytes) => held,
            _ = tx.closed() => return,
        };
        let store = blobs.clone();
        let lib = library.clone();
        let read = tokio::task::spawn_blocking(move || store.read_frames(&lib, &piece))
            .await
            .map_err(ApiError::internal)
            .and_then(|frames| Ok(frames?))
            .map(|frames| (VecDeque::from(frames.into_parts()), held));
        let failed = read.is_err();
        if tx.send(read).await.is_err() || failed {
            return;
        }
    }
}

/// See [`stream`]: the answer's body, its length known from the start.
pub struct Streamed {
    rx: mpsc::Receiver<ApiResult<Piece>>,
    /// The piece being sent, with its share of the memory.
    current: Option<Piece>,
    left: u64,
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        loop {
            if let Some((parts, _)) = &mut self.current {
                if let Some(part) = parts.pop_front() {
                    self.left -= part.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(part))));
                }
            }
            // This piece is sent: its memory goes back before the next is taken.
            self.current = None;
            if self.left == 0 {
                return Poll::Ready(None);
            }
            match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(piece))) => self.current = Some(piece),
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Some(Err(axum::Error::new(e.0.message))))
                }
                Poll::Ready(None) => {
                    return Poll::Ready(Some(Err(axum::Error::new(
                        "the answer ended before all of it was read from the packs",
                    ))))
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(size: u64) -> Location {
        ("pack".into(), 0, size)
    }

    #[test]
    fn pieces_keep_order_and_bound_and_a_large_object_is_alone() {
        let mb = 1 << 20;
        let wanted = vec![
            at(3 * mb),
            at(3 * mb),
            at(3 * mb),
            at(20 * mb),
            at(1),
            at(2),
        ];
        let cut = pieces(wanted.clone());
        let sizes: Vec<Vec<u64>> = cut
            .iter()
            .map(|p| p.iter().map(|l| l.2).collect())
            .collect();
        assert_eq!(
            sizes,
            vec![
                vec![3 * mb, 3 * mb],
                vec![3 * mb],
                vec![20 * mb],
                vec![1, 2]
            ]
        );
        assert_eq!(cut.concat(), wanted);
        assert!(pieces(Vec::new()).is_empty());
    }
}
