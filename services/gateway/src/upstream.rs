//! The gateway's HTTP/2 connection to a service. A forwarded call becomes a
//! stream of one shared connection, opened by the caller's own task: a unary
//! request (headers and message) leaves in one write and spawns no task.
//! A tonic channel made each call cross a buffer task and hyper's dispatch
//! task, and hyper's body pipe sent the message apart from the headers:
//! dropping them took the gateway's CPU per call from 66 to 56 us and its
//! system calls from 5.4 to 3.2 (with the other changes of that day, see
//! docs/benchmarks.md).
//!
//! The connection opens on the first call and again on the first call after
//! it breaks (a service restarted), so services may start after the gateway.
use branchscore_platform::io::UnvectoredTcp;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::poll_fn;
use h2::client::{ResponseFuture, SendRequest};
use h2::{Reason, RecvStream, SendStream};
use http::header::{CONNECTION, HOST, TE, TRANSFER_ENCODING, UPGRADE};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderName, Request, Response, Uri};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tonic::body::Body;

/// Flow-control windows offered to a service's replies, as hyper's client
/// offers: a large reply (an export) streams without waiting for every 64 KiB.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

/// Why a call could not be forwarded.
#[derive(Debug)]
pub enum Failure {
    /// No connection and reply headers within the call's deadline.
    Deadline,
    /// The service could not be reached, or the call's stream broke.
    Unavailable(String),
    /// The caller's request body failed (an oversized message, a reset).
    Request,
}

/// One service's address and, once opened, its connection.
#[derive(Debug, Clone)]
pub struct Upstream {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    authority: Authority,
    connect_timeout: Duration,
    connection: Mutex<Option<Connection>>,
    /// Held while connecting, so a broken connection is replaced once, not
    /// once per caller; it holds the last failed attempt, so the callers
    /// queued behind it fail with it rather than each wait for a connect
    /// timeout of their own.
    connecting: tokio::sync::Mutex<Option<FailedConnect>>,
}

#[derive(Debug, Clone)]
struct FailedConnect {
    at: Instant,
    why: String,
}

#[derive(Debug, Clone)]
struct Connection {
    sender: SendRequest<Bytes>,
    /// Counts connections opened, so a caller replaces only the one that failed it.
    generation: u64,
}

impl Upstream {
    /// `url` is `http://host:port` of the service; nothing connects yet.
    pub fn new(url: &str, connect_timeout: Duration) -> anyhow::Result<Self> {
        let uri: Uri = url.parse()?;
        anyhow::ensure!(uri.scheme() == Some(&Scheme::HTTP), "{url}: services are reached over plain http://");
        let authority = uri.authority().cloned().ok_or_else(|| anyhow::anyhow!("{url} names no host"))?;
        let shared =
            Shared { authority, connect_timeout, connection: Mutex::default(), connecting: Default::default() };
        Ok(Upstream { shared: Arc::new(shared) })
    }

    /// Forwards `request`, waiting at most `deadline` for a connection and
    /// the reply's headers (the body and trailers then stream as the service
    /// sends them).
    pub async fn forward(&self, request: Request<Body>, deadline: Option<Duration>) -> Result<Response<Body>, Failure> {
        let reply = self.exchange(request);
        match deadline {
            Some(deadline) => tokio::time::timeout(deadline, reply).await.map_err(|_| Failure::Deadline)?,
            None => reply.await,
        }
    }

    async fn exchange(&self, request: Request<Body>) -> Result<Response<Body>, Failure> {
        let (head, mut body) = request.into_parts();
        let mut request = Request::new(());
        *request.method_mut() = head.method;
        *request.uri_mut() = self.uri_of(head.uri)?;
        *request.headers_mut() = head.headers;
        strip_connection_headers(request.headers_mut());
        // What the caller has sent already goes out with the headers.
        let (received, ended) = ready_frames(&mut body)?;
        let (reply, mut stream) = self.open(request, ended && received.is_empty()).await?;
        let last = received.len();
        for (at, frame) in received.into_iter().enumerate() {
            send_frame(&mut stream, frame, ended && at + 1 == last).map_err(unavailable)?;
        }
        if !ended {
            tokio::spawn(pump(body, stream));
        }
        let reply = reply
            .await
            .map_err(|err| if err.is_reset() && !err.is_remote() { Failure::Request } else { unavailable(err) })?;
        Ok(reply.map(|stream| Body::new(Reply { stream, data_done: false })))
    }

