//! What a server says about rate limiting, read from response headers.
//!
//! The harness needs these hints twice: to back off politely when it is throttled (so a 429
//! never turns into a failed run), and to *verify* rate limiting (docs/contract.md 5.2): a burst
//! over the limit gets 429, the response says how long to wait, the advertised numbers are
//! consistent, and the client recovers after the hinted wait. Servers speak several dialects:
//!
//! - `Retry-After` (RFC 9110): delta-seconds or an HTTP-date. It wins over any RateLimit header.
//! - `X-RateLimit-Limit/-Remaining/-Reset`, the de-facto form, whose Reset may be delta seconds,
//!   an epoch in seconds or an epoch in milliseconds.
//! - `RateLimit-Limit/-Remaining/-Reset` (older IETF drafts), with an optional policy suffix
//!   (`RateLimit-Limit: 100, 100;w=60`) and an optional `RateLimit-Policy: 100;w=60`.
//! - The IETF draft's structured fields `RateLimit-Policy: "burst";q=100;w=60` and
//!   `RateLimit: "burst";r=50;t=30` (and draft-07's `RateLimit: limit=100, remaining=50, reset=30`).
//!
//! Header values come from the server under test and are treated as hostile: nothing here
//! panics, every number saturates instead of overflowing, and the work is linear in the input
//! with fixed caps on how many headers, list members and parameters are looked at.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// At most this many (name, value) pairs are examined by [`parse_rate_limit`].
const MAX_HEADERS: usize = 1024;
/// At most this many list members are kept per header name (across repeated headers).
const MAX_MEMBERS: usize = 64;
/// At most this many distinct parameters are kept per list member.
const MAX_PARAMS: usize = 32;
/// An `X-RateLimit-Reset` at or above this is an epoch in seconds (2001-09-09), not a delta.
const EPOCH_SECONDS_FROM: u64 = 1_000_000_000;
/// An `X-RateLimit-Reset` at or above this is an epoch in milliseconds.
const EPOCH_MILLIS_FROM: u64 = 1_000_000_000_000;
/// No HTTP-date is longer than this (IMF-fixdate is 29 bytes, RFC 850 at most 33).
const MAX_DATE_LEN: usize = 64;

/// What a Retry-After header said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryAfter {
    /// delta-seconds (saturated at `u64::MAX`).
    Seconds(u64),
    /// An HTTP-date.
    Date(SystemTime),
}

/// Parse RFC 9110 Retry-After: delta-seconds (1*DIGIT, surrounding whitespace allowed, huge
/// values saturate) or an HTTP-date (IMF-fixdate, and the obsolete RFC 850 and asctime forms
/// httpdate accepts). None for anything else (negative, fractional, empty, garbage).
pub fn parse_retry_after(value: &str) -> Option<RetryAfter> {
    let v = trim(value);
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(RetryAfter::Seconds(saturating_digits(v.as_bytes())));
    }
    parse_date(v).map(RetryAfter::Date)
}

impl RetryAfter {
    /// The wait this asks for, measured from `now`; a date in the past gives Duration::ZERO.
    pub fn wait_from(&self, now: SystemTime) -> Duration {
        match self {
            RetryAfter::Seconds(s) => Duration::from_secs(*s),
            RetryAfter::Date(d) => d.duration_since(now).unwrap_or(Duration::ZERO),
        }
    }

    /// True when it is a date already past when the response arrived (a finding).
    ///
    /// An HTTP-date has one-second resolution, so a server that means "in a moment" may send
    /// the current second: the date is judged against the response's own `Date` header when
    /// it has one, else against the arrival time cut to whole seconds, never against the
    /// clock after the hint has been waited out.
    pub fn is_in_past(&self, received_at: SystemTime, date_header: Option<&str>) -> bool {
        let RetryAfter::Date(hint) = self else {
            return false;
        };
        let reference = date_header
            .and_then(parse_date)
            .unwrap_or_else(|| whole_seconds(received_at));
        *hint < reference
    }
}

/// `time` cut down to a whole second, the resolution of an HTTP-date.
fn whole_seconds(time: SystemTime) -> SystemTime {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    UNIX_EPOCH + Duration::from_secs(since.as_secs())
}

/// How long to wait after a 429 and why, as [`backoff_after_429`] decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    pub wait: Duration,
    /// In words, for notes and progress lines: the hint followed, or why the schedule was.
    pub reason: String,
    /// The hint asked for more than the cap and was cut to it.
    pub capped_from: Option<Duration>,
    /// The response gave a hint that could not be used (unparsable, zero, in the past).
    pub unusable_hint: bool,
}

/// The wait after a 429 whose `Retry-After` header is `retry_after`, received at
/// `received_at`; `attempt` counts earlier waits for the same request (0 first).
///
/// A usable hint is followed, measured from when the response arrived, and cut to `cap`.
/// No hint, or an unusable one (unparsable, `0`, a date already past), is no hint: the
/// documented schedule applies (1-2 s, 2-4 s, 4-8 s, then 8-16 s, by `jitter` in [0,1)),
/// so a broken hint can never make the client retry at once.
pub fn backoff_after_429(
    retry_after: Option<&str>,
    received_at: SystemTime,
    now: SystemTime,
    attempt: u32,
    jitter: f64,
    cap: Duration,
) -> Backoff {
    let step = attempt.min(3) + 1;
    let scheduled = |why: String, unusable_hint: bool| Backoff {
        wait: documented_backoff(attempt, jitter).min(cap),
        reason: format!("{why}: documented backoff step {step}"),
        capped_from: None,
        unusable_hint,
    };
    let Some(value) = retry_after else {
        return scheduled("no Retry-After".into(), false);
    };
    let shown = value.trim().chars().take(64).collect::<String>();
    let Some(hint) = parse_retry_after(value) else {
        return scheduled(
            format!("Retry-After \"{shown}\" is neither seconds nor an HTTP-date"),
            true,
        );
    };
    let wanted = hint.wait_from(received_at);
    if wanted.is_zero() {
        return scheduled(
            format!("Retry-After \"{shown}\" asks for no wait (0 or a time already past)"),
            true,
        );
    }
    // Time already spent since the response arrived counts towards the hinted wait.
    let spent = now.duration_since(received_at).unwrap_or(Duration::ZERO);
    Backoff {
        wait: wanted.min(cap).saturating_sub(spent),
        reason: format!("Retry-After: {shown}"),
        capped_from: (wanted > cap).then_some(wanted),
        unusable_hint: false,
    }
}

/// Which generation of rate-limit headers a response used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitForm {
    /// `X-RateLimit-Limit/-Remaining/-Reset` (also `X-Rate-Limit-*`).
    XRateLimit,
    /// `RateLimit-Limit/-Remaining/-Reset` (older IETF drafts).
    RateLimitFields,
    /// `RateLimit` + `RateLimit-Policy` structured fields (current IETF draft).
    IetfStructured,
}

