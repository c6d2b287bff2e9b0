//! The wire dialects the reference server speaks (`serve --dialect NAME`).
//!
//! CONTRACT.md section 7 leaves to each vendor the header names, paths, the error envelope,
//! the pre-processing states' names, the rate-limit headers and the idempotency header. A
//! [`Dialect`] picks one vendor's choices; [`Dialect::table`] says what they are, and the
//! handlers read that table rather than the dialect's name. The `standard` dialect is the
//! one `docs/contract.md` pins (and the default suite checks); `flat` is a second vendor of
//! the same service, checked by `suites/flat.toml`.

use super::named::named_switches;

named_switches! {
    /// One vendor's wire dialect; see [`Dialect::description`].
    Dialect, UnknownDialect, "dialect";
    Standard => "standard",
        "docs/contract.md: X-Api-Key, {\"error\": {\"code\", \"message\", \"request_id\"}}, GET /v1/jobs/{id}, pending -> processing -> completed | failed, Retry-After and both rate-limit header forms, Idempotency-Key";
    Flat => "flat",
        "a second vendor: Authorization: Bearer, flat {\"error\": \"message\"} bodies (no request id in 401s), GET /v1/jobs/{id}/status, created -> uploaded -> processing -> completed | failed, X-RateLimit-* with an epoch Reset and no Retry-After, X-Api-Version: 2 on every response, X-Idempotency-Token";
}

/// How error bodies look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorBody {
    /// `{"error": {"code", "message", "request_id"}}`.
    Envelope,
    /// `{"error": "message", "request_id"}`: no code; 401 bodies carry no request id.
    Flat,
}

/// Which rate-limit headers a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateHeaders {
    /// `X-RateLimit-*` (Reset in seconds from now) and the IETF draft's `RateLimit`
    /// and `RateLimit-Policy`, plus `Retry-After` on a 429 (the variants narrow this).
    Standard,
    /// Only `X-RateLimit-Limit/-Remaining/-Reset`, Reset a Unix epoch; no `Retry-After`.
    EpochOnly,
}

/// Everything a dialect decides, in one table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DialectTable {
    /// The request header that carries the key (lower case).
    pub key_header: &'static str,
    /// What comes before the key in that header (`"Bearer "`); matched case-insensitively.
    pub key_prefix: &'static str,
    /// The `WWW-Authenticate` challenge of a 401.
    pub challenge: &'static str,
    /// The messages of the two refusals: no key, and a key no tenant has.
    pub missing_key_message: &'static str,
    pub invalid_key_message: &'static str,
    pub error_body: ErrorBody,
    /// The path that reads one job, under `/v1/jobs/{job_id}`: `""` or `"/status"`.
    pub status_suffix: &'static str,
    /// The names of a job waiting to be processed: the first until its video has been
    /// fetched ([`DialectTable::fetch_millis`] after creation), the second after.
    pub waiting_states: [&'static str; 2],
    /// How long a new job reads as `waiting_states[0]`.
    pub fetch_millis: u64,
    pub rate_headers: RateHeaders,
    /// A header every response carries, naming the API version.
    pub version_header: Option<(&'static str, &'static str)>,
    /// The request header that carries an idempotency key (lower case).
    pub idempotency_header: &'static str,
}

impl Dialect {
    /// The choices of this dialect.
    pub(crate) fn table(self) -> &'static DialectTable {
        match self {
            Dialect::Standard => &STANDARD,
            Dialect::Flat => &FLAT,
        }
    }
}

const STANDARD: DialectTable = DialectTable {
    key_header: "x-api-key",
    key_prefix: "",
    challenge: "ApiKey",
    missing_key_message: "Missing API key: send it in the X-Api-Key header",
    invalid_key_message: "Invalid API key",
    error_body: ErrorBody::Envelope,
    status_suffix: "",
    waiting_states: ["pending", "pending"],
    fetch_millis: 0,
    rate_headers: RateHeaders::Standard,
    version_header: None,
    idempotency_header: "idempotency-key",
};

const FLAT: DialectTable = DialectTable {
    key_header: "authorization",
    key_prefix: "Bearer ",
    challenge: "Bearer",
    missing_key_message: "Missing API key",
    invalid_key_message: "Invalid API key",
    error_body: ErrorBody::Flat,
    status_suffix: "/status",
    waiting_states: ["created", "uploaded"],
    fetch_millis: 300,
    rate_headers: RateHeaders::EpochOnly,
    version_header: Some(("x-api-version", "2")),
    idempotency_header: "x-idempotency-token",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &dialect in Dialect::ALL {
            assert_eq!(dialect.name().parse::<Dialect>(), Ok(dialect));
            assert!(!dialect.description().contains('\n'));
        }
        assert_eq!(crate::ServerConfig::default().dialect, Dialect::Standard);
        assert!("nope"
            .parse::<Dialect>()
            .unwrap_err()
            .to_string()
            .contains("flat"));
    }
}
