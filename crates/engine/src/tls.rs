//! TLS for targets behind an internal certificate authority or mutual TLS: extra roots
//! (`--cacert`), a client certificate (`--cert`, `--cert-key`), and the explicit opt-out of
//! verification (`--insecure`). Read and checked once, before any request, so a bad file is
//! a usage error and not an unreachable target.

use std::path::Path;

use reqwest::{Certificate, ClientBuilder, Identity};

/// What the run's HTTP clients add to their TLS. The client certificate goes only to the
/// target (see [`TlsOptions::apply`]); roots and `--insecure` apply to every link too.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// Certificate authorities trusted besides the system's.
    roots: Vec<Certificate>,
    /// The client certificate and its key, for a target that asks for one.
    identity: Option<Identity>,
    /// Accept any certificate (`--insecure`): a man in the middle could read the key.
    pub accept_invalid_certs: bool,
}

impl std::fmt::Debug for TlsOptions {
    /// Never the key: only what is configured.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("roots", &self.roots.len())
            .field("client_certificate", &self.identity.is_some())
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .finish()
    }
}

impl TlsOptions {
    /// Read the files the flags name. `cert_key` may be left out when `cert` holds the key
    /// too. The error names the flag and the file.
    pub fn load(
        cacert: Option<&Path>,
        cert: Option<&Path>,
        cert_key: Option<&Path>,
        accept_invalid_certs: bool,
    ) -> Result<TlsOptions, String> {
        let mut options = TlsOptions {
            accept_invalid_certs,
            ..TlsOptions::default()
        };
        if let Some(path) = cacert {
            let pem = read("--cacert", path)?;
            options.roots = Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|roots| !roots.is_empty())
                .ok_or_else(|| {
                    format!(
                        "--cacert {}: no PEM certificate in it (expected `-----BEGIN CERTIFICATE-----`)",
                        path.display()
                    )
                })?;
        }
        match (cert, cert_key) {
            (None, Some(_)) => return Err("--cert-key needs --cert".into()),
            (None, None) => {}
            (Some(cert), key) => {
                let mut pem = read("--cert", cert)?;
                if let Some(key) = key {
                    pem.push(b'\n');
                    pem.extend(read("--cert-key", key)?);
                }
                let identity = Identity::from_pem(&pem).map_err(|e| {
                    format!(
                        "--cert {}: not a PEM certificate with its private key{} ({})",
                        cert.display(),
                        if key.is_none() {
                            "; give the key with --cert-key"
                        } else {
                            ""
                        },
                        crate::client::error_chain(&e)
                    )
                })?;
                options.identity = Some(identity);
            }
        }
        Ok(options)
    }

    /// Whether any option is set (they are refused for a target that is not https).
    pub fn any(&self) -> bool {
        !self.roots.is_empty() || self.identity.is_some() || self.accept_invalid_certs
    }

    /// `builder` with these options; the client certificate only when `to_target`, so a
    /// link to another origin never sees it.
    pub fn apply(&self, builder: ClientBuilder, to_target: bool) -> ClientBuilder {
        let mut builder = builder
            .tls_certs_merge(self.roots.iter().cloned())
            .tls_danger_accept_invalid_certs(self.accept_invalid_certs);
        if let (true, Some(identity)) = (to_target, &self.identity) {
            builder = builder.identity(identity.clone());
        }
        builder
    }
}

fn read(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{flag} {}: cannot read it: {e}", path.display()))
}