/// The rate-limit state a response advertised, whatever the form.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitInfo {
    /// The header generation the values were read from.
    pub form: RateLimitForm,
    /// Requests allowed per window (quota).
    pub limit: Option<u64>,
    /// Requests left in the current window.
    pub remaining: Option<u64>,
    /// Time until the quota resets, measured from the `now` given to the parser.
    pub reset: Option<Duration>,
    /// Length of the policy window.
    pub window: Option<Duration>,
}

/// Read the rate-limit headers from (name, value) pairs (names case-insensitive). Recognises:
/// - `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (and the `X-Rate-Limit-*`
///   spelling) — Reset may be delta seconds, an epoch in seconds (>= 10^9), or an epoch in
///   milliseconds (>= 10^12), fractional allowed ("1.5"), or an HTTP-date; an epoch or date in
///   the past gives a zero reset.
/// - `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (older IETF drafts; Reset is
///   delta seconds). `RateLimit-Limit: 100, 100;w=60` gives limit 100 and window 60 s; an
///   old-style `RateLimit-Policy: 100;w=60` (numeric item) also feeds limit and window.
/// - IETF draft structured fields: `RateLimit-Policy: "burst";q=100;w=60` (q -> limit,
///   w -> window) and `RateLimit: "burst";r=50;t=30` (r -> remaining, t -> reset). The first
///   named item is used, or the first `RateLimit` item whose name matches a policy; parameters
///   in any order, unknown ones ignored, names tokens or quoted strings. Draft-07's
///   `RateLimit: limit=100, remaining=50, reset=30` is read too.
///
/// Repeated headers are read in order: list fields are joined, single-value fields take the
/// first value that parses. When several forms are present, the first form that yields any
/// field wins, in the order IetfStructured, RateLimitFields, XRateLimit. None when no form is
/// present or no field parsed. Only the first 1024 pairs are examined.
pub fn parse_rate_limit<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    now: SystemTime,
) -> Option<RateLimitInfo> {
    let mut x = Fields::default();
    let mut x_limit: Vec<Member> = Vec::new();
    let mut f = Fields::default();
    let mut f_limit: Vec<Member> = Vec::new();
    let mut policy: Vec<Member> = Vec::new();
    let mut state: Vec<Member> = Vec::new();

    for (name, value) in headers.into_iter().take(MAX_HEADERS) {
        let Some(h) = classify(name) else { continue };
        match h {
            Header::XLimit => parse_list(value, &mut x_limit),
            Header::XRemaining => x.remaining = x.remaining.or_else(|| leading_count(value)),
            Header::XReset => x.reset = x.reset.or_else(|| parse_x_reset(value, now)),
            Header::Limit => parse_list(value, &mut f_limit),
            Header::Remaining => f.remaining = f.remaining.or_else(|| leading_count(value)),
            Header::Reset => f.reset = f.reset.or_else(|| parse_delta(value)),
            Header::Policy => parse_list(value, &mut policy),
            Header::State => parse_list(value, &mut state),
        }
    }

    // Old-draft `RateLimit-Policy: 100;w=60` items: numeric names, no `=` value.
    let legacy: Vec<Member> = policy
        .iter()
        .filter(|m| m.value.is_none() && m.name.count().is_some())
        .cloned()
        .collect();

    let structured = structured_fields(&policy, &state).filled_from(&legacy, false);
    if let Some(info) = structured.into_info(RateLimitForm::IetfStructured) {
        return Some(info);
    }

    let (limit, window) = limit_and_window(&f_limit);
    f.limit = limit;
    f.window = window;
    if let Some(info) = f
        .filled_from(&legacy, true)
        .into_info(RateLimitForm::RateLimitFields)
    {
        return Some(info);
    }

    let (limit, window) = limit_and_window(&x_limit);
    x.limit = limit;
    x.window = window;
    x.into_info(RateLimitForm::XRateLimit)
}

/// The documented client backoff schedule when there is no hint (docs/contract.md 5.2): attempt 0
/// waits 1-2 s, 1: 2-4 s, 2: 4-8 s, then 8-16 s; `jitter` in [0,1) picks the point in the
/// range (values outside are clamped to [0,1], NaN counts as 0).
pub fn documented_backoff(attempt: u32, jitter: f64) -> Duration {
    let base_ns: u64 = (1u64 << attempt.min(3)) * 1_000_000_000;
    let j = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    // `as` saturates for floats; the min keeps the result inside [base, 2 * base].
    let extra = ((base_ns as f64) * j) as u64;
    Duration::from_nanos(base_ns + extra.min(base_ns))
}

// ---------------------------------------------------------------------------------------------
// Header classification and per-form assembly.

#[derive(Debug, Clone, Copy)]
enum Header {
    XLimit,
    XRemaining,
    XReset,
    Limit,
    Remaining,
    Reset,
    Policy,
    State,
}

fn classify(name: &str) -> Option<Header> {
    let n = trim(name);
    if n.len() > 24 {
        return None;
    }
    const TABLE: [(&str, Header); 11] = [
        ("x-ratelimit-limit", Header::XLimit),
        ("x-ratelimit-remaining", Header::XRemaining),
        ("x-ratelimit-reset", Header::XReset),
        ("x-rate-limit-limit", Header::XLimit),
        ("x-rate-limit-remaining", Header::XRemaining),
        ("x-rate-limit-reset", Header::XReset),
        ("ratelimit-limit", Header::Limit),
        ("ratelimit-remaining", Header::Remaining),
        ("ratelimit-reset", Header::Reset),
        ("ratelimit-policy", Header::Policy),
        ("ratelimit", Header::State),
    ];
    TABLE
        .iter()
        .find(|(k, _)| n.eq_ignore_ascii_case(k))
        .map(|(_, h)| *h)
}

/// The four values of one form while they are being gathered.
#[derive(Debug, Default, Clone)]
struct Fields {
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<Duration>,
    window: Option<Duration>,
}

impl Fields {
    fn is_empty(&self) -> bool {
        self.limit.is_none()
            && self.remaining.is_none()
            && self.reset.is_none()
            && self.window.is_none()
    }

    fn into_info(self, form: RateLimitForm) -> Option<RateLimitInfo> {
        if self.is_empty() {
            return None;
        }
        Some(RateLimitInfo {
            form,
            limit: self.limit,
            remaining: self.remaining,
            reset: self.reset,
            window: self.window,
        })
    }

