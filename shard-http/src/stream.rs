//! Large answers sent while they are produced: a listing of 10⁵ files is written to the
//! connection in pieces of [`PIECE`] bytes as the engine hands over each entry, instead of
//! being collected, serialized whole and then sent. The bytes are exactly what serializing the
//! collected value would give (`{"files":[…]}`), so clients cannot tell the difference.
//!
//! The engine runs on a blocking thread and pushes pieces through a small bounded channel: a
//! slow client slows the listing down instead of letting it pile up in memory, and a client
//! that goes away stops it.

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use shard_node::Error;

use crate::error::ApiError;

/// Bytes gathered before they are handed to the connection.
pub const PIECE: usize = 64 * 1024;

/// Pieces waiting for the connection at most (so at most `PIECES × PIECE` bytes in flight).
const PIECES: usize = 4;

/// How long a piece may wait for a client that stopped reading before the answer is given up
/// (and the thread producing it, and the session keys it holds, let go).
const STALLED: std::time::Duration = std::time::Duration::from_secs(120);

/// Hands `piece` to the connection from a blocking thread; fails if the client went away or
/// did not read for [`STALLED`].
fn send_piece(
    tx: &mpsc::Sender<Result<Bytes, Error>>,
    handle: &tokio::runtime::Handle,
    piece: Result<Bytes, Error>,
) -> Result<(), Error> {
    handle
        .block_on(tx.send_timeout(piece, STALLED))
        .map_err(|_| Error::Internal("the client went away or stopped reading".into()))
}

/// Bytes written through `std::io::Write`, handed to `send` in pieces of about `piece` bytes.
pub struct Pieces<S> {
    buf: Vec<u8>,
    piece: usize,
    send: S,
}

impl<S: FnMut(Bytes) -> Result<(), Error>> Pieces<S> {
    /// Pieces of about `piece` bytes for `send`.
    pub fn new(piece: usize, send: S) -> Self {
        Self {
            buf: Vec::with_capacity(piece + 1024),
            piece,
            send,
        }
    }

    fn hand_over(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.piece + 1024));
        (self.send)(Bytes::from(full)).map_err(std::io::Error::other)
    }
}

impl<S: FnMut(Bytes) -> Result<(), Error>> std::io::Write for Pieces<S> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.piece {
            self.hand_over()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.hand_over()
    }
}

/// Writes `head`, then each item pushed as JSON separated by commas, then `tail`, to `out`.
pub struct JsonSeq<W> {
    out: W,
    first: bool,
}

fn encoding(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("an answer did not encode: {e}"))
}

impl<W: std::io::Write> JsonSeq<W> {
    /// Starts a sequence with `head` (e.g. `{"files":[`).
    pub fn new(head: &[u8], mut out: W) -> Result<Self, Error> {
        out.write_all(head).map_err(encoding)?;
        Ok(Self { out, first: true })
    }

    /// Adds one item.
    pub fn push(&mut self, item: &impl Serialize) -> Result<(), Error> {
        if !self.first {
            self.out.write_all(b",").map_err(encoding)?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, item).map_err(encoding)
    }

    /// Ends the sequence with `tail` (e.g. `]}`) and sends what is left.
    pub fn finish(mut self, tail: &[u8]) -> Result<(), Error> {
        self.out.write_all(tail).map_err(encoding)?;
        self.out.flush().map_err(encoding)
    }
}

/// What a blocking producer sends to the connection: pieces, or the error that cut it short.
type PieceSender = mpsc::Sender<Result<Bytes, Error>>;
/// Where the connection takes them from.
type PieceReceiver = mpsc::Receiver<Result<Bytes, Error>>;

/// A channel for pieces, and a writer a blocking thread fills it through.
fn channel() -> (
    Pieces<impl FnMut(Bytes) -> Result<(), Error> + Send>,
    PieceSender,
    PieceReceiver,
) {
    let (tx, rx) = mpsc::channel(PIECES);
    let (send_to, handle) = (tx.clone(), tokio::runtime::Handle::current());
    let pieces = Pieces::new(PIECE, move |piece| send_piece(&send_to, &handle, Ok(piece)));
    (pieces, tx, rx)
}

/// Ends a body with `error` (logged): it is cut short, so a client never takes it for whole.
fn cut_short(tx: &PieceSender, handle: &tokio::runtime::Handle, error: Error) {
    tracing::warn!("an answer stopped: {error}");
    let _ = send_piece(tx, handle, Err(error));
}

