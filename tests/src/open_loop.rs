//! An open-loop gRPC load generator that costs little CPU per call.
//!
//! On a small machine the generator shares the cores with what it measures,
//! so every microsecond it spends is taken from the service. This one runs
//! on one thread: a timer file descriptor with nanosecond resolution paces
//! the calls (Tokio's timers tick in milliseconds), requests are encoded
//! before the clock starts, and they go straight onto HTTP/2 connections
//! (`h2`) without a channel, a buffer task or a hop to another thread.
//!
//! Request n is due at `start + n / rate` whatever happened to the earlier
//! ones, and its latency runs from that due time, so a late generator or a
//! stalled server shows in the figures instead of slowing the load down.
use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;

/// One call of a level: the gRPC method's path, the request's metadata and
/// its message, framed.
pub struct Call {
    pub path: &'static str,
    pub metadata: Vec<(&'static str, HeaderValue)>,
    pub frame: Bytes,
}

impl Call {
    /// A call of `path` (e.g. "/grpc.health.v1.Health/Check") with `message`.
    pub fn new(path: &'static str, message: &impl prost::Message) -> Call {
        Call { path, metadata: Vec::new(), frame: frame(message) }
    }

    pub fn with_metadata(mut self, name: &'static str, value: HeaderValue) -> Call {
        self.metadata.push((name, value));
        self
    }
}

/// Starts the reference the benchmarks measure against: a bare tonic
/// server with only the standard health service (no auth, no middleware)
/// on 127.0.0.1, on the current runtime. Returns its address.
pub async fn start_trivial_server() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (_reporter, health) = tonic_health::server::health_reporter();
    // Without delay on its sockets, as the platform's servers: Nagle's
    // algorithm would hold an answer's trailers back for the client's ACK.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(tonic::transport::Server::builder().add_service(health).serve_with_incoming(incoming));
    Ok(addr)
}

/// `message` in gRPC's length-prefixed framing (uncompressed).
pub fn frame(message: &impl prost::Message) -> Bytes {
    let len = message.encoded_len();
    let mut framed = BytesMut::with_capacity(5 + len);
    framed.put_u8(0);
    framed.put_u32(u32::try_from(len).expect("a gRPC message under 4 GiB"));
    message.encode(&mut framed).expect("the buffer has the message's length");
    framed.freeze()
}

/// Checks the answer to call n (its message, unframed).
pub type Check = dyn Fn(usize, &[u8]) -> Result<(), String> + Send + Sync;

/// How one level went. Latencies in microseconds.
pub struct Outcome {
    pub sent: usize,
    pub ok: usize,
    /// Failed calls by gRPC code (or "timeout", "http 503", ...).
    pub errors: BTreeMap<String, u64>,
    /// Answered calls per second, from the first due time to the last answer.
    pub achieved: f64,
    pub latency: Histogram<u64>,
    /// When the slowest answered call was due, from the first due time: a
    /// stall at the start (connections, pools warming up) or in the middle.
    pub slowest_due: Duration,
    /// How late the generator sent (already part of `latency`).
    pub lag: Histogram<u64>,
}

/// The load: where, how much, and how long to wait for stragglers.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub addr: SocketAddr,
    /// HTTP/2 connections the calls go round-robin over.
    pub connections: usize,
    /// Calls per second.
    pub rate: f64,
    /// Calls unanswered this long after the last one was sent count as timed out.
    pub straggler_timeout: Duration,
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

pub fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// The generator's thread (named `loadgen`, for the CPU accounting): it
/// lives as long as this handle, so that the time it spends stays visible
/// in `/proc/self/task` between two readings around a level.
pub struct Generator {
    levels: std::sync::mpsc::Sender<Level>,
}

/// One level for the generator's thread, and where its outcome goes.
struct Level {
    load: Load,
    calls: Vec<Call>,
    check: Arc<Check>,
    outcome: std::sync::mpsc::Sender<anyhow::Result<Outcome>>,
}

