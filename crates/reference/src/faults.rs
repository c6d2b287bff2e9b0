//! Deliberate contract violations the reference server can be told to commit.
//!
//! The harness proves that each of its checks can fail by running the reference
//! server with one [`Fault`] switched on (`--fault NAME`). Every fault breaks
//! exactly one rule of `docs/contract.md` (one is a conforming variant, see
//! [`Fault::NoRateLimitHints`]) and leaves everything else intact.

use std::fmt;
use std::str::FromStr;

/// One deliberate deviation from the contract; see [`Fault::description`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    AcceptMissingKey,
    AcceptInvalidKey,
    AuthWrongCode,
    Auth403,
    AuthPlainError,
    ListRejectsValidKey,
    CrossTenant403,
    CrossTenantLeak,
    EchoKey,
    JobWrongContentType,
    JobProgressAsString,
    JobBadCreatedAt,
    JobIdMismatch,
    CompletedWithoutOutput,
    FailedWithoutError,
    ListBadShape,
    NotFound500,
    NotFoundPlain,
    MalformedId500,
    NoRequestIdInBody,
    NoRequestIdHeader,
    ReusedRequestId,
    RequestIdMismatch,
    NoRequestLog,
    NoRateLimit,
    Burst5xx,
    RateLimitNeverRecovers,
    RetryAfterInPast,
    NoRateLimitHints,
    RateLimitRemainingRises,
    IgnoreIdempotencyKey,
    IdempotencyIgnoresBody,
    IdempotencyCrossTenant,
    DoubleChargeOnStart,
    Start5xxWhenRunning,
    StatusMovesBackwards,
    ProgressGoesDown,
    JobNeverFinishes,
    PaymentRequiredCreatesJob,
    AutoStartIgnored,
    SlowStatusRead,
    CreateReplyBadStatus,
    ReadCharges,
}