    /// Fill a missing limit or window from old-draft numeric policies (`RateLimit-Policy:
    /// 100;w=60`). `when_empty` says whether a form with nothing of its own may be built from
    /// them alone: yes for the RateLimit-* generation they belong to, no for the structured one.
    fn filled_from(mut self, legacy: &[Member], when_empty: bool) -> Fields {
        if legacy.is_empty() || (self.is_empty() && !when_empty) {
            return self;
        }
        if self.limit.is_none() {
            self.limit = legacy.first().and_then(|m| m.name.count());
        }
        if self.window.is_none() {
            self.window = window_for(legacy, self.limit);
        }
        self
    }
}

/// Limit and window from a `RateLimit-Limit`-style list: the leading number is the limit, and
/// the window is the `w` of the policy item whose quota equals it, else the first `w` seen.
fn limit_and_window(members: &[Member]) -> (Option<u64>, Option<Duration>) {
    let limit = members
        .first()
        .filter(|m| m.value.is_none())
        .and_then(|m| m.name.count());
    (limit, window_for(members, limit))
}

fn window_for(members: &[Member], limit: Option<u64>) -> Option<Duration> {
    let with_w = || {
        members
            .iter()
            .filter(|m| m.value.is_none())
            .filter_map(|m| m.param("w").and_then(Bare::duration).map(|w| (m, w)))
    };
    limit
        .and_then(|l| with_w().find(|(m, _)| m.name.count() == Some(l)))
        .or_else(|| with_w().next())
        .map(|(_, w)| w)
}