impl Generator {
    pub fn start() -> anyhow::Result<Generator> {
        let (levels, queue) = std::sync::mpsc::channel::<Level>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name("loadgen".into()).spawn(move || {
            for level in queue {
                let local = tokio::task::LocalSet::new();
                let _ =
                    level.outcome.send(runtime.block_on(local.run_until(drive(level.load, level.calls, level.check))));
            }
        })?;
        Ok(Generator { levels })
    }

    /// Sends `calls` at `load.rate` and waits for the answers.
    pub fn run(&self, load: Load, calls: Vec<Call>, check: Arc<Check>) -> anyhow::Result<Outcome> {
        anyhow::ensure!(load.connections > 0 && load.rate > 0.0 && !calls.is_empty(), "bad load {load:?}");
        let (outcome, answer) = std::sync::mpsc::channel();
        self.levels
            .send(Level { load, calls, check, outcome })
            .map_err(|_| anyhow::anyhow!("the load generator stopped"))?;
        answer.recv().map_err(|_| anyhow::anyhow!("the load generator panicked"))?
    }
}

/// What the calls in flight report, on the generator's one thread.
struct Tally {
    ok: usize,
    answered: usize,
    errors: BTreeMap<String, u64>,
    latency: Histogram<u64>,
    /// (latency, due) of the slowest answered call.
    slowest: (Duration, Instant),
    last: Instant,
}

impl Tally {
    /// Counts an answer; the last one of the level wakes `drive`.
    fn count_answer(&mut self, sent: usize, all_answered: &tokio::sync::Notify) {
        self.answered += 1;
        if self.answered == sent {
            all_answered.notify_one();
        }
    }
}

