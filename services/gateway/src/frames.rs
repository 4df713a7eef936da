//! Message size limits without decoding: gRPC frames every message with a
//! flag byte and a 4-byte big-endian length, so reading the lengths as the
//! request streams through is enough to stop an oversized message before it
//! is forwarded whole.
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use tonic::Status;
use tonic::body::Body;

const FRAME_HEADER: usize = 5;

/// Follows the framing of a message stream across arbitrary chunk boundaries.
#[derive(Debug, Clone)]
pub struct MessageSizes {
    limit: usize,
    header: [u8; FRAME_HEADER],
    header_len: usize,
    /// Bytes of the current message still to come; 0 while reading a header.
    remaining: usize,
}

impl MessageSizes {
    pub fn new(limit: usize) -> Self {
        MessageSizes { limit, header: [0; FRAME_HEADER], header_len: 0, remaining: 0 }
    }

    /// Reads the next chunk; `Err(size)` at the first message above the limit.
    pub fn scan(&mut self, mut chunk: &[u8]) -> Result<(), usize> {
        while !chunk.is_empty() {
            if self.remaining > 0 {
                let taken = self.remaining.min(chunk.len());
                self.remaining -= taken;
                chunk = &chunk[taken..];
                continue;
            }
            let taken = (FRAME_HEADER - self.header_len).min(chunk.len());
            self.header[self.header_len..self.header_len + taken].copy_from_slice(&chunk[..taken]);
            self.header_len += taken;
            chunk = &chunk[taken..];
            if self.header_len == FRAME_HEADER {
                let [_, a, b, c, d] = self.header;
                let size = u32::from_be_bytes([a, b, c, d]) as usize;
                if size > self.limit {
                    return Err(size);
                }
                self.remaining = size;
                self.header_len = 0;
            }
        }
        Ok(())
    }
}

/// Where a limited body reports the size of the message it refused.
pub type Oversized = Arc<OnceLock<usize>>;

/// `body` that fails at the first message above `limit`, recording its size.
pub fn limit(body: Body, limit: usize) -> (Body, Oversized) {
    let oversized = Oversized::default();
    let limited = LimitedBody { inner: body, sizes: MessageSizes::new(limit), oversized: oversized.clone() };
    (Body::new(limited), oversized)
}

struct LimitedBody {
    inner: Body,
    sizes: MessageSizes,
    oversized: Oversized,
}

impl HttpBody for LimitedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        let data = match &frame {
            Some(Ok(frame)) => frame.data_ref(),
            _ => None,
        };
        if let Some(Err(size)) = data.map(|data| this.sizes.scan(data)) {
            let _ = this.oversized.set(size);
            return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                "a message of {size} bytes is above the limit of {} bytes",
                this.sizes.limit
            )))));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(message: &[u8]) -> Vec<u8> {
        let mut frame = vec![0];
        frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        frame.extend_from_slice(message);
        frame
    }

    #[test]
    fn messages_within_the_limit_pass_in_any_chunking() {
        let stream: Vec<u8> = [framed(b"hello"), framed(b""), framed(&[7; 10])].concat();
        for chunk_size in 1..=stream.len() {
            let mut sizes = MessageSizes::new(10);
            for chunk in stream.chunks(chunk_size) {
                sizes.scan(chunk).expect("all within the limit");
            }
        }
    }

    #[test]
    fn the_first_oversized_message_is_named_even_split_inside_its_header() {
        let stream: Vec<u8> = [framed(b"ok"), framed(&[1; 11])].concat();
        let mut sizes = MessageSizes::new(10);
        sizes.scan(&stream[..9]).expect("first message and part of the next header");
        assert_eq!(sizes.scan(&stream[9..]), Err(11));
    }
}
