//! The runner's guarantees: a panicking check is reported as errored while the others go on,
//! the run's deadline stops a check that would not end, the request budget holds, and every
//! request says who sent it.

mod support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiconform::checks::{Check, Findings, Needs};
use apiconform::client::{ClientConfig, HttpClient, Outgoing, SendOptions};
use apiconform::context::{Abort, CheckContext, RunContext, RunOptions};
use apiconform::record::{Level, Outcome, RunRecord};
use apiconform::runner::{Plan, PlannedCheck};
use apiconform::schemas::SchemaSet;
use apiconform::suite::{Settings, Suite};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

/// A check that does what it is told, without any request.
struct Scripted(&'static str);

impl Check for Scripted {
    fn plan(&self, _settings: &Settings) -> Vec<String> {
        vec![format!("no request ({})", self.0)]
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::default()
    }

    fn run<'a>(&'a self, _cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            match self.0 {
                "panic" => panic!("a bug in a check"),
                "sleep" => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(Vec::new())
                }
                "nap" => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok(Vec::new())
                }
                _ => Ok(Vec::new()),
            }
        }
        .boxed()
    }
}

fn plan_of(scripts: &[&'static str], options: RunOptions) -> Arc<Plan> {
    let suite = Suite::load(None).unwrap();
    let schemas = SchemaSet::load(&suite).unwrap();
    let record = Arc::new(RunRecord::default());
    let client = HttpClient::new(
        ClientConfig::new(
            "http://127.0.0.1:9",
            Some("sk_test_not_used_by_any_server".into()),
        ),
        &suite.settings,
        Arc::clone(&record),
    )
    .unwrap();
    let checks = scripts
        .iter()
        .map(|script| PlannedCheck {
            name: format!("test::{script}"),
            area: "test".into(),
            level: Level::Must,
            kind: "scripted".into(),
            ignored: false,
            final_phase: false,
            check: Box::new(Scripted(script)),
        })
        .collect();
    Arc::new(Plan::with_checks(
        RunContext::new(suite, schemas, client, record, options),
        checks,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_check_is_errored_and_the_others_go_on() {
    let plan = plan_of(&["panic", "pass"], RunOptions::default());
    let panicked = plan.execute(0).await;
    let passed = plan.execute(1).await;
    assert_eq!(panicked.outcome, Outcome::Errored);
    assert!(
        panicked.message.contains("panicked") && panicked.message.contains("a bug in a check"),
        "{}",
        panicked.message
    );
    assert_eq!(passed.outcome, Outcome::Passed);
    assert_eq!(plan.context.record.checks().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_deadline_stops_a_check_that_would_not_end() {
    let options = RunOptions {
        deadline: Some(Instant::now() + Duration::from_millis(300)),
        ..RunOptions::default()
    };
    let plan = plan_of(&["sleep"], options);
    let started = Instant::now();
    let record = plan.execute(0).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(record.outcome, Outcome::Errored);
    assert!(record.message.contains("deadline"), "{}", record.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_budget_holds_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (server, config, _log) = support::start_server(&[], dir.path()).await;
    let suite = Suite::load(None).unwrap();
    let record = Arc::new(RunRecord::default());
    let client_config = ClientConfig {
        max_requests: 3,
        ..ClientConfig::new(server.base_url.clone(), Some(config.primary_key.clone()))
    };
    let client = HttpClient::new(client_config, &suite.settings, Arc::clone(&record)).unwrap();
    let options = SendOptions::default();
    for _ in 0..3 {
        assert!(client
            .send("test", &Outgoing::get("/health"), options)
            .await
            .is_ok());
    }
    let refused = client
        .send("test", &Outgoing::get("/health"), options)
        .await
        .unwrap_err();
    assert!(
        refused.budget_spent() && refused.cause.contains("--max-requests"),
        "{refused}"
    );
    assert!(client.budget_spent());
    assert_eq!(
        record.exchanges().len(),
        3,
        "the refused request was never sent"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_says_who_sent_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
            .unwrap();
        String::from_utf8_lossy(&head).to_ascii_lowercase()
    });
    let suite = Suite::load(None).unwrap();
    let client = HttpClient::new(
        ClientConfig {
            run_id: "run-42".into(),
            ..ClientConfig::new(base_url, Some("sk_secret".into()))
        },
        &suite.settings,
        Arc::new(RunRecord::default()),
    )
    .unwrap();
    client
        .send("test", &Outgoing::get("/v1/jobs"), SendOptions::default())
        .await
        .unwrap();
    let head = server.join().unwrap();
    assert!(
        head.contains(&format!(
            "user-agent: apiconform/{}",
            env!("CARGO_PKG_VERSION")
        )),
        "{head}"
    );
    assert!(head.contains("x-apiconform-run-id: run-42"), "{head}");
    assert!(head.contains("x-api-key: sk_secret"), "{head}");
}

/// A raw body (input that is not JSON on purpose) goes on the wire byte for byte, typed
/// `application/json`, and the record shows it as sent, as the curl line and the JSON report
/// then do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_body_is_sent_and_recorded_as_is() {
    const RAW: &str = "{\"video_url\": \"https://example.com/a.mp4\",";
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(RAW.as_bytes()) && stream.read(&mut byte).unwrap_or(0) == 1 {
            seen.push(byte[0]);
        }
        stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}")
            .unwrap();
        String::from_utf8_lossy(&seen).into_owned()
    });
    let suite = Suite::load(None).unwrap();
    let record = Arc::new(RunRecord::default());
    let client = HttpClient::new(
        ClientConfig::new(base_url, Some("sk_secret".into())),
        &suite.settings,
        Arc::clone(&record),
    )
    .unwrap();
    let mut request = Outgoing::get("/v1/jobs");
    request.method = reqwest::Method::POST;
    request.raw_body = Some(RAW.into());
    let response = client
        .send("test", &request, SendOptions::default())
        .await
        .unwrap();
    assert_eq!(response.status, 400);
    let wire = server.join().unwrap();
    assert!(wire.ends_with(&format!("\r\n\r\n{RAW}")), "{wire}");
    assert!(
        wire.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{wire}"
    );
    let exchange = &record.exchanges()[0];
    assert_eq!(exchange.request_body.as_deref(), Some(RAW));
}

/// The library's one entry point runs a checked configuration end to end, as the binary does:
/// a filtered run against a reference server passes and writes the JSON report it was asked
/// for, listing exactly the selected checks.
#[test]
fn the_entry_point_runs_a_configuration_and_writes_its_reports() {
    use apiconform::config::{Keys, Mode, NoTests, RunConfig, TargetSpec};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (server, server_config, _log) = runtime.block_on(support::start_server(&[], dir.path()));
    let suite = Suite::load(None).unwrap();
    let schemas = SchemaSet::load(&suite).unwrap();
    let report_path = dir.path().join("reports/run.json");
    let config = RunConfig {
        mode: Mode::Run,
        suite_hash: apiconform::report::suite_hash(&suite.source).unwrap(),
        suite,
        schemas,
        target: TargetSpec::Remote {
            base_url: server.base_url.clone(),
            keys: Keys {
                primary: Some(server_config.primary_key.clone()),
                ..Keys::default()
            },
        },
        rate: Some(30.0),
        max_requests: 200,
        max_rate: None,
        deadline: Duration::from_secs(60),
        allow_writes: false,
        strict: false,
        strict_drift: false,
        logs: None,
        job_id: None,
        progress: false,
        libtest: libtest_mimic::Arguments {
            filter: Some("auth::".into()),
            test_threads: Some(2),
            quiet: true,
            ..Default::default()
        },
        filters: vec!["auth::".into()],
        no_tests: NoTests::Fail,
        reports: apiconform::report::ReportPaths::asked([(
            Some(report_path.clone()),
            &apiconform::report::json::FORMAT,
        )]),
        extra_headers: Vec::new(),
        tls: Default::default(),
        notices: Vec::new(),
        webhooks: Default::default(),
        webhook_secret: None,
    };
    let exit = apiconform::run(&runtime, config).expect("the run is set up");
    runtime.block_on(server.shutdown());
    assert_eq!(
        format!("{exit:?}"),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let listed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = support::default_check_names()
        .into_iter()
        .filter(|n| n.contains("auth::"))
        .collect();
    assert_eq!(listed, expected);
    for check in report["checks"].as_array().unwrap() {
        let outcome = check["outcome"].as_str().unwrap();
        assert!(
            outcome == "passed" || (outcome == "ignored" && check["name"] == "auth::cross_tenant"),
            "{check}"
        );
    }
}

/// A check that judges the whole run waits until every other check has finished, however the
/// checks are scheduled: here it starts first, and still ends last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_phase_waits_for_every_other_check() {
    let suite = Suite::load(None).unwrap();
    let schemas = SchemaSet::load(&suite).unwrap();
    let record = Arc::new(RunRecord::default());
    let client = HttpClient::new(
        ClientConfig::new("http://127.0.0.1:9", Some("sk_test_unused".into())),
        &suite.settings,
        Arc::clone(&record),
    )
    .unwrap();
    let planned = |name: &str, script: &'static str, final_phase: bool| PlannedCheck {
        name: name.into(),
        area: "test".into(),
        level: Level::Must,
        kind: "scripted".into(),
        ignored: false,
        final_phase,
        check: Box::new(Scripted(script)),
    };
    let plan = Arc::new(Plan::with_checks(
        RunContext::new(
            suite,
            schemas,
            client,
            Arc::clone(&record),
            RunOptions::default(),
        ),
        vec![
            planned("test::judge", "pass", true),
            planned("test::nap", "nap", false),
        ],
    ));
    assert_eq!(plan.phase_order(), [1, 0]);
    plan.expect_first_phase(1);
    let judge = tokio::spawn({
        let plan = Arc::clone(&plan);
        async move { plan.execute(0).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    plan.execute(1).await;
    judge.await.unwrap();
    let order: Vec<String> = record.checks().into_iter().map(|c| c.name).collect();
    assert_eq!(order, ["test::nap", "test::judge"]);
}

/// A raw HTTP/1.1 server that answers each connection once and closes it (`Connection:
/// close`), as a server with a limit of one request per connection does: the `limited_at`-th
/// request gets a 429 with the error envelope, every other a 200 with RateLimit headers.
/// Returns the base URL, the number of connections accepted, and the request heads seen
/// (lower-cased). It stops when `stop` is set and one more connection comes.
struct ClosingServer {
    base_url: String,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ClosingServer {
    fn start(limited_at: usize) -> ClosingServer {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (count, seen, stopping) = (connections.clone(), heads.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: a test's burst is far smaller.
            for _ in 0..500 {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).to_ascii_lowercase());
                let (status, remaining, body) = if n == limited_at {
                    (
                        "429 Too Many Requests\r\nRetry-After: 1",
                        0,
                        format!("{{\"error\":{{\"code\":\"rate_limited\",\"message\":\"slow down\",\"request_id\":\"r{n}\"}}}}"),
                    )
                } else {
                    (
                        "200 OK",
                        limited_at.saturating_sub(n + 1),
                        "{\"ok\":true}".to_string(),
                    )
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nX-Request-Id: r{n}\r\nX-RateLimit-Limit: {}\r\nX-RateLimit-Remaining: {remaining}\r\nX-Unjudged: {n}\r\n\r\n{body}",
                    body.len(),
                    limited_at - 1,
                );
                let _ = stream.write_all(reply.as_bytes());
                let _ = stream.shutdown(std::net::Shutdown::Write);
            }
        });
        ClosingServer {
            base_url,
            connections,
            heads,
            stop,
            thread: Some(thread),
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for ClosingServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.base_url.trim_start_matches("http://"));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A burst lane sends the prepared request as the general client would (the key, the run
/// id, Host, User-Agent), reopens the connection the server closed after each answer, and
/// gives the lean answer for a 2xx (only the judged headers, no body) and the whole one for
/// a 429 (body and JSON).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_lane_reopens_closed_connections_and_answers_lean_and_whole() {
    let server = ClosingServer::start(4);
    let suite = Suite::load(None).unwrap();
    let record = Arc::new(RunRecord::default());
    let client = HttpClient::new(
        ClientConfig {
            run_id: "run-7".into(),
            ..ClientConfig::new(server.base_url.clone(), Some("sk_lane_secret".into()))
        },
        &suite.settings,
        Arc::clone(&record),
    )
    .unwrap();
    let prepared = client.prepare(&Outgoing::get("/v1/ping?x=1")).unwrap();
    assert!(prepared.has_lanes(), "an http:// target is sent on lanes");
    let mut lane = apiconform::lanes::Lane::default();
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(
            client
                .send_on_lane("test", &prepared, &mut lane)
                .await
                .unwrap(),
        );
    }
    assert_eq!(server.connections(), 5, "one connection per answer");
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 429, 200]);
    let lean = &answers[0];
    assert!(lean.body.is_empty() && lean.json.is_none());
    assert_eq!(lean.request_id.as_deref(), Some("r1"));
    assert_eq!(lean.header("x-ratelimit-remaining"), Some("2"));
    assert_eq!(
        lean.header("x-unjudged"),
        None,
        "a 2xx keeps only judged headers"
    );
    let limited = &answers[3];
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(
        limited.header("x-unjudged"),
        Some("4"),
        "a 429 comes back whole"
    );
    assert_eq!(
        limited.pointer("/error/code").and_then(|c| c.as_str()),
        Some("rate_limited")
    );
    assert_eq!(record.exchange_count(), 5);
    let heads = server.heads.lock().unwrap().clone();
    let host = server.base_url.trim_start_matches("http://").to_string();
    for head in &heads {
        assert!(head.starts_with("get /v1/ping?x=1 http/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("host: {host}\r\n")), "{head}");
        assert!(head.contains("x-api-key: sk_lane_secret\r\n"), "{head}");
        assert!(head.contains("x-apiconform-run-id: run-7\r\n"), "{head}");
        assert!(
            head.contains(&format!(
                "user-agent: apiconform/{}\r\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{head}"
        );
    }
}

/// The rate-limit checks judge a burst on lanes against a server that closes every
/// connection after one answer as they judge it anywhere: the 429 is found, nothing is taken
/// for a transport error, and the request recovers after the hinted wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_burst_against_a_server_that_closes_each_connection_is_judged_as_usual() {
    let server = ClosingServer::start(6);
    let mut suite = Suite::load(None).unwrap();
    suite.settings.burst.request = Some(apiconform::suite::RequestSpec::get("/v1/ping"));
    suite.settings.burst.max_requests = 40;
    suite.settings.burst.concurrency = 4;
    let schemas = SchemaSet::load(&suite).unwrap();
    let record = Arc::new(RunRecord::default());
    let client = HttpClient::new(
        ClientConfig::new(server.base_url.clone(), Some("sk_lane_secret".into())),
        &suite.settings,
        Arc::clone(&record),
    )
    .unwrap();
    let plan = Arc::new(
        Plan::new(RunContext::new(
            suite,
            schemas,
            client,
            Arc::clone(&record),
            RunOptions::default(),
        ))
        .unwrap(),
    );
    for name in ["rate_limit::burst", "rate_limit::recovery"] {
        let index = plan.checks.iter().position(|c| c.name == name).unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(60), plan.execute(index))
            .await
            .expect("the check ends");
        assert_eq!(
            outcome.outcome,
            Outcome::Passed,
            "{name}: {}",
            outcome.message
        );
    }
    assert_eq!(
        server.connections(),
        record.exchange_count(),
        "every request went on a connection of its own"
    );
}
