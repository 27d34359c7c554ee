//! The aggressor's own traffic, each kind a set of tasks that runs until its stop flag is set:
//! signed events posted closed loop (N senders) or open loop (R/s), admin reads looped by N
//! readers, and event streams held open and read. Every request's answer and latency lands in a
//! [`Tally`], which becomes the aggressor's figures in the table.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::report::Percentiles;
use crate::signed;

/// An aggressor's figures by name (what it achieved), summarised per cell across runs.
pub type Figures = BTreeMap<String, f64>;

/// Builds the body of the aggressor's `k`-th event.
pub type Body = Arc<dyn Fn(usize) -> String + Send + Sync>;

/// Answers of one kind of aggressor request.
#[derive(Default)]
pub struct Tally {
    sent: AtomicU64,
    ok: AtomicU64,
    refused: AtomicU64,
    unavailable: AtomicU64,
    other: AtomicU64,
    silent: AtomicU64,
    bytes: AtomicU64,
    latency_ms: Mutex<Vec<f64>>,
}

impl Tally {
    fn record(&self, status: Option<u16>, started: Instant) {
        let counter = match status {
            Some(200..=299) => &self.ok,
            Some(429) => &self.refused,
            Some(503) => &self.unavailable,
            Some(_) => &self.other,
            None => &self.silent,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let ms = started.elapsed().as_secs_f64() * 1e3;
        self.latency_ms.lock().expect("not poisoned").push(ms);
    }

    /// Adds this tally's figures to `out`, each name prefixed with `what` (e.g. `events`).
    pub fn figures(&self, what: &str, out: &mut Figures) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        out.insert(format!("{what} sent"), get(&self.sent));
        out.insert(format!("{what} 2xx"), get(&self.ok));
        out.insert(format!("{what} 429"), get(&self.refused));
        out.insert(format!("{what} 503"), get(&self.unavailable));
        out.insert(format!("{what} other"), get(&self.other));
        out.insert(format!("{what} no answer"), get(&self.silent));
        if self.bytes.load(Ordering::Relaxed) >= 1_000_000 {
            out.insert(format!("{what} MB"), get(&self.bytes) / 1e6);
        }
        let latencies = self.latency_ms.lock().expect("not poisoned").clone();
        if !latencies.is_empty() {
            out.insert(format!("{what} p99 ms"), Percentiles::of(latencies).p99);
        }
    }
}

/// Tasks of one aggressor and the flag that stops them.
#[derive(Default)]
pub struct Tasks {
    pub stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

impl Tasks {
    /// Stops every task and waits for them, at most `grace` in all (then a request still in
    /// flight is abandoned).
    pub async fn stop(self, grace: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let aborts: Vec<_> = self.handles.iter().map(JoinHandle::abort_handle).collect();
        if tokio::time::timeout(grace, futures::future::join_all(self.handles)).await.is_err() {
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
        }
    }

    /// `senders` tasks posting `body(k)` to `url`, each posting its next event once the last is
    /// answered.
    pub fn post_closed(
        &mut self,
        client: &reqwest::Client,
        url: &str,
        senders: usize,
        body: Body,
        tally: &Arc<Tally>,
    ) {
        let next = Arc::new(AtomicU64::new(0));
        for _ in 0..senders {
            let (client, url, body, tally, next, stop) = (
                client.clone(),
                url.to_owned(),
                body.clone(),
                tally.clone(),
                next.clone(),
                self.stop.clone(),
            );
            self.handles.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                    post(&client, &url, body(k), &tally).await;
                }
            }));
        }
    }

    /// `rate` events per second posted to `url` on schedule, whatever the answers.
    pub fn post_open(
        &mut self,
        client: &reqwest::Client,
        url: &str,
        rate: u64,
        body: Body,
        tally: &Arc<Tally>,
    ) {
        let (client, url, tally, stop) = (client.clone(), url.to_owned(), tally.clone(), self.stop.clone());
        self.handles.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let (client, url, tally, body) = (client.clone(), url.clone(), tally.clone(), body(k));
                tokio::spawn(async move { post(&client, &url, body, &tally).await });
                k += 1;
            }
        }));
    }

    /// `readers` tasks each cycling through `urls` (GET with `token`) until stopped.
    pub fn read_loop(
        &mut self,
        client: &reqwest::Client,
        token: &str,
        urls: &[String],
        readers: usize,
        tally: &Arc<Tally>,
    ) {
        for r in 0..readers {
            let (client, token, urls, tally, stop) =
                (client.clone(), token.to_owned(), urls.to_vec(), tally.clone(), self.stop.clone());
            self.handles.push(tokio::spawn(async move {
                let mut k = r;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    tally.sent.fetch_add(1, Ordering::Relaxed);
                    let sent = client.get(&urls[k % urls.len()]).bearer_auth(&token).send().await;
                    let status = match sent {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let body = response.bytes().await.map(|b| b.len()).unwrap_or(0);
                            tally.bytes.fetch_add(body as u64, Ordering::Relaxed);
                            Some(status)
                        }
                        Err(_) => None,
                    };
                    tally.record(status, started);
                    k += 1;
                }
            }));
        }
    }

    /// `n` event streams at `url` (with `token`), each read as fast as it comes until stopped;
    /// the bytes read are counted in `tally`, and each stream's answer once.
    pub fn streams(
        &mut self,
        client: &reqwest::Client,
        token: &str,
        url: &str,
        n: usize,
        tally: &Arc<Tally>,
    ) {
        for _ in 0..n {
            let (client, token, url, tally, stop) =
                (client.clone(), token.to_owned(), url.to_owned(), tally.clone(), self.stop.clone());
            self.handles.push(tokio::spawn(async move {
                let started = Instant::now();
                tally.sent.fetch_add(1, Ordering::Relaxed);
                let Ok(mut response) = client.get(&url).bearer_auth(&token).send().await else {
                    return tally.record(None, started);
                };
                tally.record(Some(response.status().as_u16()), started);
                while !stop.load(Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_millis(200), response.chunk()).await {
                        Ok(Ok(Some(chunk))) => {
                            tally.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        }
                        Ok(_) => break,
                        Err(_) => {}
                    }
                }
            }));
        }
    }
}

/// Posts one signed event and records the answer.
async fn post(client: &reqwest::Client, url: &str, body: String, tally: &Tally) {
    let started = Instant::now();
    tally.sent.fetch_add(1, Ordering::Relaxed);
    tally.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    let signature = signed::sign(&body);
    let sent = signed::request(client, url, body, signature).send().await;
    let status = match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            Some(status)
        }
        Err(_) => None,
    };
    tally.record(status, started);
}

/// The aggressor's `k`-th ordinary event (`message.received`, `eventId` `a{k}`) of `device`.
pub fn small(device: impl Fn(usize) -> String + Send + Sync + 'static) -> Body {
    Arc::new(move |k| signed::event(&format!("a{k}"), &device(k)).0)
}

/// The aggressor's `k`-th event of about 1 MB (the message body padded), under the relay's
/// default 1 MiB body limit.
pub fn large() -> Body {
    let pad = "x".repeat(1_000_000);
    Arc::new(move |k| {
        serde_json::json!({"eventId": format!("a{k}"), "type": "message.received",
            "timestamp": "2026-04-03T12:00:00Z", "deviceId": format!("dev_{}", k % 100),
            "message": {"id": format!("m-a{k}"), "from": "+15559876543", "body": pad}})
        .to_string()
    })
}
