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

use std::fmt;
use std::str::FromStr;

/// Declares [`Variant`] and its one table of names and descriptions together,
/// so that a variant cannot exist without its name and description.
macro_rules! variants {
    ($($variant:ident => $name:literal, $description:literal;)+) => {
        /// One conforming alternative behaviour; see [`Variant::description`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Variant {
            $(#[doc = $description] $variant,)+
        }

        /// Every variant with its command-line name and one-line description.
        const VARIANTS: &[(Variant, &str, &str)] = &[
            $((Variant::$variant, $name, $description),)+
        ];
    };
}

variants! {
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
}

/// Number of variants.
const COUNT: usize = VARIANTS.len();

impl Variant {
    /// Every variant, in declaration order.
    pub const ALL: &'static [Variant] = &{
        let mut all = [VARIANTS[0].0; COUNT];
        let mut i = 0;
        while i < COUNT {
            all[i] = VARIANTS[i].0;
            i += 1;
        }
        all
    };

    fn entry(self) -> &'static (Variant, &'static str, &'static str) {
        // The table is built from the enum by `variants!`, so every variant is in it.
        &VARIANTS[self as usize]
    }

    /// The kebab-case name used on the command line.
    pub fn name(self) -> &'static str {
        self.entry().1
    }

    /// One line: what the variant changes.
    pub fn description(self) -> &'static str {
        self.entry().2
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of [`Variant::from_str`]: the name is not a known variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown variant `{name}`; valid variants: {}", valid_names())]
pub struct UnknownVariant {
    /// The name that was given.
    pub name: String,
}

fn valid_names() -> String {
    Variant::ALL
        .iter()
        .map(|v| v.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for Variant {
    type Err = UnknownVariant;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Variant::ALL
            .iter()
            .copied()
            .find(|v| v.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownVariant { name: s.to_owned() })
    }
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
        assert_eq!(seen.len(), 11);
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