async fn drive(load: Load, calls: Vec<Call>, check: Arc<Check>) -> anyhow::Result<Outcome> {
    let mut senders = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        let tcp = tokio::net::TcpStream::connect(load.addr).await?;
        tcp.set_nodelay(true)?;
        let (sender, connection) = h2::client::handshake(tcp).await?;
        tokio::task::spawn_local(async move {
            // The connection ends with an error when the server goes away:
            // the calls on it report that.
            let _ = connection.await;
        });
        senders.push(sender);
    }
    let authority = load.addr.to_string();
    let uris: BTreeMap<&'static str, Uri> = calls
        .iter()
        .map(|call| {
            let uri = Uri::builder().scheme("http").authority(authority.as_str()).path_and_query(call.path).build()?;
            Ok((call.path, uri))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut grpc_headers = HeaderMap::new();
    grpc_headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    grpc_headers.insert(http::header::TE, HeaderValue::from_static("trailers"));

    let sent = calls.len();
    let interval = Duration::from_secs_f64(1.0 / load.rate);
    // Taken before the timer is set, so that no call looks earlier than it was.
    let start = Instant::now() + PACER_DELAY;
    let timer = pacer(interval)?;
    let tally = Rc::new(RefCell::new(Tally {
        ok: 0,
        answered: 0,
        errors: BTreeMap::new(),
        latency: histogram(),
        slowest: (Duration::ZERO, start),
        last: start,
    }));
    let all_answered = Rc::new(tokio::sync::Notify::new());
    let mut lag = histogram();
    let mut calls = calls.into_iter().enumerate();
    let mut due_so_far = 0;
    while due_so_far < sent {
        due_so_far = (due_so_far + expirations(&timer).await?).min(sent);
        let now = Instant::now();
        let already_sent = sent - calls.len();
        for (n, call) in calls.by_ref().take(due_so_far - already_sent) {
            let due = start + interval * u32::try_from(n).unwrap_or(u32::MAX);
            lag.saturating_record(micros(now.saturating_duration_since(due)));
            let mut request = Request::new(());
            *request.method_mut() = Method::POST;
            *request.uri_mut() = uris[call.path].clone();
            let headers = request.headers_mut();
            *headers = grpc_headers.clone();
            for (name, value) in call.metadata {
                headers.insert(name, value);
            }
            let sender = senders[n % senders.len()].clone();
            let (tally, check, all_answered) = (tally.clone(), check.clone(), all_answered.clone());
            tokio::task::spawn_local(async move {
                let outcome = exchange(sender, request, call.frame).await.and_then(|message| check(n, &message));
                let done = Instant::now();
                let mut tally = tally.borrow_mut();
                tally.count_answer(sent, &all_answered);
                tally.last = tally.last.max(done);
                match outcome {
                    Ok(()) => {
                        tally.ok += 1;
                        let latency = done.saturating_duration_since(due);
                        tally.latency.saturating_record(micros(latency));
                        if latency > tally.slowest.0 {
                            tally.slowest = (latency, due);
                        }
                    }
                    Err(code) => *tally.errors.entry(code).or_insert(0) += 1,
                }
            });
        }
    }
    // A permit stored by the last answer makes this return at once.
    let _ = tokio::time::timeout(load.straggler_timeout, all_answered.notified()).await;
    let mut tally = tally.borrow_mut();
    let unanswered = sent - tally.answered;
    if unanswered > 0 {
        *tally.errors.entry("timeout".into()).or_insert(0) += unanswered as u64;
    }
    let achieved = tally.ok as f64 / tally.last.saturating_duration_since(start).as_secs_f64().max(f64::EPSILON);
    Ok(Outcome {
        sent,
        ok: tally.ok,
        errors: std::mem::take(&mut tally.errors),
        achieved,
        latency: std::mem::replace(&mut tally.latency, histogram()),
        slowest_due: tally.slowest.1.saturating_duration_since(start),
        lag,
    })
}

/// The first call is due this long after the pacer is set.
const PACER_DELAY: Duration = Duration::from_millis(5);

/// A timer that fires every `interval`, first after `PACER_DELAY`.
fn pacer(interval: Duration) -> anyhow::Result<AsyncFd<std::fs::File>> {
    let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC)?;
    timer.set(
        Expiration::IntervalDelayed(TimeSpec::from_duration(PACER_DELAY), TimeSpec::from_duration(interval)),
        TimerSetTimeFlags::empty(),
    )?;
    let timer = std::fs::File::from(std::os::fd::OwnedFd::from(timer));
    // `AsyncFd::register` is the undeprecated way, but it is `unsafe` and
    // the workspace forbids unsafe code; what it asks of the caller holds
    // here: the `File` owns the timer's descriptor for the `AsyncFd`'s life.
    #[expect(deprecated)]
    Ok(AsyncFd::new(timer)?)
}

/// Waits for the pacer and returns how many intervals have passed since it was last read.
async fn expirations(timer: &AsyncFd<std::fs::File>) -> anyhow::Result<usize> {
    loop {
        let mut ready = timer.readable().await?;
        let mut count = [0u8; 8];
        match ready.try_io(|file| file.get_ref().read_exact(&mut count)) {
            Ok(result) => {
                result?;
                return Ok(usize::try_from(u64::from_ne_bytes(count)).unwrap_or(usize::MAX));
            }
            Err(_would_block) => continue,
        }
    }
}

/// One unary call: the answer's message, unframed, or why there is none.
async fn exchange(sender: h2::client::SendRequest<Bytes>, request: Request<()>, frame: Bytes) -> Result<Bytes, String> {
    let h2_error = |err: h2::Error| format!("h2: {}", err.reason().map_or_else(|| "io".to_owned(), |r| r.to_string()));
    let mut sender = sender.ready().await.map_err(h2_error)?;
    let (response, mut body) = sender.send_request(request, false).map_err(h2_error)?;
    body.send_data(frame, true).map_err(h2_error)?;
    let response = response.await.map_err(h2_error)?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("http {}", response.status().as_u16()));
    }
    // A trailers-only answer carries the status in the headers.
    grpc_status(response.headers())?;
    let mut stream = response.into_body();
    let mut message = BytesMut::new();
    while let Some(chunk) = stream.data().await {
        let chunk = chunk.map_err(h2_error)?;
        let _ = stream.flow_control().release_capacity(chunk.len());
        message.extend_from_slice(&chunk);
    }
    let trailers = stream.trailers().await.map_err(h2_error)?.unwrap_or_default();
    grpc_status(&trailers)?;
    unframe(message.freeze())
}

