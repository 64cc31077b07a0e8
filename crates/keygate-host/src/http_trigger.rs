//! The HTTP trigger: accepts connections, routes each request as Spin does,
//! runs it in a fresh instance of its component and logs one line for it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HOST, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::app::{LoadedApp, LoadedComponent};
use crate::engine::MAX_CONCURRENT_INSTANCES;
use crate::limits::{RequestTimedOut, WatchedBody, body_too_large};
use crate::routes::RouteMatch;
use crate::state::RequestState;

/// How long in-flight requests get to finish after Ctrl-C / SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct HttpTrigger {
    app: Arc<LoadedApp>,
    listen: SocketAddr,
    /// One permit per instance the pooling allocator can hold; requests past
    /// that wait here instead of failing to instantiate.
    instances: Arc<Semaphore>,
    /// Log each guest's Wasm instruction count (`--count-instructions`; the
    /// engine then consumes fuel).
    count_instructions: bool,
    /// `--request-timeout`: a guest still running after this is ended.
    request_timeout: Duration,
    /// `--max-request-body`: a larger declared body is refused here.
    max_request_body: u64,
}

impl HttpTrigger {
    pub fn new(
        app: Arc<LoadedApp>,
        listen: SocketAddr,
        count_instructions: bool,
        request_timeout: Duration,
        max_request_body: u64,
    ) -> Arc<Self> {
        Arc::new(Self {
            app,
            listen,
            instances: Arc::new(Semaphore::new(MAX_CONCURRENT_INSTANCES as usize)),
            count_instructions,
            request_timeout,
            max_request_body,
        })
    }

    /// Serves until `shutdown` resolves, then lets open requests finish.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, client) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        eprintln!("keygate-host: accept failed: {e}");
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            // Without it a response written in two segments waits ~40 ms for
            // the client's delayed ACK.
            let _ = stream.set_nodelay(true);
            let trigger = self.clone();
            let service = service_fn(move |req| {
                let trigger = trigger.clone();
                async move { Ok::<_, Infallible>(trigger.handle(req, client).await) }
            });
            let connection = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                // Client-side aborts are routine; nothing to report.
                let _ = connection.await;
            });
        }
        drop(listener);
        eprintln!("keygate-host: shutting down");
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(SHUTDOWN_GRACE) => eprintln!("keygate-host: gave up waiting for open connections"),
        }
        Ok(())
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let (component, response) = match self.app.router.route(&path) {
            None => ("-", plain(StatusCode::NOT_FOUND, "")),
            Some(_) if declared.is_some_and(|n| n > self.max_request_body) => {
                ("-", body_too_large(self.max_request_body))
            }
            Some(route) => {
                let component = &self.app.components[route.component];
                let response = match self.call(component, req, &route, client).await {
                    Ok(response) => response,
                    Err(e) => {
                        eprintln!(
                            "keygate-host: {method} {path}: component `{}` failed: {e:?}",
                            route.component
                        );
                        match e.chain().find_map(|c| c.downcast_ref::<RequestTimedOut>()) {
                            Some(timed_out) => timed_out.problem(),
                            None => {
                                plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                            }
                        }
                    }
                };
                (route.component, response)
            }
        };
        // Path only: query strings and headers may carry secrets.
        log_request(format_args!(
            "keygate-host: {method} {path} {component} {} {:.2}ms\n",
            response.status().as_u16(),
            started.elapsed().as_secs_f64() * 1000.0
        ));
        response
    }

    async fn call(
        &self,
        component: &LoadedComponent,
        req: Request<Incoming>,
        route: &RouteMatch<'_>,
        client: SocketAddr,
    ) -> Result<Response<HyperOutgoingBody>> {
        let permit = self
            .instances
            .clone()
            .acquire_owned()
            .await
            .context("runner is shutting down")?;
        let req = spin_request(req, route, client, self.listen)?;
        // Whether the whole body has arrived: a request past its time limit
        // that still waits for its body is the client's slowness (408).
        let body_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let req = req.map(|body| WatchedBody::new(body, body_done.clone()));
        let mut store = Store::new(
            component.pre.engine(),
            RequestState::new(component.context.clone()),
        );
        if self.count_instructions {
            store.set_fuel(u64::MAX)?;
        }
        // Yield to the runtime at every epoch tick, so the time limit below
        // can end a guest that computes without ever waiting.
        store.epoch_deadline_async_yield_and_update(1);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let outparam = store.data_mut().http().new_response_outparam(sender)?;
        let pre = component.pre.clone();
        let id = component.context.id.clone();
        let count_instructions = self.count_instructions;
        let request_timeout = self.request_timeout;

        // The guest runs in its own task so it can keep streaming the body
        // after the response head has gone out.
        let guest = tokio::spawn(async move {
            let _permit = permit;
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, outparam)
                    .await
            };
            // Past the limit the guest is dropped mid-call (wasmtime allows
            // it), its slot freed; an answer not yet started becomes a 500.
            let result = match tokio::time::timeout(request_timeout, run).await {
                Ok(result) => result,
                Err(_) => Err(wasmtime::Error::new(RequestTimedOut {
                    limit: request_timeout,
                    body_done: body_done.load(std::sync::atomic::Ordering::SeqCst),
                })),
            };
            if let Err(e) = &result {
                eprintln!("keygate-host: component `{id}` trapped: {e:?}");
            }
            if count_instructions {
                // Logged when the guest is done, which may be after the
                // request's own line: a body can still stream after the head.
                let ran = u64::MAX - store.get_fuel().unwrap_or(u64::MAX);
                log_request(format_args!(
                    "keygate-host: {id} ran {ran} Wasm instructions\n"
                ));
            }
            result
        });

        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(anyhow!("component answered with error {code:?}")),
            Err(_) => match guest.await {
                Ok(Ok(())) => Err(anyhow!("component returned without setting a response")),
                Ok(Err(e)) => Err(anyhow::Error::from(e).context("component trapped")),
                Err(e) => Err(anyhow!("component task failed: {e}")),
            },
        }
    }
}