/// The structured form: pair a `RateLimit` item with a `RateLimit-Policy` item.
fn structured_fields(policy: &[Member], state: &[Member]) -> Fields {
    let named_p: Vec<&Member> = policy.iter().filter(|m| m.item_name().is_some()).collect();
    let named_s: Vec<&Member> = state.iter().filter(|m| m.item_name().is_some()).collect();

    let matched = named_s.iter().find_map(|s| {
        named_p
            .iter()
            .find(|p| p.item_name() == s.item_name())
            .map(|p| (*p, *s))
    });
    let (p, s) = match matched {
        Some((p, s)) => (Some(p), Some(s)),
        None => (named_p.first().copied(), named_s.first().copied()),
    };

    let mut out = Fields {
        limit: p.and_then(|p| p.param("q")).and_then(Bare::count),
        window: p.and_then(|p| p.param("w")).and_then(Bare::duration),
        remaining: s.and_then(|s| s.param("r")).and_then(Bare::count),
        reset: s.and_then(|s| s.param("t")).and_then(Bare::duration),
    };

    // Draft-07 dictionary: `RateLimit: limit=100, remaining=50, reset=30`.
    for m in state {
        let (Bare::Token(key), Some(v)) = (&m.name, &m.value) else {
            continue;
        };
        if key.eq_ignore_ascii_case("limit") {
            out.limit = out.limit.or_else(|| v.count());
        } else if key.eq_ignore_ascii_case("remaining") {
            out.remaining = out.remaining.or_else(|| v.count());
        } else if key.eq_ignore_ascii_case("reset") {
            out.reset = out.reset.or_else(|| v.duration());
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Scalars.

/// Trim optional whitespace (RFC 9110 OWS, plus CR/LF for sloppy callers).
fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// Digits to u64, saturating at `u64::MAX`. The caller checked that all bytes are digits.
fn saturating_digits(digits: &[u8]) -> u64 {
    digits.iter().fold(0u64, |acc, d| {
        acc.saturating_mul(10)
            .saturating_add(u64::from(d.wrapping_sub(b'0')))
    })
}

fn parse_date(v: &str) -> Option<SystemTime> {
    if v.len() > MAX_DATE_LEN {
        return None;
    }
    httpdate::parse_http_date(v).ok()
}

/// A number as RFC 8941 writes it: `-?DIGITS(.DIGITS)?`, saturated, fraction kept to ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Num {
    negative: bool,
    int: u64,
    /// The fractional part in billionths (truncated past nine digits).
    nanos: u32,
    /// No fractional part was written.
    integer: bool,
}

impl Num {
    fn count(self) -> Option<u64> {
        (!self.negative && self.integer).then_some(self.int)
    }

    fn duration(self) -> Option<Duration> {
        // nanos < 10^9, so Duration::new cannot carry into (and overflow) the seconds.
        (!self.negative).then(|| Duration::new(self.int, self.nanos))
    }
}

/// Lex a number at `i`; returns it and the index just past it.
fn lex_number(b: &[u8], mut i: usize) -> Option<(Num, usize)> {
    let negative = b.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    let start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    if i == start {
        return None;
    }
    let int = saturating_digits(&b[start..i]);
    let mut nanos = 0u32;
    let mut integer = true;
    if b.get(i) == Some(&b'.') {
        let frac_start = i + 1;
        let mut j = frac_start;
        let mut scale = 100_000_000u32;
        while let Some(d) = b.get(j).filter(|d| d.is_ascii_digit()) {
            nanos += u32::from(d - b'0') * scale;
            scale /= 10;
            j += 1;
        }
        if j == frac_start {
            return None;
        }
        integer = false;
        i = j;
    }
    Some((
        Num {
            negative,
            int,
            nanos,
            integer,
        },
        i,
    ))
}

/// The whole (trimmed) value is one number.
fn parse_number(v: &str) -> Option<Num> {
    let b = trim(v).as_bytes();
    match lex_number(b, 0) {
        Some((n, end)) if end == b.len() => Some(n),
        _ => None,
    }
}

/// `RateLimit-Reset`: non-negative delta seconds, fraction allowed.
fn parse_delta(v: &str) -> Option<Duration> {
    parse_number(v).and_then(Num::duration)
}

/// `X-RateLimit-Reset`: delta seconds, epoch seconds, epoch milliseconds, or an HTTP-date.
fn parse_x_reset(v: &str, now: SystemTime) -> Option<Duration> {
    let Some(n) = parse_number(v) else {
        return parse_date(trim(v)).map(|d| d.duration_since(now).unwrap_or(Duration::ZERO));
    };
    let value = n.duration()?;
    let target = if n.int >= EPOCH_MILLIS_FROM {
        // Milliseconds: the fraction is of a millisecond.
        Duration::from_millis(n.int).saturating_add(Duration::from_nanos(u64::from(n.nanos / 1000)))
    } else if n.int >= EPOCH_SECONDS_FROM {
        value
    } else {
        return Some(value);
    };
    // Time from `now` to `UNIX_EPOCH + target`, without ever building an out-of-range SystemTime.
    Some(match now.duration_since(UNIX_EPOCH) {
        Ok(since) => target.saturating_sub(since),
        Err(before) => target.saturating_add(before.duration()),
    })
}

/// The leading integer of a list-valued count header (`50`, or `50, 50;w=60`).
fn leading_count(v: &str) -> Option<u64> {
    let mut members = Vec::new();
    parse_list(v, &mut members);
    members
        .first()
        .filter(|m| m.value.is_none())
        .and_then(|m| m.name.count())
}

// ---------------------------------------------------------------------------------------------
// A lenient RFC 8941 list/dictionary reader: members are `bare-item [= bare-item] *(;params)`,
// separated by commas. A malformed member is skipped up to the next comma outside quotes.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Bare {
    Token(String),
    Str(String),
    Num(Num),
    /// Booleans and byte sequences: recognised so they can be skipped, never used.
    Other,
}

impl Bare {
    fn count(&self) -> Option<u64> {
        match self {
            Bare::Num(n) => n.count(),
            _ => None,
        }
    }

    fn duration(&self) -> Option<Duration> {
        match self {
            Bare::Num(n) => n.duration(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    name: Bare,
    /// Set for dictionary members (`key=value`).
    value: Option<Bare>,
    /// Lower-cased keys; the last occurrence of a key wins.
    params: Vec<(String, Bare)>,
}

impl Member {
    fn param(&self, key: &str) -> Option<&Bare> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The name of a list item naming a policy (token or string), not a dictionary member.
    fn item_name(&self) -> Option<&str> {
        match (&self.name, &self.value) {
            (Bare::Token(s) | Bare::Str(s), None) => Some(s),
            _ => None,
        }
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// Consume the member at the cursor and the comma after it; quotes are honoured.
    fn skip_member(&mut self) {
        let mut in_string = false;
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'\\' if in_string => self.i += 1,
                b'"' => in_string = !in_string,
                b',' if !in_string => return,
                _ => {}
            }
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &str {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        // Only ASCII bytes are taken, so the slice is valid UTF-8.
        std::str::from_utf8(&self.b[start..self.i]).unwrap_or_default()
    }

    fn bare(&mut self) -> Option<Bare> {
        match self.peek()? {
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => {
                let (n, end) = lex_number(self.b, self.i)?;
                self.i = end;
                Some(Bare::Num(n))
            }
            b':' => {
                self.i += 1;
                self.take_while(|c| {
                    c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'='
                });
                (self.peek()? == b':').then(|| {
                    self.i += 1;
                    Bare::Other
                })
            }
            b'?' => {
                self.i += 1;
                matches!(self.peek()?, b'0' | b'1').then(|| {
                    self.i += 1;
                    Bare::Other
                })
            }
            c if c.is_ascii_alphabetic() || c == b'*' => {
                let t = self.take_while(|c| is_tchar(c) || c == b':' || c == b'/');
                Some(Bare::Token(t.to_owned()))
            }
            _ => None,
        }
    }

    fn string(&mut self) -> Option<Bare> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    break;
                }
                b'\\' => {
                    self.i += 1;
                    let c = self.peek().filter(|c| matches!(c, b'"' | b'\\'))?;
                    out.push(c);
                    self.i += 1;
                }
                c => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        // Only ASCII escapes were removed, so this is the input's own UTF-8.
        Some(Bare::Str(String::from_utf8_lossy(&out).into_owned()))
    }

    fn key(&mut self) -> Option<String> {
        let first = self.peek()?;
        if !(first.is_ascii_alphabetic() || first == b'*') {
            return None;
        }
        let k = self
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'*'));
        Some(k.to_ascii_lowercase())
    }

    fn member(&mut self) -> Option<Member> {
        let name = self.bare()?;
        let mut value = None;
        if matches!(name, Bare::Token(_)) {
            self.skip_ows();
            if self.peek() == Some(b'=') {
                self.i += 1;
                self.skip_ows();
                value = Some(self.bare()?);
            }
        }
        let mut params: Vec<(String, Bare)> = Vec::new();
        loop {
            self.skip_ows();
            if self.peek() != Some(b';') {
                break;
            }
            self.i += 1;
            self.skip_ows();
            let key = self.key()?;
            self.skip_ows();
            let v = if self.peek() == Some(b'=') {
                self.i += 1;
                self.skip_ows();
                self.bare()?
            } else {
                Bare::Other // boolean true
            };
            if let Some(slot) = params.iter_mut().find(|(k, _)| *k == key) {
                slot.1 = v;
            } else if params.len() < MAX_PARAMS {
                params.push((key, v));
            }
        }
        Some(Member {
            name,
            value,
            params,
        })
    }
}

/// Append the well-formed members of `value` to `out` (up to `MAX_MEMBERS` in total).
fn parse_list(value: &str, out: &mut Vec<Member>) {
    let mut c = Cursor {
        b: value.as_bytes(),
        i: 0,
    };
    loop {
        c.skip_ows();
        if c.peek().is_none() || out.len() >= MAX_MEMBERS {
            return;
        }
        let start = c.i;
        let member = c.member();
        c.skip_ows();
        match (member, c.peek()) {
            (Some(m), None) => {
                out.push(m);
                return;
            }
            (Some(m), Some(b',')) => {
                out.push(m);
                c.i += 1;
            }
            _ => {
                c.i = start;
                c.skip_member();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A fixed "now": 2023-11-14T22:13:20Z.
    const NOW_SECS: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW_SECS)
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn rl(headers: &[(&str, &str)]) -> Option<RateLimitInfo> {
        parse_rate_limit(headers.iter().copied(), now())
    }

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    // --- Retry-After ---------------------------------------------------------------------

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after("120"), Some(RetryAfter::Seconds(120)));
        assert_eq!(parse_retry_after("0"), Some(RetryAfter::Seconds(0)));
        assert_eq!(parse_retry_after("007"), Some(RetryAfter::Seconds(7)));
        assert_eq!(
            parse_retry_after(" \t 30 \t"),
            Some(RetryAfter::Seconds(30))
        );
        assert_eq!(
            RetryAfter::Seconds(30).wait_from(now()),
            Duration::from_secs(30)
        );
        assert!(!RetryAfter::Seconds(0).is_in_past(now(), None));
    }

    #[test]
    fn retry_after_huge_saturates() {
        let r = parse_retry_after("99999999999999999999999999999999999999");
        assert_eq!(r, Some(RetryAfter::Seconds(u64::MAX)));
        assert_eq!(r.unwrap().wait_from(now()), Duration::from_secs(u64::MAX));
        assert_eq!(
            parse_retry_after(&u64::MAX.to_string()),
            Some(RetryAfter::Seconds(u64::MAX))
        );
        assert_eq!(
            parse_retry_after("18446744073709551616"),
            Some(RetryAfter::Seconds(u64::MAX))
        );
    }

    #[test]
    fn retry_after_garbage() {
        for v in [
            "",
            "   ",
            "-1",
            "-0",
            "+5",
            "1.5",
            "1.",
            ".5",
            "1e3",
            "0x10",
            "12abc",
            "1 2",
            "abc",
            "١٢",
            "５",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Thu, 01 Jan 1969 00:00:00 GMT",
            "\u{0}",
        ] {
            assert_eq!(parse_retry_after(v), None, "{v:?}");
        }
    }

    #[test]
    fn retry_after_dates_in_three_formats() {
        let expected = Some(RetryAfter::Date(at(784_111_777)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), expected);
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT"),
            expected
        );
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994"), expected);
        assert_eq!(
            parse_retry_after("  Sun, 06 Nov 1994 08:49:37 GMT \t"),
            expected
        );
        // The last date httpdate can represent parses without panicking.
        assert!(matches!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(RetryAfter::Date(_))
        ));
    }

    #[test]
    fn retry_after_future_and_past_dates() {
        let future = parse_retry_after(&httpdate::fmt_http_date(at(NOW_SECS + 90))).unwrap();
        assert_eq!(future.wait_from(now()), Duration::from_secs(90));
        assert!(!future.is_in_past(now(), None));

        let past = parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert!(past.is_in_past(now(), None));
        assert_eq!(past.wait_from(now()), Duration::ZERO);

        let exactly_now = RetryAfter::Date(now());
        assert!(!exactly_now.is_in_past(now(), None));
        assert_eq!(exactly_now.wait_from(now()), Duration::ZERO);
    }

    #[test]
    fn a_date_of_the_current_second_is_not_past_at_arrival() {
        // A server at 12.7 s that means "retry in a moment" may send the date of second 12;
        // judged against the arrival (cut to the second) or its Date header, that is now.
        let arrival = at(NOW_SECS) + Duration::from_millis(700);
        let this_second = RetryAfter::Date(at(NOW_SECS));
        assert!(!this_second.is_in_past(arrival, None));
        let date = httpdate::fmt_http_date(at(NOW_SECS));
        assert!(!this_second.is_in_past(arrival, Some(&date)));
        // One or two seconds ahead, judged long after the wait, still not past.
        let ahead = RetryAfter::Date(at(NOW_SECS + 2));
        assert!(!ahead.is_in_past(arrival, None));
        // A second before the response's own Date header is past.
        let before = RetryAfter::Date(at(NOW_SECS - 1));
        assert!(before.is_in_past(arrival, Some(&date)));
        assert!(before.is_in_past(arrival, None));
    }

    #[test]
    fn backoff_follows_a_usable_hint_from_arrival() {
        let arrival = now();
        let cap = Duration::from_secs(60);
        let b = backoff_after_429(Some("3"), arrival, arrival, 0, 0.5, cap);
        assert_eq!(b.wait, Duration::from_secs(3));
        assert!(!b.unusable_hint && b.capped_from.is_none(), "{b:?}");
        // Time spent since the response arrived counts towards the wait.
        let later = arrival + Duration::from_secs(1);
        let b = backoff_after_429(Some("3"), arrival, later, 0, 0.5, cap);
        assert_eq!(b.wait, Duration::from_secs(2));
        let date = httpdate::fmt_http_date(at(NOW_SECS + 2));
        let b = backoff_after_429(Some(&date), arrival, arrival, 0, 0.5, cap);
        assert_eq!(b.wait, Duration::from_secs(2));
        let b = backoff_after_429(Some("600"), arrival, arrival, 0, 0.5, cap);
        assert_eq!(b.wait, cap);
        assert_eq!(b.capped_from, Some(Duration::from_secs(600)));
    }

    #[test]
    fn an_unusable_hint_falls_back_to_the_documented_schedule() {
        let arrival = now();
        let cap = Duration::from_secs(60);
        let past = httpdate::fmt_http_date(at(NOW_SECS - 3600));
        for (hint, attempt, low, high) in [
            (Some("0"), 0, 1, 2),
            (Some(past.as_str()), 1, 2, 4),
            (Some("soon"), 2, 4, 8),
            (None, 3, 8, 16),
            (Some("0"), 9, 8, 16),
        ] {
            let b = backoff_after_429(hint, arrival, arrival, attempt, 0.5, cap);
            assert!(
                b.wait >= Duration::from_secs(low) && b.wait <= Duration::from_secs(high),
                "{hint:?} attempt {attempt}: {b:?}"
            );
            assert_eq!(b.unusable_hint, hint.is_some(), "{b:?}");
            assert!(b.reason.contains("documented backoff step"), "{b:?}");
        }
    }

    // --- X-RateLimit-* -------------------------------------------------------------------

    #[test]
    fn x_ratelimit_delta_reset() {
        let info = rl(&[
            ("X-RateLimit-Limit", "100"),
            ("X-RateLimit-Remaining", "42"),
            ("X-RateLimit-Reset", "30"),
        ])
        .unwrap();
        assert_eq!(
            info,
            RateLimitInfo {
                form: RateLimitForm::XRateLimit,
                limit: Some(100),
                remaining: Some(42),
                reset: secs(30),
                window: None,
            }
        );
    }

    #[test]
    fn x_ratelimit_names_are_case_insensitive_and_aliases_work() {
        let info = rl(&[("x-ratelimit-limit", "5"), ("X-RATELIMIT-REMAINING", "0")]).unwrap();
        assert_eq!((info.limit, info.remaining), (Some(5), Some(0)));
        let info = rl(&[("x-rate-limit-limit", "15"), ("X-Rate-Limit-Reset", "9")]).unwrap();
        assert_eq!(
            (info.form, info.limit, info.reset),
            (RateLimitForm::XRateLimit, Some(15), secs(9))
        );
    }

    #[test]
    fn x_ratelimit_reset_epoch_seconds_and_millis() {
        let epoch = (NOW_SECS + 42).to_string();
        assert_eq!(
            rl(&[("X-RateLimit-Reset", &epoch)]).unwrap().reset,
            secs(42)
        );

        let ms = ((NOW_SECS + 42) * 1000 + 500).to_string();
        assert_eq!(
            rl(&[("X-RateLimit-Reset", &ms)]).unwrap().reset,
            Some(Duration::from_millis(42_500))
        );
        // An epoch in the past means "already reset".
        assert_eq!(
            rl(&[("X-RateLimit-Reset", "1000000000")]).unwrap().reset,
            Some(Duration::ZERO)
        );
        assert_eq!(
            rl(&[("X-RateLimit-Reset", "1000000000000")]).unwrap().reset,
            Some(Duration::ZERO)
        );
        // Just under the epoch threshold is still a (long) delta.
        assert_eq!(
            rl(&[("X-RateLimit-Reset", "999999999")]).unwrap().reset,
            secs(999_999_999)
        );
    }

    #[test]
    fn x_ratelimit_reset_fractional_and_dates() {
        assert_eq!(
            rl(&[("X-RateLimit-Reset", "1.5")]).unwrap().reset,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            rl(&[("X-RateLimit-Reset", "0.0000000019")]).unwrap().reset,
            Some(Duration::from_nanos(1))
        );
        let epoch = format!("{}.25", NOW_SECS + 10);
        assert_eq!(
            rl(&[("X-RateLimit-Reset", &epoch)]).unwrap().reset,
            Some(Duration::from_millis(10_250))
        );
        let date = httpdate::fmt_http_date(at(NOW_SECS + 60));
        assert_eq!(rl(&[("X-RateLimit-Reset", &date)]).unwrap().reset, secs(60));
    }

    #[test]
    fn x_ratelimit_huge_and_bad_values() {
        let info = rl(&[
            ("X-RateLimit-Limit", "123456789012345678901234567890"),
            ("X-RateLimit-Remaining", "-1"),
            ("X-RateLimit-Reset", "99999999999999999999999999999.9"),
        ])
        .unwrap();
        assert_eq!(info.limit, Some(u64::MAX));
        assert_eq!(info.remaining, None);
        // A saturated millisecond epoch is far in the future, not a panic.
        assert!(info.reset.unwrap() > Duration::from_secs(1_000_000_000_000));

        for bad in ["-5", "abc", "", "1.", "5s", "1,5"] {
            assert_eq!(rl(&[("X-RateLimit-Reset", bad)]), None, "{bad:?}");
        }
        assert_eq!(rl(&[("X-RateLimit-Limit", "1.5")]), None);
        assert_eq!(rl(&[("X-RateLimit-Limit", "100abc")]), None);
    }

    #[test]
    fn repeated_single_value_headers_take_first_parsable() {
        let info = rl(&[
            ("X-RateLimit-Remaining", "bogus"),
            ("X-RateLimit-Remaining", "7"),
            ("X-RateLimit-Remaining", "8"),
        ])
        .unwrap();
        assert_eq!(info.remaining, Some(7));
    }

    // --- RateLimit-* (older drafts) ----------------------------------------------------

    #[test]
    fn ratelimit_fields_plain() {
        let info = rl(&[
            ("RateLimit-Limit", "100"),
            ("RateLimit-Remaining", "99"),
            ("RateLimit-Reset", "60"),
        ])
        .unwrap();
        assert_eq!(
            info,
            RateLimitInfo {
                form: RateLimitForm::RateLimitFields,
                limit: Some(100),
                remaining: Some(99),
                reset: secs(60),
                window: None,
            }
        );
    }

    #[test]
    fn ratelimit_fields_with_policy_suffix() {
        let info = rl(&[("RateLimit-Limit", "100, 100;w=60")]).unwrap();
        assert_eq!((info.limit, info.window), (Some(100), secs(60)));

        // Several policies: the one whose quota equals the limit gives the window.
        let info = rl(&[("RateLimit-Limit", "1000, 10;w=1, 1000;w=3600")]).unwrap();
        assert_eq!((info.limit, info.window), (Some(1000), secs(3600)));
        let info = rl(&[("RateLimit-Limit", "5, 10;w=1, 1000;w=3600")]).unwrap();
        assert_eq!((info.limit, info.window), (Some(5), secs(1)));
        let info = rl(&[("RateLimit-Limit", " 100 ;w=60 ")]).unwrap();
        assert_eq!((info.limit, info.window), (Some(100), secs(60)));
    }

    #[test]
    fn ratelimit_fields_reset_is_delta_even_when_large() {
        let info = rl(&[("RateLimit-Reset", "1700000000")]).unwrap();
        assert_eq!(info.reset, secs(1_700_000_000));
        assert_eq!(rl(&[("RateLimit-Reset", "-3")]), None);
    }

    #[test]
    fn ratelimit_fields_with_old_style_policy_header() {
        let info = rl(&[
            ("RateLimit-Limit", "100"),
            ("RateLimit-Remaining", "3"),
            ("RateLimit-Reset", "20"),
            ("RateLimit-Policy", "10;w=1, 100;w=60"),
        ])
        .unwrap();
        assert_eq!(info.form, RateLimitForm::RateLimitFields);
        assert_eq!(
            (info.limit, info.remaining, info.reset, info.window),
            (Some(100), Some(3), secs(20), secs(60))
        );
        // A lone old-style policy still tells the limit and the window.
        let info = rl(&[("RateLimit-Policy", "100;w=60")]).unwrap();
        assert_eq!(
            (info.form, info.limit, info.window),
            (RateLimitForm::RateLimitFields, Some(100), secs(60))
        );
    }

    // --- Structured fields --------------------------------------------------------------

    #[test]
    fn structured_quoted_names() {
        let info = rl(&[
            ("RateLimit-Policy", "\"burst\";q=100;w=60"),
            ("RateLimit", "\"burst\";r=50;t=30"),
        ])
        .unwrap();
        assert_eq!(
            info,
            RateLimitInfo {
                form: RateLimitForm::IetfStructured,
                limit: Some(100),
                remaining: Some(50),
                reset: secs(30),
                window: secs(60),
            }
        );
    }

    #[test]
    fn structured_token_names_and_param_order() {
        let info = rl(&[
            ("ratelimit-policy", "burst;w=60;q=100"),
            ("RATELIMIT", "burst ; t=30 ; r=50"),
        ])
        .unwrap();
        assert_eq!(
            (info.limit, info.window, info.remaining, info.reset),
            (Some(100), secs(60), Some(50), secs(30))
        );
    }

    #[test]
    fn structured_unknown_params_ignored() {
        let info = rl(&[
            (
                "RateLimit-Policy",
                "\"peruser\";qu=\"requests\";q=10;pk=:cHsdsRa894==:;w=1;x;flag=?1",
            ),
            (
                "RateLimit",
                "\"peruser\";pk=:cHsdsRa894==:;r=9;t=0.5;extra=\"a;b,c\"",
            ),
        ])
        .unwrap();
        assert_eq!(
            (info.limit, info.window, info.remaining, info.reset),
            (Some(10), secs(1), Some(9), Some(Duration::from_millis(500)))
        );
    }

    #[test]
    fn structured_multi_item_lists() {
        // No RateLimit header: the first policy.
        let info = rl(&[(
            "RateLimit-Policy",
            "\"burst\";q=100;w=60, \"daily\";q=1000;w=86400",
        )])
        .unwrap();
        assert_eq!(
            (info.limit, info.window, info.remaining),
            (Some(100), secs(60), None)
        );

        // The RateLimit item names the daily policy: pair them by name.
        let info = rl(&[
            (
                "RateLimit-Policy",
                "\"burst\";q=100;w=60, \"daily\";q=1000;w=86400",
            ),
            ("RateLimit", "\"daily\";r=999;t=3600"),
        ])
        .unwrap();
        assert_eq!(
            (info.limit, info.window, info.remaining, info.reset),
            (Some(1000), secs(86_400), Some(999), secs(3600))
        );

        // Policies split over two header lines are one list.
        let info = rl(&[
            ("RateLimit-Policy", "burst;q=100;w=60"),
            ("RateLimit-Policy", "daily;q=1000;w=86400"),
            ("RateLimit", "daily;r=1;t=2"),
        ])
        .unwrap();
        assert_eq!((info.limit, info.remaining), (Some(1000), Some(1)));

        // A token and a string with the same text are the same name.
        let info = rl(&[
            ("RateLimit-Policy", "burst;q=1;w=1, daily;q=2;w=2"),
            ("RateLimit", "\"daily\";r=1;t=1"),
        ])
        .unwrap();
        assert_eq!(info.limit, Some(2));

        // No name matches: the first item of each.
        let info = rl(&[
            ("RateLimit-Policy", "a;q=7;w=70, b;q=8;w=80"),
            ("RateLimit", "c;r=3;t=4, d;r=5;t=6"),
        ])
        .unwrap();
        assert_eq!(
            (info.limit, info.window, info.remaining, info.reset),
            (Some(7), secs(70), Some(3), secs(4))
        );
    }

    #[test]
    fn structured_quoted_names_with_separators_and_escapes() {
        let info = rl(&[
            ("RateLimit-Policy", "\"a,b;c\";q=5;w=6, \"x\\\"y\";q=9;w=9"),
            ("RateLimit", "\"x\\\"y\";r=1;t=2"),
        ])
        .unwrap();
        assert_eq!((info.limit, info.remaining), (Some(9), Some(1)));
    }

    #[test]
    fn structured_malformed_items_are_skipped() {
        let info = rl(&[(
            "RateLimit-Policy",
            "%%%;q=1, \"unterminated;q=2, ok;q=3;w=4",
        )]);
        // The unterminated string swallows the rest: nothing usable.
        assert_eq!(info, None);
        let info = rl(&[("RateLimit-Policy", "%%%;q=1, bad;q=, ok;q=3;w=4")]).unwrap();
        assert_eq!((info.limit, info.window), (Some(3), secs(4)));
        // Negative and fractional counts are not counts.
        let info = rl(&[
            ("RateLimit", "p;r=-1;t=-2"),
            ("RateLimit-Policy", "p;q=1.5;w=3"),
        ])
        .unwrap();
        assert_eq!(
            (info.limit, info.window, info.remaining, info.reset),
            (None, secs(3), None, None)
        );
    }

    #[test]
    fn structured_draft07_dictionary() {
        let info = rl(&[
            ("RateLimit", "limit=100, remaining=50, reset=30"),
            ("RateLimit-Policy", "100;w=60"),
        ])
        .unwrap();
        assert_eq!(
            info,
            RateLimitInfo {
                form: RateLimitForm::IetfStructured,
                limit: Some(100),
                remaining: Some(50),
                reset: secs(30),
                window: secs(60),
            }
        );
    }

    // --- Preference and absence ---------------------------------------------------------

    #[test]
    fn prefers_structured_then_fields_then_x() {
        let all = [
            ("X-RateLimit-Limit", "1"),
            ("RateLimit-Limit", "2"),
            ("RateLimit-Policy", "p;q=3;w=1"),
        ];
        assert_eq!(rl(&all).unwrap().form, RateLimitForm::IetfStructured);
        assert_eq!(rl(&all[..2]).unwrap().limit, Some(2));
        assert_eq!(rl(&all[..1]).unwrap().limit, Some(1));
        // A form whose headers parse to nothing does not shadow the next one.
        let info = rl(&[
            ("RateLimit", "garbage!!"),
            ("RateLimit-Limit", "?"),
            ("X-RateLimit-Remaining", "4"),
        ])
        .unwrap();
        assert_eq!(
            (info.form, info.remaining),
            (RateLimitForm::XRateLimit, Some(4))
        );
    }

    #[test]
    fn none_when_nothing_present_or_parsed() {
        assert_eq!(rl(&[]), None);
        assert_eq!(
            rl(&[("Content-Type", "application/json"), ("Retry-After", "5")]),
            None
        );
        assert_eq!(
            rl(&[
                ("X-RateLimit-Limit", ""),
                ("RateLimit", ""),
                ("RateLimit-Policy", ",,,")
            ]),
            None
        );
        assert_eq!(
            rl(&[("X-RateLimit-Limit-Extra", "5"), ("RateLimitX", "p;r=1")]),
            None
        );
    }

    #[test]
    fn many_headers_and_long_values_are_bounded() {
        let long = ",\"".repeat(100_000);
        let mut headers: Vec<(&str, &str)> = vec![("RateLimit-Policy", long.as_str()); 10];
        headers.push(("X-RateLimit-Limit", "3"));
        assert_eq!(rl(&headers).unwrap().limit, Some(3));

        let many = vec![("RateLimit-Policy", "p;q=1;w=1"); 100_000];
        assert_eq!(rl(&many).unwrap().limit, Some(1));
        // Headers past the cap are not read.
        let mut late = vec![("Other", "x"); MAX_HEADERS];
        late.push(("X-RateLimit-Limit", "3"));
        assert_eq!(rl(&late), None);
    }

    #[test]
    fn reset_relative_to_a_now_before_the_epoch() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        let info = parse_rate_limit([("X-RateLimit-Reset", "1000000000")], before).unwrap();
        assert_eq!(info.reset, secs(1_000_000_010));
    }

    // --- Backoff ------------------------------------------------------------------------

    #[test]
    fn backoff_schedule() {
        let cases = [
            (0, 1),
            (1, 2),
            (2, 4),
            (3, 8),
            (4, 8),
            (100, 8),
            (u32::MAX, 8),
        ];
        for (attempt, base) in cases {
            assert_eq!(documented_backoff(attempt, 0.0), Duration::from_secs(base));
            assert_eq!(
                documented_backoff(attempt, 0.5),
                Duration::from_millis(base * 1500)
            );
            let top = documented_backoff(attempt, 0.999_999);
            assert!(top < Duration::from_secs(2 * base) && top > Duration::from_secs(base));
        }
    }

    #[test]
    fn backoff_out_of_range_jitter_is_clamped() {
        assert_eq!(documented_backoff(0, f64::NAN), Duration::from_secs(1));
        assert_eq!(documented_backoff(0, -3.0), Duration::from_secs(1));
        assert_eq!(
            documented_backoff(0, f64::NEG_INFINITY),
            Duration::from_secs(1)
        );
        assert_eq!(documented_backoff(2, 1.0), Duration::from_secs(8));
        assert_eq!(documented_backoff(2, f64::INFINITY), Duration::from_secs(8));
    }

    // --- Properties ---------------------------------------------------------------------

    const KNOWN_NAMES: &[&str] = &[
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "x-rate-limit-reset",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "RateLimit-Policy",
        "RateLimit",
        "Retry-After",
    ];

    /// Values that look like what servers send, to reach deep into the parsers.
    fn header_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[-0-9.,;=: \t\"\\\\?*a-zA-Z]{0,40}",
            "(\"?[a-z]{0,4}\"?(;[qwrt]=-?[0-9]{0,22}(\\.[0-9]{0,12})?){0,4}, ?){0,4}",
            "[0-9]{1,25}(\\.[0-9]{0,12})?",
        ]
    }

    fn header_name() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(KNOWN_NAMES).prop_map(str::to_owned),
            proptest::sample::select(KNOWN_NAMES).prop_map(|n| n.to_ascii_uppercase()),
            any::<String>(),
        ]
    }

    /// A policy name: a token, or a quoted string (escaped), with its plain text.
    fn policy_name() -> impl Strategy<Value = (String, String)> {
        prop_oneof![
            "[a-zA-Z*][a-zA-Z0-9!#$%&'*+.^_`|~:/-]{0,10}".prop_map(|t| (t.clone(), t)),
            "[ -~]{0,12}".prop_map(|s| {
                let esc = s.replace('\\', "\\\\").replace('"', "\\\"");
                (format!("\"{esc}\""), s)
            }),
        ]
    }

    fn ows() -> impl Strategy<Value = String> {
        "[ \t]{0,3}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn retry_after_never_panics(v in header_value(), now_s in any::<u64>()) {
            if let Some(r) = parse_retry_after(&v) {
                let now = UNIX_EPOCH.checked_add(Duration::from_secs(now_s)).unwrap_or(UNIX_EPOCH);
                let wait = r.wait_from(now);
                if r.is_in_past(now, None) {
                    prop_assert_eq!(wait, Duration::ZERO);
                }
            }
        }

        #[test]
        fn retry_after_seconds_round_trip(n in any::<u64>(), pre in ows(), post in ows()) {
            let parsed = parse_retry_after(&format!("{pre}{n}{post}"));
            prop_assert_eq!(parsed, Some(RetryAfter::Seconds(n)));
        }

        #[test]
        fn retry_after_date_round_trip(t in 0u64..253_402_300_800, now_s in 0u64..253_402_300_800) {
            let date = at(t);
            let parsed = parse_retry_after(&httpdate::fmt_http_date(date)).unwrap();
            prop_assert_eq!(parsed.clone(), RetryAfter::Date(date));
            prop_assert_eq!(parsed.is_in_past(at(now_s), None), t < now_s);
            prop_assert_eq!(parsed.wait_from(at(now_s)), Duration::from_secs(t.saturating_sub(now_s)));
        }

        #[test]
        fn rate_limit_never_panics(
            headers in proptest::collection::vec((header_name(), header_value()), 0..12),
            now_s in any::<u64>(),
        ) {
            let now = UNIX_EPOCH.checked_add(Duration::from_secs(now_s)).unwrap_or(UNIX_EPOCH);
            if let Some(info) =
                parse_rate_limit(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())), now)
            {
                prop_assert!(
                    info.limit.is_some() || info.remaining.is_some()
                        || info.reset.is_some() || info.window.is_some()
                );
            }
        }

        #[test]
        fn x_ratelimit_round_trip(
            limit in any::<u64>(),
            remaining in any::<u64>(),
            reset in 0u64..EPOCH_SECONDS_FROM,
            ahead in 0u64..1_000_000_000,
            epoch in any::<bool>(),
            pad in ows(),
        ) {
            let reset_value = if epoch { NOW_SECS + ahead } else { reset };
            let expected = if epoch { ahead } else { reset };
            let (l, r, z) = (format!("{pad}{limit}"), format!("{remaining}{pad}"), reset_value.to_string());
            let info = rl(&[
                ("X-RateLimit-Limit", &l),
                ("X-RateLimit-Remaining", &r),
                ("X-RateLimit-Reset", &z),
            ]).unwrap();
            prop_assert_eq!(info, RateLimitInfo {
                form: RateLimitForm::XRateLimit,
                limit: Some(limit),
                remaining: Some(remaining),
                reset: secs(expected),
                window: None,
            });
        }

        #[test]
        fn ratelimit_fields_round_trip(
            limit in any::<u64>(),
            remaining in any::<u64>(),
            reset in any::<u64>(),
            window in proptest::option::of(any::<u64>()),
        ) {
            let l = match window {
                Some(w) => format!("{limit}, {limit};w={w}"),
                None => limit.to_string(),
            };
            let (r, z) = (remaining.to_string(), reset.to_string());
            let info = rl(&[
                ("RateLimit-Limit", &l),
                ("RateLimit-Remaining", &r),
                ("RateLimit-Reset", &z),
            ]).unwrap();
            prop_assert_eq!(info, RateLimitInfo {
                form: RateLimitForm::RateLimitFields,
                limit: Some(limit),
                remaining: Some(remaining),
                reset: secs(reset),
                window: window.map(Duration::from_secs),
            });
        }

        #[test]
        fn structured_round_trip(
            (written, plain) in policy_name(),
            q in any::<u64>(), w in any::<u64>(), r in any::<u64>(), t in any::<u64>(),
            swap in any::<bool>(),
            decoys_before in 0usize..3,
            decoys_after in 0usize..3,
            sp in ows(),
        ) {
            prop_assume!(!plain.starts_with("decoy"));
            let (p1, p2) = (format!("q={q}"), format!("w={w}"));
            let (s1, s2) = (format!("r={r}"), format!("t={t}"));
            let (p1, p2, s1, s2) = if swap { (p2, p1, s2, s1) } else { (p1, p2, s1, s2) };
            let mut policies: Vec<String> =
                (0..decoys_before).map(|i| format!("decoy{i};q=1;w=1")).collect();
            policies.push(format!("{written}{sp};{sp}{p1};{p2};unknown=\"?\""));
            policies.extend((0..decoys_after).map(|i| format!("\"decoy-{i}\";q=2;w=2")));
            let policy = policies.join(&format!("{sp},{sp}"));
            let state = format!("{written};{s1}{sp};{sp}{s2}, decoy0;r=0;t=0");
            let info = rl(&[("RateLimit-Policy", &policy), ("RateLimit", &state)]).unwrap();
            prop_assert_eq!(info, RateLimitInfo {
                form: RateLimitForm::IetfStructured,
                limit: Some(q),
                remaining: Some(r),
                reset: secs(t),
                window: secs(w),
            });
        }

        #[test]
        fn backoff_stays_in_documented_range(attempt in any::<u32>(), jitter in any::<f64>()) {
            let base = Duration::from_secs(1 << attempt.min(3));
            let d = documented_backoff(attempt, jitter);
            prop_assert!(d >= base && d <= 2 * base);
        }

        #[test]
        fn backoff_is_monotone_in_jitter(attempt in 0u32..6, a in 0.0f64..1.0, b in 0.0f64..1.0) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(documented_backoff(attempt, lo) <= documented_backoff(attempt, hi));
        }
    }
}