/// The body that streams what arrives on `rx`, led by `first` if given.
fn body(first: Option<Bytes>, rx: PieceReceiver) -> Response {
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        let next = rx.recv().await?;
        Some((next.map_err(std::io::Error::other), rx))
    });
    let lead = futures_util::stream::iter(first.map(Ok::<_, std::io::Error>));
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(futures_util::stream::StreamExt::chain(lead, rest)),
    )
        .into_response()
}

/// Answers with `{"<field>":[…]}` whose items `produce` pushes, produced on a blocking thread.
/// An error before the first piece was sent is an ordinary error answer (status, message,
/// hint); one after it cuts the body short, which a client sees as an answer that does not
/// parse, never as a shorter valid one.
pub async fn json_list<T, P>(field: &'static str, produce: P) -> Result<Response, ApiError>
where
    T: Serialize,
    P: FnOnce(&mut dyn FnMut(T) -> Result<(), Error>) -> Result<(), Error> + Send + 'static,
{
    let (pieces, tx, mut rx) = channel();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let head = format!("{{\"{field}\":[");
        let outcome = JsonSeq::new(head.as_bytes(), pieces).and_then(|mut seq| {
            produce(&mut |item| seq.push(&item))?;
            seq.finish(b"]}")
        });
        if let Err(e) = outcome {
            cut_short(&tx, &handle, e);
        }
    });
    let first = match rx.recv().await {
        Some(Ok(piece)) => piece,
        Some(Err(e)) => return Err(e.into()),
        None => return Err(Error::Internal("a listing stopped before it began".into()).into()),
    };
    Ok(body(Some(first), rx))
}

/// Answers with `value` as JSON, serialized on a blocking thread straight into pieces sent as
/// they fill: a check's result of 10⁵ files is never also held as one JSON buffer.
pub async fn json_value<T: Serialize + Send + 'static>(value: T) -> Response {
    let (mut pieces, tx, rx) = channel();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let outcome = serde_json::to_writer(&mut pieces, &value)
            .map_err(encoding)
            .and_then(|()| std::io::Write::flush(&mut pieces).map_err(encoding));
        if let Err(e) = outcome {
            cut_short(&tx, &handle, e);
        }
    });
    body(None, rx)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use shard_node::report::{ChunkHealth, EntryKind, ListedFile, Listing, StoredHealth};

    fn file(i: u32) -> ListedFile {
        let name = format!("papers/{i:05}-\u{e9}t\u{e9} \"quoted\".pdf");
        let (dir, degraded) = (i.is_multiple_of(7), i.is_multiple_of(5));
        ListedFile {
            name_hex: hex::encode(&name),
            name,
            kind: if dir { EntryKind::Dir } else { EntryKind::File },
            size: u64::from(i) * 1013,
            mtime: 1_796_000_000 + i64::from(i),
            mode: 0o644,
            version: 1 + i % 3,
            versions: 1 + (i as usize) % 2,
            stored_at: 1_796_000_100,
            health: (!dir).then(|| StoredHealth {
                state: if degraded {
                    ChunkHealth::Degraded
                } else {
                    ChunkHealth::Healthy
                },
                k: Some(2),
                n: Some(3),
                min_acked: Some(3 - u8::from(degraded)),
                spare: Some(1 - i32::from(degraded)),
            }),
        }
    }

    /// The pieces, joined, are byte for byte what serializing the whole listing gives, for an
    /// empty listing, one entry, and many entries over many pieces of any size.
    #[test]
    fn pieces_join_to_the_serialized_listing() {
        for (count, piece) in [(0, 16), (1, 16), (1000, 1), (1000, 100), (1000, PIECE)] {
            let files: Vec<ListedFile> = (0..count).map(file).collect();
            let mut sent: Vec<Bytes> = Vec::new();
            let pieces = Pieces::new(piece, |b| {
                sent.push(b);
                Ok(())
            });
            let mut seq = JsonSeq::new(b"{\"files\":[", pieces).unwrap();
            for f in &files {
                seq.push(f).unwrap();
            }
            seq.finish(b"]}").unwrap();
            if count == 1000 && piece < 1000 {
                assert!(sent.len() > 10, "sent in pieces: {}", sent.len());
            }
            let joined: Vec<u8> = sent.concat();
            let whole = serde_json::to_vec(&Listing { files }).unwrap();
            assert_eq!(
                String::from_utf8(joined).unwrap(),
                String::from_utf8(whole).unwrap()
            );
        }
    }

    /// A receiver that went away stops the producer with an error instead of piling pieces up.
    #[test]
    fn a_gone_client_stops_the_sequence() {
        let gone = Pieces::new(1, |_| Err(Error::Internal("gone".into())));
        let outcome = JsonSeq::new(b"[", gone).and_then(|mut seq| seq.push(&file(1)));
        assert!(outcome.is_err());
    }
}