/// Err(code) unless `headers` say OK or say nothing.
fn grpc_status(headers: &HeaderMap) -> Result<(), String> {
    match headers.get("grpc-status").map(|value| value.to_str().unwrap_or("?").parse::<i32>()) {
        None | Some(Ok(0)) => Ok(()),
        Some(Ok(code)) => Err(format!("{:?}", tonic::Code::from(code))),
        Some(Err(_)) => Err("bad grpc-status".into()),
    }
}

/// The one message of a unary answer.
fn unframe(framed: Bytes) -> Result<Bytes, String> {
    if framed.len() < 5 {
        return Err("no message".into());
    }
    if framed[0] != 0 {
        return Err("compressed message".into());
    }
    let len = u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]) as usize;
    if framed.len() != 5 + len {
        return Err(format!("frame of {} bytes says {len}", framed.len()));
    }
    Ok(framed.slice(5..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus};

    #[test]
    fn a_frame_round_trips() {
        let request = HealthCheckRequest { service: "branchscore".into() };
        let framed = frame(&request);
        assert_eq!(&framed[..5], &[0, 0, 0, 0, 13]);
        let message = unframe(framed).expect("one message");
        assert_eq!(<HealthCheckRequest as prost::Message>::decode(message).expect("decodes"), request);
    }

    #[test]
    fn a_short_or_compressed_frame_is_refused() {
        assert_eq!(unframe(Bytes::from_static(&[0, 0, 0])), Err("no message".into()));
        assert_eq!(unframe(Bytes::from_static(&[1, 0, 0, 0, 0])), Err("compressed message".into()));
        assert_eq!(unframe(Bytes::from_static(&[0, 0, 0, 0, 2, 8])), Err("frame of 6 bytes says 2".into()));
    }

    #[test]
    fn grpc_status_names_the_code() {
        let mut headers = HeaderMap::new();
        assert_eq!(grpc_status(&headers), Ok(()));
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        assert_eq!(grpc_status(&headers), Ok(()));
        headers.insert("grpc-status", HeaderValue::from_static("7"));
        assert_eq!(grpc_status(&headers), Err("PermissionDenied".into()));
    }

    /// Against a real tonic server on 127.0.0.1: every call is sent, paced
    /// at the rate, and answered; a refused call is counted by its code.
    #[test]
    fn calls_a_real_server_at_the_rate() {
        let server = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        let addr = server.block_on(start_trivial_server()).expect("the trivial server");
        const PATH: &str = "/grpc.health.v1.Health/Check";
        // Call 7 asks for a service the server does not know: NOT_FOUND.
        let calls: Vec<Call> = (0..200)
            .map(|n| {
                Call::new(PATH, &HealthCheckRequest { service: if n == 7 { "nobody".into() } else { String::new() } })
            })
            .collect();
        let check: Arc<Check> = Arc::new(|_, message: &[u8]| {
            let reply = <HealthCheckResponse as prost::Message>::decode(message).map_err(|e| e.to_string())?;
            (reply.status() == ServingStatus::Serving).then_some(()).ok_or_else(|| "not serving".to_owned())
        });
        let load = Load { addr, connections: 2, rate: 1000.0, straggler_timeout: Duration::from_secs(10) };
        let started = Instant::now();
        let outcome = Generator::start().expect("a thread").run(load, calls, check).expect("the level runs");
        assert_eq!(outcome.sent, 200);
        assert_eq!(outcome.ok, 199);
        assert_eq!(outcome.errors, BTreeMap::from([("NotFound".to_owned(), 1)]));
        assert_eq!(outcome.latency.len(), 199);
        assert_eq!(outcome.lag.len(), 200);
        // 200 calls at 1000 per second cannot be over sooner than the last one is due.
        assert!(started.elapsed() >= Duration::from_millis(199), "{:?}", started.elapsed());
    }
}
