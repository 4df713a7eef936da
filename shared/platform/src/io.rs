//! Accepted connections that make HTTP/2 send a reply in one write.
//!
//! h2 keeps a DATA payload of 256 bytes or more apart from its write buffer
//! when the socket takes vectored writes, and flushes before it buffers the
//! next frame. A unary reply with a message of a few hundred bytes (a score)
//! then costs two `writev` calls: headers and message, then the trailers.
//! Told that the socket takes no vectored writes, h2 copies payloads of up
//! to 1 KiB into its buffer instead, and the whole reply leaves in one write.
//! Copying a kilobyte is far cheaper than a system call (on loopback the
//! sender's call also runs the receiver's TCP path).
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// A TCP connection that reports no vectored writes (see the module docs).
#[derive(Debug)]
pub struct UnvectoredTcp(pub TcpStream);

impl AsyncRead for UnvectoredTcp {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for UnvectoredTcp {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl Connected for UnvectoredTcp {
    type ConnectInfo = TcpConnectInfo;

    /// The peer's address stays visible to the services (the gateway limits
    /// anonymous callers by it).
    fn connect_info(&self) -> TcpConnectInfo {
        self.0.connect_info()
    }
}
