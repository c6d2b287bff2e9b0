//! TLS flags against the reference server behind a TLS front signed by a test CA: an internal
//! CA trusted with --cacert (and refused without it), mutual TLS with --cert and --cert-key,
//! --insecure loudly warned, and bad TLS input refused before any request.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::{run_bin, text};

const LIMIT: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/fixtures/tls", name]
        .iter()
        .collect();
    path.display().to_string()
}

/// Accept TLS on a loopback port (asking for a client certificate from the test CA when
/// `mutual`) and pass the bytes to `backend`. Returns the front's https base URL.
async fn tls_front(backend: SocketAddr, mutual: bool) -> String {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fixture("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
    let builder = rustls::ServerConfig::builder();
    let builder = if mutual {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(fixture("ca.pem")).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(certs, key).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    format!("https://127.0.0.1:{port}")
}

/// Run `auth::valid_key` through a TLS front (mutual or not) with `tls_flags`.
async fn run_through_tls(mutual: bool, tls_flags: &[&str]) -> (std::process::Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let (server, config, _log) = support::start_server(&[], dir.path()).await;
    let backend: SocketAddr = server
        .base_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let base_url = tls_front(backend, mutual).await;
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, &config.primary_key).unwrap();
    let report = dir.path().join("report.json");
    let mut args: Vec<String> = [
        "--base-url",
        &base_url,
        "--key-file",
        key_file.to_str().unwrap(),
        "--report-json",
        report.to_str().unwrap(),
        "--exact",
        "auth::valid_key",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(tls_flags.iter().map(|s| s.to_string()));
    let out = tokio::task::spawn_blocking(move || run_bin(&args, &[], LIMIT))
        .await
        .unwrap();
    let report = std::fs::read_to_string(&report).unwrap_or_default();
    server.shutdown().await;
    (out, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_ca_is_trusted_with_cacert_and_refused_without() {
    let (out, _) = run_through_tls(false, &[]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("cannot reach https://127.0.0.1:") && stderr.contains("certificate"),
        "{stderr}"
    );
    let ca = fixture("ca.pem");
    let (out, _) = run_through_tls(false, &["--cacert", &ca]).await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("auth::valid_key") && stdout.contains("ok"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_sends_the_client_certificate_from_cert_and_cert_key() {
    let ca = fixture("ca.pem");
    let (out, _) = run_through_tls(true, &["--cacert", &ca]).await;
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let (cert, key) = (fixture("client.pem"), fixture("client.key"));
    let (out, _) = run_through_tls(
        true,
        &["--cacert", &ca, "--cert", &cert, "--cert-key", &key],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // One file holding the certificate and its key works too, as with curl.
    let dir = tempfile::tempdir().unwrap();
    let both = dir.path().join("client-with-key.pem");
    let joined = std::fs::read_to_string(&cert).unwrap() + &std::fs::read_to_string(&key).unwrap();
    std::fs::write(&both, joined).unwrap();
    let (out, _) =
        run_through_tls(true, &["--cacert", &ca, "--cert", both.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_connects_and_says_so_on_stderr_and_in_the_report() {
    let (out, report) = run_through_tls(false, &["--insecure"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: --insecure: the TLS certificate of https://127.0.0.1:"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert!(
        report["notices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap_or_default().contains("--insecure")),
        "{report}"
    );
}

#[test]
fn bad_tls_input_is_one_error_line_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let not_pem = not_pem.to_str().unwrap();
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let cert = fixture("client.pem");
    // Nothing listens there: a request sent would be exit 3, not 2.
    let https = "https://127.0.0.1:9";
    for (args, expected) in [
        (
            vec!["--base-url", https, "--cacert", not_pem],
            "no PEM certificate",
        ),
        (
            vec!["--base-url", https, "--cacert", missing],
            "cannot read it",
        ),
        (vec!["--base-url", https, "--cert", &cert], "--cert-key"),
        (
            vec!["--base-url", "http://127.0.0.1:9", "--insecure"],
            "need an https://",
        ),
        (vec!["--insecure"], "need an https://"),
        (vec!["--base-url", https, "--cert-key", not_pem], "--cert"),
    ] {
        let out = run_bin(&args, &[("APICONFORM_API_KEY", "k")], LIMIT);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