impl Fault {
    /// Every fault, in declaration order.
    pub const ALL: &'static [Fault] = &[
        Fault::AcceptMissingKey,
        Fault::AcceptInvalidKey,
        Fault::AuthWrongCode,
        Fault::Auth403,
        Fault::AuthPlainError,
        Fault::ListRejectsValidKey,
        Fault::CrossTenant403,
        Fault::CrossTenantLeak,
        Fault::EchoKey,
        Fault::JobWrongContentType,
        Fault::JobProgressAsString,
        Fault::JobBadCreatedAt,
        Fault::JobIdMismatch,
        Fault::CompletedWithoutOutput,
        Fault::FailedWithoutError,
        Fault::ListBadShape,
        Fault::NotFound500,
        Fault::NotFoundPlain,
        Fault::MalformedId500,
        Fault::NoRequestIdInBody,
        Fault::NoRequestIdHeader,
        Fault::ReusedRequestId,
        Fault::RequestIdMismatch,
        Fault::NoRequestLog,
        Fault::NoRateLimit,
        Fault::Burst5xx,
        Fault::RateLimitNeverRecovers,
        Fault::RetryAfterInPast,
        Fault::NoRateLimitHints,
        Fault::RateLimitRemainingRises,
        Fault::IgnoreIdempotencyKey,
        Fault::IdempotencyIgnoresBody,
        Fault::IdempotencyCrossTenant,
        Fault::DoubleChargeOnStart,
        Fault::Start5xxWhenRunning,
        Fault::StatusMovesBackwards,
        Fault::ProgressGoesDown,
        Fault::JobNeverFinishes,
        Fault::PaymentRequiredCreatesJob,
        Fault::AutoStartIgnored,
        Fault::SlowStatusRead,
        Fault::CreateReplyBadStatus,
        Fault::ReadCharges,
    ];

    /// The kebab-case name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Fault::AcceptMissingKey => "accept-missing-key",
            Fault::AcceptInvalidKey => "accept-invalid-key",
            Fault::AuthWrongCode => "auth-wrong-code",
            Fault::Auth403 => "auth-403",
            Fault::AuthPlainError => "auth-plain-error",
            Fault::ListRejectsValidKey => "list-rejects-valid-key",
            Fault::CrossTenant403 => "cross-tenant-403",
            Fault::CrossTenantLeak => "cross-tenant-leak",
            Fault::EchoKey => "echo-key",
            Fault::JobWrongContentType => "job-wrong-content-type",
            Fault::JobProgressAsString => "job-progress-as-string",
            Fault::JobBadCreatedAt => "job-bad-created-at",
            Fault::JobIdMismatch => "job-id-mismatch",
            Fault::CompletedWithoutOutput => "completed-without-output",
            Fault::FailedWithoutError => "failed-without-error",
            Fault::ListBadShape => "list-bad-shape",
            Fault::NotFound500 => "not-found-500",
            Fault::NotFoundPlain => "not-found-plain",
            Fault::MalformedId500 => "malformed-id-500",
            Fault::NoRequestIdInBody => "no-request-id-in-body",
            Fault::NoRequestIdHeader => "no-request-id-header",
            Fault::ReusedRequestId => "reused-request-id",
            Fault::RequestIdMismatch => "request-id-mismatch",
            Fault::NoRequestLog => "no-request-log",
            Fault::NoRateLimit => "no-rate-limit",
            Fault::Burst5xx => "burst-5xx",
            Fault::RateLimitNeverRecovers => "rate-limit-never-recovers",
            Fault::RetryAfterInPast => "retry-after-in-past",
            Fault::NoRateLimitHints => "no-rate-limit-hints",
            Fault::RateLimitRemainingRises => "rate-limit-remaining-rises",
            Fault::IgnoreIdempotencyKey => "ignore-idempotency-key",
            Fault::IdempotencyIgnoresBody => "idempotency-ignores-body",
            Fault::IdempotencyCrossTenant => "idempotency-cross-tenant",
            Fault::DoubleChargeOnStart => "double-charge-on-start",
            Fault::Start5xxWhenRunning => "start-5xx-when-running",
            Fault::StatusMovesBackwards => "status-moves-backwards",
            Fault::ProgressGoesDown => "progress-goes-down",
            Fault::JobNeverFinishes => "job-never-finishes",
            Fault::PaymentRequiredCreatesJob => "payment-required-creates-job",
            Fault::AutoStartIgnored => "auto-start-ignored",
            Fault::SlowStatusRead => "slow-status-read",
            Fault::CreateReplyBadStatus => "create-reply-bad-status",
            Fault::ReadCharges => "read-charges",
        }
    }

    /// One line: what the fault does and which contract rule it breaks.
    pub fn description(self) -> &'static str {
        match self {
            Fault::AcceptMissingKey => {
                "a missing or empty X-Api-Key is served as the primary tenant (breaks: missing key is 401 missing_api_key)"
            }
            Fault::AcceptInvalidKey => {
                "an unknown X-Api-Key is served as the primary tenant (breaks: invalid key is 401 invalid_api_key)"
            }
            Fault::AuthWrongCode => {
                "401s carry error code \"unauthorized\" (breaks: codes missing_api_key / invalid_api_key)"
            }
            Fault::Auth403 => {
                "an unknown key gets 403 instead of 401 (breaks: invalid key is 401)"
            }
            Fault::AuthPlainError => {
                "401 bodies are {\"message\":\"Unauthorized\"} without the envelope (breaks: error envelope on every non-2xx)"
            }
            Fault::ListRejectsValidKey => {
                "GET /v1/jobs answers 401 invalid_api_key even to a valid key (breaks: a valid key gets 200)"
            }
            Fault::CrossTenant403 => {
                "another tenant's job answers 403 forbidden (breaks: a job of another key is 404 \"Job not found\")"
            }
            Fault::CrossTenantLeak => {
                "another tenant's job is served 200 (breaks: a job of another key is 404, tenant isolation)"
            }
            Fault::EchoKey => {
                "every /v1 response carries X-Debug-Api-Key with the submitted key (breaks: the key never leaves the client)"
            }
            Fault::JobWrongContentType => {
                "GET /v1/jobs/{id} success is served as text/plain (breaks: bodies are application/json)"
            }
            Fault::JobProgressAsString => {
                "job progress is serialized as a string (breaks: progress is a number)"
            }
            Fault::JobBadCreatedAt => {
                "created_at looks like \"27/11/2026 12:00:00\" (breaks: created_at is RFC 3339 UTC)"
            }
            Fault::JobIdMismatch => {
                "GET /v1/jobs/{id} answers id + \"-x\" (breaks: id equals the job_id in the path)"
            }
            Fault::CompletedWithoutOutput => {
                "completed jobs have output_url null (breaks: completed means output_url set)"
            }
            Fault::FailedWithoutError => {
                "failed jobs have error null (breaks: failed means error set)"
            }
            Fault::ListBadShape => {
                "GET /v1/jobs answers {\"items\": [...]} without \"jobs\" (breaks: the list shape)"
            }
            Fault::NotFound500 => {
                "an unknown job id answers 500 internal_error (breaks: unknown job is 404)"
            }
            Fault::NotFoundPlain => {
                "an unknown job answers 404 {\"detail\":\"Job not found\"} (breaks: error envelope on every non-2xx)"
            }
            Fault::MalformedId500 => {
                "job ids over 64 chars or outside [A-Za-z0-9_-] answer 500 (breaks: never 5xx on odd input, unknown job is 404)"
            }
            Fault::NoRequestIdInBody => {
                "error bodies omit error.request_id (breaks: request_id in every error body)"
            }
            Fault::NoRequestIdHeader => {
                "no X-Request-Id header on any response (breaks: SHOULD carry a request id header)"
            }
            Fault::ReusedRequestId => {
                "every response carries the same request id (breaks: ids are unique per response)"
            }
            Fault::RequestIdMismatch => {
                "on errors the X-Request-Id header differs from error.request_id (breaks: header and body carry the same id)"
            }
            Fault::NoRequestLog => {
                "the request log file receives nothing (breaks: request and job ids can be found in the logs)"
            }
            Fault::NoRateLimit => {
                "the rate limit is never enforced (breaks: a burst over the limit gets 429)"
            }
            Fault::Burst5xx => {
                "an exhausted bucket answers 503 internal_error instead of 429 (breaks: a burst gets 429 rate_limited)"
            }
            Fault::RateLimitNeverRecovers => {
                "once limited, GET /v1/jobs/{id} answers 429 forever for that key (breaks: the client backs off and then succeeds)"
            }
            Fault::RetryAfterInPast => {
                "Retry-After is an HTTP-date one hour in the past (breaks: SHOULD give a usable Retry-After)"
            }
            Fault::NoRateLimitHints => {
                "not a violation: 429 with no Retry-After and no RateLimit headers (a conforming variant that exercises the documented no-hint backoff schedule)"
            }
            Fault::RateLimitRemainingRises => {
                "remaining counters rise by one on every response while limited (breaks: SHOULD give truthful RateLimit headers)"
            }
            Fault::IgnoreIdempotencyKey => {
                "the Idempotency-Key header is ignored, retries create duplicates (breaks: same key and body has no second side effect)"
            }
            Fault::IdempotencyIgnoresBody => {
                "same Idempotency-Key with another body replays the original (breaks: same key with another body is 422)"
            }
            Fault::IdempotencyCrossTenant => {
                "the idempotency store is shared across tenants, another key replays the first tenant's job (breaks: tenant isolation)"
            }
            Fault::DoubleChargeOnStart => {
                "start on a job already started charges again (breaks: starting a job twice never charges twice)"
            }
            Fault::Start5xxWhenRunning => {
                "start on a job that is not pending answers 500 (breaks: never 5xx on a retried start)"
            }
            Fault::StatusMovesBackwards => {
                "a completed job reads as processing on every third read (breaks: completed is terminal)"
            }
            Fault::ProgressGoesDown => {
                "progress alternates high and low while processing (breaks: progress never goes down)"
            }
            Fault::JobNeverFinishes => {
                "jobs stay processing at progress 99 forever (breaks: a job reaches a terminal state in finite time)"
            }
            Fault::PaymentRequiredCreatesJob => {
                "402 is answered but the job is created and listed (breaks: a refused job leaves nothing behind)"
            }
            Fault::AutoStartIgnored => {
                "auto_start false still starts processing (breaks: auto_start false leaves the job pending)"
            }
            Fault::SlowStatusRead => {
                "GET /v1/jobs/{id} sleeps 2.5 s before answering (breaks: reads answer promptly, timeouts)"
            }
            Fault::CreateReplyBadStatus => {
                "the create reply says status \"queued\" (breaks: a new job is pending, created or processing)"
            }
            Fault::ReadCharges => {
                "every GET /v1/jobs/{id} charges the job again (breaks: reads change no charge)"
            }
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of [`Fault::from_str`]: the name is not a known fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault `{name}`; valid faults: {}", valid_names())]
pub struct UnknownFault {
    /// The name that was given.
    pub name: String,
}

fn valid_names() -> String {
    Fault::ALL
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for Fault {
    type Err = UnknownFault;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Fault::ALL
            .iter()
            .copied()
            .find(|f| f.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownFault { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = HashSet::new();
        for &fault in Fault::ALL {
            assert!(seen.insert(fault.name()), "duplicate name {fault}");
            assert_eq!(fault.name().parse::<Fault>(), Ok(fault));
            assert_eq!(fault.to_string(), fault.name());
            assert!(!fault.description().is_empty());
            assert!(!fault.description().contains('\n'));
        }
        assert_eq!(seen.len(), Fault::ALL.len());
    }

    #[test]
    fn unknown_name_lists_valid_ones() {
        let err = "no-such-fault".parse::<Fault>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("no-such-fault"));
        assert!(msg.contains("accept-missing-key"));
        assert!(msg.contains("slow-status-read"));
    }
}
