//! An HTTP server on 127.0.0.1 that records every request and answers through a
//! handler: the receiving end of a generic webhook sink, or a fake of a SaaS API that
//! cannot run here (checking its documented requests, answering as it documents).
//! Stopped when dropped.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "request body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn json(status: u16, body: Value) -> Answer {
        Answer {
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
            ..Answer::status(status)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: &str) -> Answer {
        self.body = body.into();
        self
    }

    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
}

type Handler = dyn Fn(&Received) -> Answer + Send + Sync;

/// `handler`, except that the first request `first` picks is answered 5 s late: the
/// service did the work (the handler ran) but its answer comes after the daemon was
/// killed (crash tests).
pub fn holding_first(
    first: impl Fn(&Received) -> bool + Send + Sync + 'static,
    handler: impl Fn(&Received) -> Answer + Send + Sync + 'static,
) -> impl Fn(&Received) -> Answer + Send + Sync + 'static {
    let pending = std::sync::atomic::AtomicBool::new(true);
    move |r| {
        let answer = handler(r);
        if first(r) && pending.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return answer.after(Duration::from_secs(5));
        }
        answer
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Received>>>,
    /// Answers given in order before the handler is asked.
    script: Arc<Mutex<VecDeque<Answer>>>,
    /// Requests whose answer is being held (for crash tests).
    pub answered: Arc<std::sync::atomic::AtomicUsize>,
    stop: CancellationToken,
}

impl Receiver {
    /// Answers 200 `{}` to everything not scripted.
    pub async fn start() -> Receiver {
        Receiver::start_on(0, |_| Answer::json(200, serde_json::json!({}))).await
    }

    /// On `port` (0: any), answering with `handler` what is not scripted.
    pub async fn start_on(
        port: u16,
        handler: impl Fn(&Received) -> Answer + Send + Sync + 'static,
    ) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the receiver binds");
        let addr = listener.local_addr().unwrap();
        let requests: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script: Arc<Mutex<VecDeque<Answer>>> = Arc::default();
        let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let app = {
            let (requests, script, answered) = (requests.clone(), script.clone(), answered.clone());
            axum::Router::new().fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let (requests, script, handler, answered) = (
                        requests.clone(),
                        script.clone(),
                        handler.clone(),
                        answered.clone(),
                    );
                    async move {
                        let r = Received {
                            method,
                            path: uri.path().to_string(),
                            query: uri.query().unwrap_or("").to_string(),
                            headers,
                            body,
                            at: Instant::now(),
                        };
                        let scripted = script.lock().unwrap().pop_front();
                        let answer = scripted.unwrap_or_else(|| handler(&r));
                        requests.lock().unwrap().push(r);
                        if !answer.delay.is_zero() {
                            tokio::time::sleep(answer.delay).await;
                        }
                        answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        respond(answer)
                    }
                },
            )
        };
        let stop = CancellationToken::new();
        let stopping = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopping.cancelled().await })
                .await;
        });
        Receiver {
            addr,
            requests,
            script,
            answered,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answers the next requests with these, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().unwrap().extend(answers);
    }

    pub fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests came, for at most `secs`.
    pub async fn wait_requests(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {secs} s waiting for {n} requests, got {}: {:#?}",
                    got.len(),
                    got.iter()
                        .map(|r| format!("{} {}", r.method, r.path))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn respond(a: Answer) -> Response {
    let mut resp = (
        StatusCode::from_u16(a.status).expect("a valid status"),
        a.body,
    )
        .into_response();
    for (k, v) in a.headers {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    resp
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