    /// The absolute URI h2 wants: the service's authority, the caller's path.
    fn uri_of(&self, uri: Uri) -> Result<Uri, Failure> {
        let mut parts = uri.into_parts();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.shared.authority.clone());
        Uri::from_parts(parts).map_err(|err| Failure::Unavailable(format!("bad path: {err}")))
    }

    /// Opens a stream for `request`; a broken connection is replaced once.
    async fn open(
        &self,
        request: Request<()>,
        end_of_stream: bool,
    ) -> Result<(ResponseFuture, SendStream<Bytes>), Failure> {
        let mut broken = None;
        loop {
            let connection = self.connection(broken).await?;
            match connection.sender.ready().await {
                Ok(mut sender) => return sender.send_request(request, end_of_stream).map_err(unavailable),
                Err(err) if broken.is_some() => return Err(unavailable(err)),
                Err(_) => broken = Some(connection.generation),
            }
        }
    }

    /// The open connection, or a new one if there is none or it is the `broken` one.
    async fn connection(&self, broken: Option<u64>) -> Result<Connection, Failure> {
        let current = || self.shared.connection.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let usable = |connection: &Connection| Some(connection.generation) != broken;
        if let Some(connection) = current().filter(usable) {
            return Ok(connection);
        }
        let asked = Instant::now();
        let mut last_failure = self.shared.connecting.lock().await;
        let previous = current();
        if let Some(connection) = previous.clone().filter(usable) {
            return Ok(connection);
        }
        if let Some(failed) = last_failure.as_ref().filter(|failed| failed.at >= asked) {
            return Err(Failure::Unavailable(failed.why.clone()));
        }
        let sender = self.connect().await.map_err(|why| {
            *last_failure = Some(FailedConnect { at: Instant::now(), why: why.clone() });
            Failure::Unavailable(why)
        })?;
        let connection = Connection { sender, generation: previous.map_or(0, |previous| previous.generation + 1) };
        *self.shared.connection.lock().unwrap_or_else(PoisonError::into_inner) = Some(connection.clone());
        Ok(connection)
    }

    /// A new connection, or why there is none.
    async fn connect(&self) -> Result<SendRequest<Bytes>, String> {
        let address = self.shared.authority.as_str();
        let unreachable = |why: String| format!("cannot connect to {address}: {why}");
        let tcp = tokio::time::timeout(self.shared.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", self.shared.connect_timeout)))?
            .map_err(|err| unreachable(err.to_string()))?;
        tcp.set_nodelay(true).map_err(|err| unreachable(err.to_string()))?;
        let (sender, connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake::<_, Bytes>(UnvectoredTcp(tcp))
            .await
            .map_err(|err| unreachable(err.to_string()))?;
        let address = address.to_owned();
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::info!(%address, error = %err, "connection to a service ended");
            }
        });
        Ok(sender)
    }
}

fn unavailable(err: h2::Error) -> Failure {
    Failure::Unavailable(err.to_string())
}

/// HTTP/2 forbids the HTTP/1.1 connection headers a grpc-web call may carry;
/// the authority replaces `host`.
fn strip_connection_headers(headers: &mut HeaderMap) {
    const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
    const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
    for name in [CONNECTION, KEEP_ALIVE, PROXY_CONNECTION, TRANSFER_ENCODING, UPGRADE, HOST] {
        headers.remove(name);
    }
    if headers.get(TE).is_some_and(|te| te != "trailers") {
        headers.remove(TE);
    }
}

/// The frames of `body` already received, and whether it has ended.
fn ready_frames(body: &mut Body) -> Result<(Vec<Frame<Bytes>>, bool), Failure> {
    let mut frames = Vec::new();
    while !body.is_end_stream() {
        match body.frame().now_or_never() {
            Some(Some(Ok(frame))) => frames.push(frame),
            Some(Some(Err(_))) => return Err(Failure::Request),
            Some(None) => return Ok((frames, true)),
            None => return Ok((frames, false)),
        }
    }
    Ok((frames, true))
}

