//! Burst lanes ([`Lane`], `LaneTarget`): for a plain `http://` target, each of the burst's
//! concurrent lanes keeps one HTTP/1.1 connection of its own and sends its requests on it one
//! after another, as load tools do.
//!
//! The general client (reqwest) goes through a connection pool and its dispatch channels for
//! every request, which at a burst's rate costs more than the server's own work. A lane has
//! no pool: the request is built once (`LaneTarget`), each send clones it (the header
//! values, the key among them, are shared, not copied), and a connection the server closes
//! (`Connection: close`, a limit of requests per connection) is reopened by the lane on its
//! next request. An `https://` target keeps the general client and its TLS options.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderValue, ACCEPT, HOST, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;

use crate::client::{error_chain, AbortOnDrop, Failed, RawAnswer};

/// Where a lane sends and what: one prepared request, as it goes on the wire.
#[derive(Debug)]
pub(crate) struct LaneTarget {
    /// `host:port` to connect to.
    address: String,
    method: Method,
    /// The path and query (origin form, as HTTP/1.1 sends it).
    uri: Uri,
    /// Every header the general client would send: the request's own (the key among them,
    /// marked sensitive), Host, User-Agent and Accept.
    headers: HeaderMap,
    body: Bytes,
    connect_timeout: Duration,
    timeout: Duration,
    max_body_bytes: usize,
}

impl LaneTarget {
    /// The lane form of `request`, or None where lanes do not apply: not `http://`, a body
    /// that is not in memory, or a proxy configured in the environment (which the general
    /// client follows).
    pub(crate) fn new(
        request: &reqwest::Request,
        user_agent: &str,
        connect_timeout: Duration,
        timeout: Duration,
        max_body_bytes: usize,
    ) -> Option<LaneTarget> {
        let url = request.url();
        if url.scheme() != "http" || proxy_configured() {
            return None;
        }
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        let body = match request.body() {
            None => Bytes::new(),
            Some(body) => Bytes::copy_from_slice(body.as_bytes()?),
        };
        let mut headers = request.headers().clone();
        // As the general client sends them: Host with the port only when it is not the
        // scheme's default, and its default User-Agent and Accept unless the request set one.
        let host_header = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        headers.insert(HOST, HeaderValue::from_str(&host_header).ok()?);
        if !headers.contains_key(USER_AGENT) {
            headers.insert(USER_AGENT, HeaderValue::from_str(user_agent).ok()?);
        }
        if !headers.contains_key(ACCEPT) {
            headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        }
        let path_and_query = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        let address = match url.host() {
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]:{port}"),
            _ => format!("{host}:{port}"),
        };
        Some(LaneTarget {
            address,
            method: request.method().clone(),
            uri: path_and_query.parse().ok()?,
            headers,
            body,
            connect_timeout,
            timeout,
            max_body_bytes,
        })
    }

    /// The request for one send: a clone that shares the header values and the body.
    fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// True when the environment names an HTTP proxy: the general client would go through it,
/// so the burst does too rather than connecting around it.
fn proxy_configured() -> bool {
    ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// One lane of a burst: at most one open connection, used for one request at a time.
#[derive(Default)]
pub struct Lane {
    sender: Option<SendRequest<Full<Bytes>>>,
    /// The task that drives the connection; aborted when the lane closes or is dropped.
    connection: Option<AbortOnDrop<()>>,
}

impl Lane {
    /// Send `target`'s request once and read the answer (the body up to the cap), within the
    /// target's timeout, connecting first when the lane has no open connection.
    pub(crate) async fn fetch(&mut self, target: &LaneTarget) -> Result<RawAnswer, Failed> {
        match tokio::time::timeout(target.timeout, self.exchange(target)).await {
            Ok(result) => result,
            Err(_) => {
                self.close();
                Err(Failed {
                    cause: format!("timed out after {} s", target.timeout.as_secs_f64()),
                    timed_out: true,
                })
            }
        }
    }

    async fn exchange(&mut self, target: &LaneTarget) -> Result<RawAnswer, Failed> {
        // A request the connection closed under before writing it was never sent: it goes
        // once more, on a new connection. Anything else is the answer.
        let mut resent = false;
        loop {
            let sender = self.ready(target).await?;
            match sender.send_request(target.request()).await {
                Ok(response) => {
                    let answer = self.read(response, target.max_body_bytes).await;
                    if answer.as_ref().map_or(true, |a| a.truncated) {
                        self.close();
                    }
                    return answer;
                }
                Err(error) if error.is_canceled() && !resent => {
                    self.close();
                    resent = true;
                }
                Err(error) => {
                    self.close();
                    return Err(transport(&error));
                }
            }
        }
    }

    /// The lane's connection, ready for a request: the open one, or a new one when there is
    /// none or the server closed it.
    async fn ready(
        &mut self,
        target: &LaneTarget,
    ) -> Result<&mut SendRequest<Full<Bytes>>, Failed> {
        let open = match self.sender.as_mut() {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !open {
            self.close();
            self.connect(target).await?;
        }
        Ok(self.sender.as_mut().expect("connected just above"))
    }

    async fn connect(&mut self, target: &LaneTarget) -> Result<(), Failed> {
        let connecting = tokio::net::TcpStream::connect(&target.address);
        let stream = match tokio::time::timeout(target.connect_timeout, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                return Err(Failed {
                    cause: format!("cannot connect to {}: {error}", target.address),
                    timed_out: false,
                })
            }
            Err(_) => {
                return Err(Failed {
                    cause: format!(
                        "cannot connect to {}: timed out after {} s",
                        target.address,
                        target.connect_timeout.as_secs_f64()
                    ),
                    timed_out: true,
                })
            }
        };
        // As the general client: small requests go out at once.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| transport(&e))?;
        self.connection = Some(AbortOnDrop(tokio::spawn(async move {
            // Its end (the server closed, an error) shows on the lane's next request.
            let _ = connection.await;
        })));
        self.sender = Some(sender);
        Ok(())
    }

    async fn read(
        &mut self,
        response: hyper::Response<hyper::body::Incoming>,
        cap: usize,
    ) -> Result<RawAnswer, Failed> {
        let received_at = SystemTime::now();
        let (parts, mut body) = response.into_parts();
        let mut bytes = Vec::new();
        let mut truncated = false;
        while let Some(frame) = body.frame().await {
            let Ok(chunk) = frame.map_err(|e| transport(&e))?.into_data() else {
                continue;
            };
            let room = cap.saturating_sub(bytes.len());
            bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if chunk.len() > room {
                truncated = true;
                break;
            }
        }
        Ok(RawAnswer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: Bytes::from(bytes),
            truncated,
            received_at,
        })
    }

    /// Drop the connection: the next request opens a new one.
    fn close(&mut self) {
        self.sender = None;
        self.connection = None;
    }
}

/// A failed send in words, with the whole cause chain.
fn transport(error: &hyper::Error) -> Failed {
    Failed {
        cause: error_chain(error),
        timed_out: false,
    }
}
