//! A small HTTP/1.1 load generator on hyper: one keep-alive connection per worker, latencies in
//! an HDR histogram (microsecond resolution).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How late tokio's millisecond-resolution timer may wake a scheduled request.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// What to send, and where.
#[derive(Debug)]
pub struct Load {
    addr: SocketAddr,
    path: &'static str,
    body: Bytes,
}

/// The outcome of one run.
pub struct Report {
    histogram: Histogram<u64>,
    /// Time to the first byte of each answer's body (for a stream: its first event).
    first_byte: Histogram<u64>,
    pub errors: u64,
    elapsed: Duration,
}

impl Report {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            histogram: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            first_byte: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            errors: 0,
            elapsed: Duration::ZERO,
        })
    }

    fn merge(&mut self, other: &Report) -> anyhow::Result<()> {
        self.histogram.add(&other.histogram)?;
        self.first_byte.add(&other.first_byte)?;
        self.errors += other.errors;
        Ok(())
    }

    /// An empty report to [`Report::absorb`] rounds into.
    pub fn empty() -> anyhow::Result<Self> {
        Self::new()
    }

    /// Adds a later run of the same load: latencies, errors and time.
    pub fn absorb(&mut self, other: &Report) -> anyhow::Result<()> {
        self.merge(other)?;
        self.elapsed += other.elapsed;
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn rps(&self) -> f64 {
        self.count() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        self.histogram.value_at_percentile(p) as f64 / 1000.0
    }

    /// Time to the first byte of the body at percentile `p`, in milliseconds.
    pub fn first_byte_ms(&self, p: f64) -> f64 {
        self.first_byte.value_at_percentile(p) as f64 / 1000.0
    }
}

type Sender = http1::SendRequest<Full<Bytes>>;

impl Load {
    pub fn new(addr: SocketAddr, path: &'static str, body: &'static str) -> Self {
        Self {
            addr,
            path,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    async fn connect(&self) -> anyhow::Result<Sender> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// Sends the request and reads the whole answer; returns when its body's first byte came,
    /// measured from `scheduled`.
    async fn send(&self, sender: &mut Sender, scheduled: Instant) -> anyhow::Result<Duration> {
        sender.ready().await?;
        let request = hyper::Request::post(self.path)
            .header("host", self.addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(self.body.clone()))?;
        let response = sender.send_request(request).await?;
        let ok = response.status().is_success();
        let mut body = response.into_body();
        let mut first_byte = None;
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            if first_byte.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
                first_byte = Some(scheduled.elapsed());
            }
        }
        anyhow::ensure!(ok, "non-2xx answer");
        Ok(first_byte.unwrap_or_else(|| scheduled.elapsed()))
    }

    /// `connections` workers, each sending back to back, for `duration`.
    pub async fn closed(&self, connections: usize, duration: Duration) -> anyhow::Result<Report> {
        let deadline = Instant::now() + duration;
        self.run(connections, |_| Plan::Until(deadline)).await
    }

    /// `total` requests spread over `connections` workers, back to back.
    pub async fn count(&self, connections: usize, total: u64) -> anyhow::Result<Report> {
        let each = total / connections as u64;
        let extra = total % connections as u64;
        self.run(connections, |i| {
            Plan::Count(each + u64::from((i as u64) < extra))
        })
        .await
    }

    /// An open loop at `rate` requests per second for `duration`, latency measured from each
    /// request's scheduled time.
    pub async fn fixed_rate(&self, rate: u64, duration: Duration) -> anyhow::Result<Report> {
        // Enough connections that one slow answer does not hold up the schedule.
        let connections = 16usize;
        let per_connection = Duration::from_secs_f64(connections as f64 / rate as f64);
        let start = Instant::now() + Duration::from_millis(10);
        let total = (rate as f64 * duration.as_secs_f64()) as u64;
        self.run(connections, |i| Plan::Schedule {
            first: start + per_connection.mul_f64(i as f64 / connections as f64),
            every: per_connection,
            count: total / connections as u64,
        })
        .await
    }

    async fn run(
        &self,
        connections: usize,
        plan: impl Fn(usize) -> Plan,
    ) -> anyhow::Result<Report> {
        let started = Instant::now();
        let workers = (0..connections).map(|i| self.worker(plan(i)));
        let reports = futures_util::future::join_all(workers).await;
        let mut total = Report::new()?;
        for report in reports {
            total.merge(&report?)?;
        }
        total.elapsed = started.elapsed();
        Ok(total)
    }