/// Writes a request's log line with one `write`: `eprintln!` on the
/// unbuffered stderr costs a system call per formatted piece (13 here).
fn log_request(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(line.to_string().as_bytes());
}

/// The request as a Spin component sees it: an absolute URI and the `spin-*`
/// headers. Headers of that name sent by the client are removed first, so a
/// caller cannot forge routing information.
pub fn spin_request<B>(
    req: Request<B>,
    route: &RouteMatch<'_>,
    client: SocketAddr,
    listen: SocketAddr,
) -> Result<Request<B>> {
    let (mut parts, body) = req.into_parts();
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.parse::<hyper::http::uri::Authority>().is_ok())
        .map(str::to_string)
        .unwrap_or_else(|| listen.to_string());
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let full_url = format!("http://{host}{path_and_query}");
    parts.uri = full_url.parse().context("request URI")?;

    let spin_headers: Vec<HeaderName> = parts
        .headers
        .keys()
        .filter(|k| k.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for name in spin_headers {
        parts.headers.remove(name);
    }
    let mut set = |name: &str, value: &str| -> Result<()> {
        parts.headers.insert(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value)?,
        );
        Ok(())
    };
    set("spin-full-url", &full_url)?;
    set("spin-path-info", &route.path_info)?;
    set("spin-matched-route", route.matched_route)?;
    set("spin-component-route", route.component_route)?;
    set("spin-raw-component-route", route.raw_route)?;
    set("spin-base-path", "/")?;
    set("spin-client-addr", &client.to_string())?;
    for (name, value) in &route.captures {
        set(
            &format!("spin-path-match-{}", name.to_ascii_lowercase()),
            value,
        )?;
    }
    Ok(Request::from_parts(parts, body))
}

fn plain(status: StatusCode, body: &'static str) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    if !body.is_empty() {
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::Router;

    #[test]
    fn spin_headers_are_set_and_forged_ones_replaced() {
        let (router, _) = Router::build(&[("/api/keys/...".into(), "keys".into())]).unwrap();
        let route = router.route("/api/keys/abc").unwrap();
        let req = Request::builder()
            .uri("/api/keys/abc?x=1")
            .header("host", "keys.example:8080")
            .header("spin-path-info", "/forged")
            .header("spin-path-match-id", "forged")
            .body(())
            .unwrap();
        let client: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let req = spin_request(req, &route, client, "127.0.0.1:3000".parse().unwrap()).unwrap();
        let h = |n: &str| {
            req.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            req.uri().to_string(),
            "http://keys.example:8080/api/keys/abc?x=1"
        );
        assert_eq!(
            h("spin-full-url").unwrap(),
            "http://keys.example:8080/api/keys/abc?x=1"
        );
        assert_eq!(h("spin-path-info").unwrap(), "/abc");
        assert_eq!(h("spin-matched-route").unwrap(), "/api/keys/...");
        assert_eq!(h("spin-component-route").unwrap(), "/api/keys");
        assert_eq!(h("spin-raw-component-route").unwrap(), "/api/keys/...");
        assert_eq!(h("spin-base-path").unwrap(), "/");
        assert_eq!(h("spin-client-addr").unwrap(), "127.0.0.1:5555");
        assert_eq!(h("spin-path-match-id"), None);
        assert_eq!(req.headers().get_all("spin-path-info").iter().count(), 1);
    }

    #[test]
    fn missing_or_bad_host_falls_back_to_the_listen_address() {
        let (router, _) = Router::build(&[("/x".into(), "c".into())]).unwrap();
        let route = router.route("/x").unwrap();
        let req = Request::builder()
            .uri("/x")
            .header("host", "bad host")
            .body(())
            .unwrap();
        let req = spin_request(
            req,
            &route,
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:3000".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(req.uri().to_string(), "http://127.0.0.1:3000/x");
    }
}
