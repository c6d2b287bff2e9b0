//! Conforming alternatives the reference server can be told to take.
//!
//! Wherever `CONTRACT.md` leaves freedom (a header form, a status code, the
//! pre-processing state's name, the list's shape...) the reference server makes
//! one choice. A [`Variant`] (`--variant NAME`) switches it to another
//! legitimate choice, so the harness is proved against every reading it must
//! accept. Unlike a [`super::Fault`], a variant never breaks the contract.
//!
//! Several variants can be on at once. The two that pick a rate-limit header
//! form ([`Variant::IetfRatelimit`], [`Variant::XRatelimitEpoch`]) each replace
//! the default set of headers; when both are on, both forms are sent.

use super::named::named_switches;

named_switches! {
    /// One conforming alternative behaviour; see [`Variant::description`].
    Variant, UnknownVariant, "variant";
    RetryAfterDate => "retry-after-date",
        "429 Retry-After is an HTTP-date, the retry instant rounded up to the next whole second";
    IetfRatelimit => "ietf-ratelimit",
        "rate-limit headers only in the IETF draft's form: RateLimit-Policy \"default\";q=;w= and RateLimit \"default\";r=;t=";
    XRatelimitEpoch => "x-ratelimit-epoch",
        "rate-limit headers only as X-RateLimit-Limit/-Remaining/-Reset, with Reset a Unix epoch in seconds";
    CreatedState => "created-state",
        "the pre-processing state is named \"created\"; GET /v1/jobs?status=pending is 400 invalid_request";
    Create201 => "create-201",
        "POST /v1/jobs answers 201 with Location: /v1/jobs/{id}; the first POST /v1/jobs/{id}/start answers 202";
    OffsetTimestamps => "offset-timestamps",
        "created_at is written with milliseconds and a +00:00 offset (2026-12-02T03:04:05.123+00:00)";
    IntegerProgress => "integer-progress",
        "progress stays 0 for the first 20% of processing, then rises in whole numbers to 100 at completion";
    BareArrayList => "bare-array-list",
        "GET /v1/jobs answers a bare JSON array of job objects instead of {\"jobs\": [...], \"total\", ...}";
    SlidingWindow => "sliding-window",
        "the per-key limit is a sliding window of 8 requests per second instead of the token bucket (--rate-limit and --rate-refill no longer apply)";
    ExtraFields => "extra-fields",
        "the job object carries undocumented fields: queue_position, region and a nested meta object";
    EchoRequestId => "echo-request-id",
        "a client's X-Request-Id (1-128 visible ASCII chars) is used as the response's request id";
    WebhookDataJob => "webhook-data-job",
        "webhook bodies carry the job object at data.job instead of at data";
    WebhookEventsMap => "webhook-events-map",
        "webhook_events is an object keyed by event ({\"job.started\": \"sent\"}) instead of a list of deliveries";
    WebhookIsoTimestamp => "webhook-iso-timestamp",
        "X-Webhook-Timestamp is an RFC 3339 date-time (2026-12-02T03:04:05Z) instead of Unix seconds, and is signed as such";
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = HashSet::new();
        for (i, &variant) in Variant::ALL.iter().enumerate() {
            assert_eq!(variant as usize, i, "table order is declaration order");
            assert!(seen.insert(variant.name()), "duplicate name {variant}");
            assert_eq!(variant.name().parse::<Variant>(), Ok(variant));
            assert_eq!(variant.to_string(), variant.name());
            assert!(variant
                .name()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
            assert!(!variant.description().is_empty());
            assert!(!variant.description().contains('\n'));
        }
        assert_eq!(seen.len(), 14);
        assert_eq!(
            " Created-State ".parse::<Variant>(),
            Ok(Variant::CreatedState)
        );
    }

    #[test]
    fn unknown_name_lists_valid_ones() {
        let msg = "no-such-variant"
            .parse::<Variant>()
            .unwrap_err()
            .to_string();
        assert!(msg.contains("no-such-variant"));
        assert!(msg.contains("retry-after-date"));
        assert!(msg.contains("echo-request-id"));
    }
}