    async fn worker(&self, plan: Plan) -> anyhow::Result<Report> {
        let mut report = Report::new()?;
        let mut sender = self.connect().await?;
        let mut sent = 0u64;
        loop {
            let scheduled = match plan {
                Plan::Until(deadline) => {
                    if Instant::now() >= deadline {
                        break;
                    }
                    Instant::now()
                }
                Plan::Count(n) => {
                    if sent >= n {
                        break;
                    }
                    Instant::now()
                }
                Plan::Schedule {
                    first,
                    every,
                    count,
                } => {
                    if sent >= count {
                        break;
                    }
                    let at = first + every.mul_f64(sent as f64);
                    tokio::time::sleep_until(at.into()).await;
                    // The timer wakes up to a millisecond late; that lateness is the load
                    // generator's, not the server's. Lateness beyond it means the previous
                    // answer held this connection up, and counts (no coordinated omission).
                    let woke = Instant::now();
                    if woke.duration_since(at) > TIMER_SLACK {
                        at
                    } else {
                        woke
                    }
                }
            };
            sent += 1;
            match self.send(&mut sender, scheduled).await {
                Ok(first_byte) => {
                    let micros = scheduled.elapsed().as_micros().max(1) as u64;
                    report.histogram.saturating_record(micros);
                    let micros = first_byte.as_micros().max(1) as u64;
                    report.first_byte.saturating_record(micros);
                }
                Err(_) => {
                    report.errors += 1;
                    sender = self.connect().await?;
                }
            }
        }
        Ok(report)
    }
}

#[derive(Debug, Clone, Copy)]
enum Plan {
    Until(Instant),
    Count(u64),
    Schedule {
        first: Instant,
        every: Duration,
        count: u64,
    },
}

/// When [`send_each`] sends: back to back (`Until`: none starts after that instant), or
/// (`Paced`) each worker one request every `every` until `until`.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    BackToBack,
    Until(Instant),
    Paced { every: Duration, until: Instant },
}

/// Sends each body once (or as many as `pace` lets through), `concurrency` at a time, each
/// worker on its own connection. Returns how many were sent.
pub async fn send_each(
    addr: SocketAddr,
    path: &'static str,
    bodies: &[String],
    concurrency: usize,
    pace: Pace,
) -> anyhow::Result<usize> {
    let chunks: Vec<&[String]> = bodies
        .chunks(bodies.len().div_ceil(concurrency).max(1))
        .collect();
    let workers = chunks.into_iter().map(|chunk| async move {
        let load = Load {
            addr,
            path,
            body: Bytes::new(),
        };
        let mut sender = load.connect().await?;
        let mut sent = 0usize;
        let start = Instant::now();
        for body in chunk {
            match pace {
                Pace::BackToBack => {}
                Pace::Until(until) if Instant::now() >= until => break,
                Pace::Until(_) => {}
                Pace::Paced { every, until } => {
                    let at = start + every.mul_f64(sent as f64);
                    if at >= until {
                        break;
                    }
                    tokio::time::sleep_until(at.into()).await;
                }
            }
            sent += 1;
            sender.ready().await?;
            let request = hyper::Request::post(path)
                .header("host", addr.to_string())
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.clone())))?;
            let response = sender.send_request(request).await?;
            anyhow::ensure!(
                response.status().is_success(),
                "fill request failed: {}",
                response.status()
            );
            response.into_body().collect().await?;
        }
        anyhow::Ok(sent)
    });
    let mut sent = 0;
    for result in futures_util::future::join_all(workers).await {
        sent += result?;
    }
    Ok(sent)
}

/// One request; returns the `x-reprise-cache-kind` header and the body.
pub async fn fetch(
    addr: SocketAddr,
    path: &'static str,
    body: &'static str,
) -> anyhow::Result<(Option<String>, Bytes)> {
    let load = Load::new(addr, path, body);
    let mut sender = load.connect().await?;
    sender.ready().await?;
    let request = hyper::Request::post(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))?;
    let response = sender.send_request(request).await?;
    let kind = response
        .headers()
        .get("x-reprise-cache-kind")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((kind, bytes))
}

/// The body of `GET path`.
pub async fn get(addr: SocketAddr, path: &'static str) -> anyhow::Result<String> {
    let load = Load::new(addr, path, "");
    let mut sender = load.connect().await?;
    sender.ready().await?;
    let request = hyper::Request::get(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A plain HTTP server answering every request with `body`, on its own thread and runtime.
pub fn static_server(body: Bytes) -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            let app = axum::Router::new().fallback(move || {
                let body = body.clone();
                async move { ([("content-type", "application/json")], body) }
            });
            let _ = axum::serve(listener, app).await;
        });
    });
    Ok(addr)
}
