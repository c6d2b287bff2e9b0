//! Deliberate contract violations the reference server can be told to commit.
//!
//! The harness proves that each of its checks can fail by running the reference
//! server with one [`Fault`] switched on (`--fault NAME`). Every fault breaks
//! exactly one rule of `docs/contract.md` (one is a conforming variant, see
//! [`Fault::NoRateLimitHints`]) and leaves everything else intact.

use super::named::named_switches;

named_switches! {
    /// One deliberate deviation from the contract; see [`Fault::description`].
    Fault, UnknownFault, "fault";
    AcceptMissingKey => "accept-missing-key",
        "a missing or empty X-Api-Key is served as the primary tenant (breaks: missing key is 401 missing_api_key)";
    AcceptInvalidKey => "accept-invalid-key",
        "an unknown X-Api-Key is served as the primary tenant (breaks: invalid key is 401 invalid_api_key)";
    AuthWrongCode => "auth-wrong-code",
        "401s carry error code \"unauthorized\" (breaks: codes missing_api_key / invalid_api_key)";
    Auth403 => "auth-403",
        "an unknown key gets 403 instead of 401 (breaks: invalid key is 401)";
    AuthPlainError => "auth-plain-error",
        "401 bodies are {\"message\":\"Unauthorized\"} without the envelope (breaks: error envelope on every non-2xx)";
    ListRejectsValidKey => "list-rejects-valid-key",
        "GET /v1/jobs answers 401 invalid_api_key even to a valid key (breaks: a valid key gets 200)";
    CrossTenant403 => "cross-tenant-403",
        "another tenant's job answers 403 forbidden (breaks: a job of another key is 404 \"Job not found\")";
    CrossTenantLeak => "cross-tenant-leak",
        "another tenant's job is served 200 (breaks: a job of another key is 404, tenant isolation)";
    EchoKey => "echo-key",
        "every /v1 response carries X-Debug-Api-Key with the submitted key (breaks: the key never leaves the client)";
    JobWrongContentType => "job-wrong-content-type",
        "GET /v1/jobs/{id} success is served as text/plain (breaks: bodies are application/json)";
    JobProgressAsString => "job-progress-as-string",
        "job progress is serialized as a string (breaks: progress is a number)";
    JobBadCreatedAt => "job-bad-created-at",
        "created_at looks like \"27/11/2026 12:00:00\" (breaks: created_at is RFC 3339 UTC)";
    JobIdMismatch => "job-id-mismatch",
        "GET /v1/jobs/{id} answers id + \"-x\" (breaks: id equals the job_id in the path)";
    CompletedWithoutOutput => "completed-without-output",
        "completed jobs have output_url null (breaks: completed means output_url set)";
    FailedWithoutError => "failed-without-error",
        "failed jobs have error null (breaks: failed means error set)";
    ListBadShape => "list-bad-shape",
        "GET /v1/jobs answers {\"items\": [...]} without \"jobs\" (breaks: the list shape)";
    NotFound500 => "not-found-500",
        "an unknown job id answers 500 internal_error (breaks: unknown job is 404)";
    NotFoundPlain => "not-found-plain",
        "an unknown job answers 404 {\"detail\":\"Job not found\"} (breaks: error envelope on every non-2xx)";
    MalformedId500 => "malformed-id-500",
        "job ids over 64 chars or outside [A-Za-z0-9_-] answer 500 (breaks: never 5xx on odd input, unknown job is 404)";
    NoRequestIdInBody => "no-request-id-in-body",
        "error bodies omit error.request_id (breaks: request_id in every error body)";
    NoRequestIdHeader => "no-request-id-header",
        "no X-Request-Id header on any response (breaks: SHOULD carry a request id header)";
    ReusedRequestId => "reused-request-id",
        "every response carries the same request id (breaks: ids are unique per response)";
    RequestIdMismatch => "request-id-mismatch",
        "on errors the X-Request-Id header differs from error.request_id (breaks: header and body carry the same id)";
    NoRequestLog => "no-request-log",
        "the request log file receives nothing (breaks: request and job ids can be found in the logs)";
    NoRateLimit => "no-rate-limit",
        "the rate limit is never enforced (breaks: a burst over the limit gets 429)";
    Burst5xx => "burst-5xx",
        "an exhausted bucket answers 503 internal_error instead of 429 (breaks: a burst gets 429 rate_limited)";
    RateLimitNeverRecovers => "rate-limit-never-recovers",
        "once limited, GET /v1/jobs/{id} answers 429 forever for that key (breaks: the client backs off and then succeeds)";
    RetryAfterInPast => "retry-after-in-past",
        "Retry-After is an HTTP-date one hour in the past (breaks: SHOULD give a usable Retry-After)";
    NoRateLimitHints => "no-rate-limit-hints",
        "not a violation: 429 with no Retry-After and no RateLimit headers (a conforming variant that exercises the documented no-hint backoff schedule)";
    RateLimitRemainingRises => "rate-limit-remaining-rises",
        "remaining counters rise by one on every response while limited (breaks: SHOULD give truthful RateLimit headers)";
    IgnoreIdempotencyKey => "ignore-idempotency-key",
        "the Idempotency-Key header is ignored, retries create duplicates (breaks: same key and body has no second side effect)";
    IdempotencyIgnoresBody => "idempotency-ignores-body",
        "same Idempotency-Key with another body replays the original (breaks: same key with another body is 422)";
    IdempotencyCrossTenant => "idempotency-cross-tenant",
        "the idempotency store is shared across tenants, another key replays the first tenant's job (breaks: tenant isolation)";
    DoubleChargeOnStart => "double-charge-on-start",
        "start on a job already started charges again (breaks: starting a job twice never charges twice)";
    Start5xxWhenRunning => "start-5xx-when-running",
        "start on a job that is not pending answers 500 (breaks: never 5xx on a retried start)";
    StatusMovesBackwards => "status-moves-backwards",
        "a completed job reads as processing on every third read (breaks: completed is terminal)";
    ProgressGoesDown => "progress-goes-down",
        "progress alternates high and low while processing, and a job reads as processing until two reads have seen it so (breaks: progress never goes down)";
    JobNeverFinishes => "job-never-finishes",
        "jobs stay processing at progress 99 forever (breaks: a job reaches a terminal state in finite time)";
    PaymentRequiredCreatesJob => "payment-required-creates-job",
        "402 is answered but the job is created and listed (breaks: a refused job leaves nothing behind)";
    AutoStartIgnored => "auto-start-ignored",
        "auto_start false still starts processing (breaks: auto_start false leaves the job pending)";
    SlowStatusRead => "slow-status-read",
        "GET /v1/jobs/{id} sleeps 2.5 s before answering (breaks: reads answer promptly, timeouts)";
    CreateReplyBadStatus => "create-reply-bad-status",
        "the create reply says status \"queued\" (breaks: a new job is pending, created or processing)";
    ReadCharges => "read-charges",
        "every GET /v1/jobs/{id} charges the job again (breaks: reads change no charge)";
    UploadUrl404 => "upload-url-404",
        "the video_url of an upload answers 404 (breaks: video_url serves the uploaded bytes)";
    UploadAnyType => "upload-any-type",
        "an upload of any type (a .txt as text/plain) is accepted (breaks: another type is 400)";
    UploadTypeFromPartOnly => "upload-type-from-part-only",
        "an upload part without a Content-Type is refused, its file name is never asked (breaks: the type comes from the extension then)";
    UploadBadReply => "upload-bad-reply",
        "the upload reply gives size as a string (breaks: the reply's size is a number)";
    UploadNoSizeLimit => "upload-no-size-limit",
        "uploads over the size limit are accepted (breaks: a file over the limit is 400)";
    NoVersionHeader => "no-version-header",
        "responses carry no version header (flat dialect: breaks X-Api-Version on every response; the standard dialect has none to drop)";
    UploadRefused => "upload-refused",
        "every upload is refused 415 unsupported_media_type, whatever its type (breaks: a video upload is accepted)";
    HealthNeedsKey => "health-needs-key",
        "GET /health without a key answers 401 missing_api_key (breaks: /health needs no key)";
    HealthBadShape => "health-bad-shape",
        "GET /health answers {\"status\": \"ok\"} without checks (breaks: status is healthy or degraded, with checks.*)";
    PricingWrongRate => "pricing-wrong-rate",
        "GET /api/pricing publishes pro at 120 credits per minute (breaks: the rates of section 4)";
    ChargeIgnoresDuration => "charge-ignores-duration",
        "every job is charged one minute at its model's rate, whatever the video's length (breaks: credits per minute of video)";
    DownloadBeforeCompletion200 => "download-before-completion-200",
        "GET /api/download/{id} of a job not completed answers 200 with download_url null (breaks: 400 \"Job not completed\")";
    DownloadUrl404 => "download-url-404",
        "the download_url of a completed job answers 404 (breaks: the download URL is fetchable)";
    UsageDays500 => "usage-days-500",
        "GET /v1/usage/summary with days out of 1..90 answers 500 internal_error (breaks: out-of-range values are 400 or clamped, never 5xx)";
    UsageBadShape => "usage-bad-shape",
        "GET /v1/usage/summary answers a bare array of days instead of an object (breaks: the summary is an object of totals and days)";
    UsageNoJobEvent => "usage-no-job-event",
        "usage events carry job_id null (breaks: a charged job's usage event names it)";
    InvalidRequest500 => "invalid-request-500",
        "a create whose body is not JSON answers 500 internal_error (breaks: invalid input is 400 or 422 invalid_request, never 5xx)";
    InvalidRequestProblemJson => "invalid-request-problem-json",
        "invalid creates answer 400 application/problem+json {type, title, status, detail} without the envelope (breaks: error envelope on every non-2xx)";
    WebhookBadSignature => "webhook-bad-signature",
        "X-Webhook-Signature is the HMAC of the body alone, without \"<timestamp>.\" (breaks: the signature verifies over \"<timestamp>.<raw body>\")";
    WebhookMissingStarted => "webhook-missing-started",
        "job.started is never delivered, only the terminal event (breaks: job.started, then job.completed or job.failed)";
    WebhookOutOfOrder => "webhook-out-of-order",
        "the terminal event is delivered first and job.started after it (breaks: job.started comes before the terminal event)";
    WebhookStaleTimestamp => "webhook-stale-timestamp",
        "X-Webhook-Timestamp is one hour before the delivery, signed as such (breaks: the timestamp is fresh)";
    WebhookReusedDeliveryId => "webhook-reused-delivery-id",
        "every delivery of a job carries the same X-Webhook-Delivery-Id (breaks: delivery ids are unique per delivery)";
    WebhookNoRetry => "webhook-no-retry",
        "a delivery answered with a non-2xx or not answered is never retried (breaks: SHOULD retry with the same delivery id)";
    WebhookWrongEventHeader => "webhook-wrong-event-header",
        "X-Webhook-Event is always job.started, whatever the body's event (breaks: the event header matches the body)";
    WebhookJobNotNamed => "webhook-job-not-named",
        "the webhook body's job has no id (breaks: the body names the job)";
    WebhookNotRecorded => "webhook-not-recorded",
        "deliveries are never recorded: webhook_events stays empty (breaks: webhook_events records each delivery as sent or failed)";
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