/// Sends a request frame; trailers end the stream whatever `end_of_stream` says.
fn send_frame(stream: &mut SendStream<Bytes>, frame: Frame<Bytes>, end_of_stream: bool) -> Result<(), h2::Error> {
    match frame.into_data() {
        Ok(data) => stream.send_data(data, end_of_stream),
        Err(frame) => match frame.into_trailers() {
            Ok(trailers) => stream.send_trailers(trailers),
            // Neither data nor trailers: nothing HTTP/2 can carry.
            Err(_) => Ok(()),
        },
    }
}

/// Sends the rest of a streaming request as the caller sends it, a frame at
/// a time as the service makes room, until it ends or either side resets.
async fn pump(mut body: Body, mut stream: SendStream<Bytes>) {
    loop {
        stream.reserve_capacity(1);
        while stream.capacity() == 0 {
            match poll_fn(|cx| stream.poll_capacity(cx)).await {
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
        let next = poll_fn(|cx| {
            if stream.poll_reset(cx).is_ready() {
                return Poll::Ready(None);
            }
            Pin::new(&mut body).poll_frame(cx).map(Some)
        })
        .await;
        let (sent, ended) = match next {
            // The service reset the call: nothing more to send.
            None => return,
            Some(None) => (stream.send_data(Bytes::new(), true), true),
            Some(Some(Ok(frame))) => {
                let ended = frame.is_trailers() || body.is_end_stream();
                (send_frame(&mut stream, frame, ended), ended)
            }
            Some(Some(Err(_))) => {
                stream.send_reset(Reason::CANCEL);
                return;
            }
        };
        if sent.is_err() || ended {
            return;
        }
    }
}

/// A service's reply body: its messages, then its trailers.
struct Reply {
    stream: RecvStream,
    data_done: bool,
}

impl HttpBody for Reply {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match ready!(self.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Passed on: the service may send as much again.
                    let _ = self.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => self.data_done = true,
            }
        }
        Poll::Ready(ready!(self.stream.poll_trailers(cx)).transpose().map(|trailers| trailers.map(Frame::trailers)))
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener whose accept queue is full: a new connection never completes.
    async fn unanswered_listener() -> (std::net::SocketAddr, tokio::net::TcpListener, Vec<TcpStream>) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind("127.0.0.1:0".parse().expect("address")).expect("bind");
        let listener = socket.listen(0).expect("listen");
        let address = listener.local_addr().expect("address");
        let mut queued = Vec::new();
        // Backlog 0 still queues one; the next connects wait for a SYN-ACK that never comes.
        while let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(address)).await {
            queued.push(stream);
        }
        (address, listener, queued)
    }

    #[tokio::test]
    async fn callers_queued_behind_a_failed_connect_fail_with_it() {
        let (address, _listener, _queued) = unanswered_listener().await;
        let upstream = Upstream::new(&format!("http://{address}"), Duration::from_millis(500)).expect("url");
        let call = || {
            let upstream = upstream.clone();
            let request = Request::builder().uri("/branchscore.clients.v1.ClientsService/GetClient");
            async move { upstream.forward(request.body(Body::empty()).expect("request"), None).await }
        };
        let started = std::time::Instant::now();
        let failures = futures::future::join_all((0..8).map(|_| call())).await;
        for failure in failures {
            match failure {
                Err(Failure::Unavailable(why)) => assert!(why.contains("no answer within 500ms"), "{why}"),
                other => panic!("expected unavailable: {other:?}"),
            }
        }
        // One connect timeout for all of them, not one each (8 x 500 ms).
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        // A caller arriving later tries again.
        let again = std::time::Instant::now();
        assert!(matches!(call().await, Err(Failure::Unavailable(_))));
        assert!(again.elapsed() >= Duration::from_millis(500), "{:?}", again.elapsed());
    }

    #[test]
    fn http1_connection_headers_do_not_cross_into_http2() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("host", "gateway.example.com"),
            ("te", "trailers"),
            ("content-type", "application/grpc"),
        ] {
            headers.insert(HeaderName::from_static(name), value.parse().expect("value"));
        }
        strip_connection_headers(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "te"]);
        headers.insert(TE, "gzip".parse().expect("value"));
        strip_connection_headers(&mut headers);
        assert!(!headers.contains_key(TE), "only te: trailers may cross");
    }
}
