//! Property tests: the harness's readers of what servers send and of what users write never
//! panic, whatever the input. Job invariants and schema validation on arbitrary JSON, the suite
//! parser on arbitrary and on mutated suite text, and path-segment encoding.
//! (hints.rs has its own properties for Retry-After and the RateLimit headers.)
//!
//! Cases are kept at 256 per property so the file runs in seconds; `PROPTEST_CASES=N` raises
//! the count for a longer hunt.

use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value};

use apiconform::checks;
use apiconform::jobs::invariant_violations;
use apiconform::schemas::SchemaSet;
use apiconform::suite::{
    encode_segment, Carries, JobSettings, PathTemplate, StateDecl, StateMachine, Suite,
    SuiteSource, BUNDLED_SUITE,
};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        // Failures are reported with their minimal input; no regression files in the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- JSON strategies

/// Field names the readers look for, so generated objects hit their branches.
const KNOWN_KEYS: &[&str] = &[
    "id",
    "status",
    "progress",
    "output_url",
    "error",
    "created_at",
    "jobs",
    "total",
    "limit",
    "offset",
    "code",
    "message",
    "request_id",
    "duration_seconds",
    "webhook_events",
    "",
    "~",
    "/",
    "a~1b",
];

/// Strings that mean something to a reader: states, URLs, dates, codes, and edge cases.
const INTERESTING: &[&str] = &[
    "pending",
    "created",
    "processing",
    "completed",
    "failed",
    "COMPLETED",
    "",
    " ",
    "https://cdn.example/out.webm",
    "http://",
    "/relative",
    "ftp://example.com/x",
    "https://[::1]:99999/",
    "javascript:alert(1)",
    "2024-01-01T00:00:00Z",
    "2024-02-30T25:61:61Z",
    "2024-01-01T00:00:00+99:99",
    "9999999999-01-01T00:00:00Z",
    "invalid_api_key",
    "Invalid-Code",
    "\u{0}",
    "💥🎬",
    "\u{202e}rtl",
    "%00",
    "\\",
    "\"",
];

fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(INTERESTING).prop_map(str::to_owned),
        2 => any::<String>(),
        1 => "[a-z_]{0,12}",
        1 => "[0-9:TZ+.-]{0,30}",
    ]
}

fn json_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1000.0f64..1000.0).prop_map(Value::from),
        select(
            &[
                0.0,
                100.0,
                100.000_000_1,
                -0.0,
                99.999_999,
                f64::MAX,
                f64::MIN,
                f64::EPSILON
            ][..]
        )
        .prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        json_number(),
        json_string().prop_map(Value::String),
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(KNOWN_KEYS).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// Any JSON value, at most 4 levels deep and about 64 nodes.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(json_key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object with some of `fields`, each with any value: close to the real shape, so the
/// readers go past their first "not an object" branch.
fn shaped(fields: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec(prop::option::of(json_value()), fields.len()).prop_map(move |values| {
        let mut object = Map::new();
        for (field, value) in fields.iter().zip(values) {
            if let Some(value) = value {
                object.insert((*field).to_string(), value);
            }
        }
        Value::Object(object)
    })
}

const JOB_FIELDS: &[&str] = &[
    "id",
    "status",
    "progress",
    "output_url",
    "error",
    "created_at",
    "duration_seconds",
    "billing_status",
    "webhook_url",
    "webhook_events",
];

/// A job-like object: known fields with plausible or arbitrary values.
fn job_like() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            json_leaf(),
            select(&["pending", "created", "processing", "completed", "failed"][..])
                .prop_map(Value::from)
        ],
        prop_oneof![json_number(), json_leaf()],
        json_leaf(),
        json_leaf(),
        json_leaf(),
        shaped(JOB_FIELDS),
    )
        .prop_map(|(status, progress, output, error, created, rest)| {
            let mut job = match rest {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            job.insert("status".into(), status);
            job.insert("progress".into(), progress);
            job.insert("output_url".into(), output);
            job.insert("error".into(), error);
            job.insert("created_at".into(), created);
            Value::Object(job)
        })
}

/// Any JSON document a server might send for a job, a list, an error, or anything else.
fn server_document() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => json_value(),
        2 => job_like(),
        1 => prop::collection::vec(job_like(), 0..4).prop_map(|jobs| {
            serde_json::json!({"jobs": jobs, "total": jobs.len(), "limit": 10, "offset": 0})
        }),
        1 => shaped(&["code", "message", "request_id"]).prop_map(|e| serde_json::json!({"error": e})),
        1 => json_value().prop_map(|e| serde_json::json!({"error": e})),
    ]
}

// ---------------------------------------------------------------- jobs::invariant_violations

/// A JSON pointer, well-formed or not.
fn pointer() -> impl Strategy<Value = String> {
    prop_oneof![
        select(
            &[
                "/status",
                "/progress",
                "",
                "/",
                "status",
                "/a/~",
                "/a/~2",
                "/0",
                "/-",
                "/jobs/0/status"
            ][..]
        )
        .prop_map(str::to_owned),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn job_invariants_never_panic_and_name_the_field(job in server_document()) {
        for violation in invariant_violations(&job, &JobSettings::default()) {
            prop_assert!(violation.starts_with("at /"), "a finding that names no field: {violation}");
        }
    }

    #[test]
    fn job_invariants_never_panic_with_odd_settings(
        job in server_document(),
        status in pointer(),
        progress in pointer(),
        output in pointer(),
        error in pointer(),
        states in prop::collection::vec(json_string(), 0..4),
    ) {
        let settings = JobSettings {
            status_pointer: status,
            progress_pointer: progress,
            output_pointer: output,
            error_pointer: error,
            states: StateMachine::from_states(
                states
                    .into_iter()
                    .map(|name| (name, StateDecl { terminal: true, carries: Some(Carries::Output), ..StateDecl::default() }))
                    .collect(),
            ),
            ..JobSettings::default()
        };
        let _ = invariant_violations(&job, &settings);
    }

    #[test]
    fn conforming_jobs_have_no_invariant_violations(
        phase in 0..4usize,
        progress in 0.0f64..=100.0,
        message in "[a-z ]{0,10}[a-z]",
        output in "[a-z]{1,10}",
    ) {
        let job = match phase {
            0 => serde_json::json!({"status": "pending", "progress": progress, "output_url": null, "error": null}),
            1 => serde_json::json!({"status": "processing", "progress": progress, "output_url": null, "error": null}),
            2 => serde_json::json!({"status": "completed", "progress": 100, "output_url": format!("https://cdn.example/{output}.webm"), "error": null}),
            _ => serde_json::json!({"status": "failed", "progress": progress, "output_url": null, "error": message}),
        };
        let found = invariant_violations(&job, &JobSettings::default());
        prop_assert!(found.is_empty(), "{job}: {found:?}");
    }
}

// ---------------------------------------------------------------- SchemaSet

/// The bundled suite's schemas, compiled once.
fn bundled() -> &'static (Vec<String>, SchemaSet) {
    static SCHEMAS: OnceLock<(Vec<String>, SchemaSet)> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let suite = Suite::load(None).expect("bundled suite");
        let schemas = SchemaSet::load(&suite).expect("bundled schemas");
        (suite.schemas.keys().cloned().collect(), schemas)
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn schema_violations_never_panic_and_are_located(document in server_document()) {
        let (names, schemas) = bundled();
        prop_assert!(!names.is_empty());
        for name in names {
            for violation in schemas.violations(name, &document) {
                prop_assert!(
                    violation.path.is_empty() || violation.path.starts_with('/'),
                    "schema `{name}`: path {:?} is not a JSON pointer", violation.path
                );
                prop_assert!(!violation.rule.is_empty(), "schema `{name}`: no rule in {violation}");
                // The message renders (it quotes the value) without panicking.
                let _ = violation.to_string();
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Every job the contract allows matches the job schema: either pre-processing name, any
    /// progress in range (integer or not), `Z` or `+00:00` with or without fractional seconds,
    /// nulls where the contract says "or null", optional webhook fields, undocumented extras.
    #[test]
    fn conforming_jobs_match_the_job_schema(
        phase in 0..5usize,
        progress in 0.0f64..=100.0,
        whole in any::<bool>(),
        offset in select(&["Z", "+00:00"][..]),
        fraction in select(&["", ".1", ".123", ".123456"][..]),
        duration in prop::option::of(0.0f64..1e6),
        billing in prop::option::of("[a-z_]{0,12}"),
        webhooks in 0..3usize,
        extra in prop::option::of(json_leaf()),
    ) {
        let progress = if whole { Value::from(progress.round() as u64) } else { Value::from(progress) };
        let (status, progress, output, error) = match phase {
            0 => ("pending", progress, Value::Null, Value::Null),
            1 => ("created", progress, Value::Null, Value::Null),
            2 => ("processing", progress, Value::Null, Value::Null),
            3 => ("completed", Value::from(100), Value::from("https://cdn.example/out.webm"), Value::Null),
            _ => ("failed", progress, Value::Null, Value::from("Could not decode the video")),
        };
        let mut job = serde_json::json!({
            "id": "job_1", "status": status, "progress": progress, "output_url": output,
            "error": error, "created_at": format!("2026-11-27T12:00:00{fraction}{offset}"),
            "duration_seconds": duration, "billing_status": billing,
        });
        match webhooks {
            0 => {}
            1 => {
                job["webhook_url"] = Value::Null;
                job["webhook_events"] = Value::Null;
            }
            _ => {
                job["webhook_url"] = Value::from("https://hooks.example/x");
                job["webhook_events"] = serde_json::json!({"job.started": "sent"});
            }
        }
        if let Some(extra) = extra {
            job["undocumented"] = extra;
        }
        let (_, schemas) = bundled();
        let found = schemas.violations("job", &job);
        prop_assert!(found.is_empty(), "{job}: {found:?}");
    }
}

// ---------------------------------------------------------------- Suite::parse

fn source() -> SuiteSource {
    SuiteSource::File("x.toml".into())
}

/// Ok, or an error that names the file first; neither `parse` nor building the checks it
/// declares (where each kind reads its parameters) may panic.
fn parse_is_located(text: &str) -> Result<(), TestCaseError> {
    let located = |message: String| -> Result<(), TestCaseError> {
        prop_assert!(
            message.starts_with("x.toml:"),
            "an error that does not name the file: {message}"
        );
        Ok(())
    };
    match Suite::parse(text, source()) {
        Ok(suite) => {
            for decl in &suite.checks {
                if let Err(error) = checks::build(decl, &suite).map(|_| ()) {
                    located(error.to_string())?;
                }
            }
            Ok(())
        }
        Err(error) => located(error.to_string()),
    }
}

/// Fragments that TOML and the suite reader care about.
const FRAGMENTS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "=",
    ",",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "#",
    "\\",
    "\\u{0}",
    "\\uD800",
    "\u{0}",
    "é",
    "💥",
    "\u{feff}",
    "1e999",
    "-1",
    "nan",
    "inf",
    "-inf",
    "0x10",
    "99999999999999999999",
    "1979-05-27T07:32:00Z",
    "true",
    "[[check]]\n",
    "[[check]]\nname = \"a::b\"\nkind = \"auth_accepted\"\nrequest = { path = \"/x\" }\n",
    "[target]\n",
    "[target]\ntimeout_seconds = -1\n",
    "[target]\nrequests_per_second = 0\n",
    "[jobs]\ndeadline_seconds = 1e308\n",
    "name = 1\n",
    "name = \"a::b\"\n",
    "kind = \"no_such_kind\"\n",
    "level = \"MAYBE\"\n",
    "expect_status = [999]\n",
    "expect_status = \"9xx\"\n",
    "expect_status = []\n",
    "path = \"{job_id}\"\n",
    "path = \"/v1/{unknown}\"\n",
    "path = \"/v1/{\"\n",
    "path = \"/v1/}{\"\n",
    "credential = \"nobody\"\n",
    "method = \"GET\\nX: y\"\n",
    "unknown_field = 1\n",
];

#[derive(Clone, Debug)]
enum Edit {
    Delete { at: f64, len: usize },
    Insert { at: f64, text: String },
    ReplaceChar { at: f64, with: char },
    DuplicateLine { at: f64 },
    Truncate { at: f64 },
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = 0.0f64..1.0;
    prop_oneof![
        (at.clone(), 1..40usize).prop_map(|(at, len)| Edit::Delete { at, len }),
        (
            at.clone(),
            prop_oneof![3 => select(FRAGMENTS).prop_map(str::to_owned), 1 => any::<String>()]
        )
            .prop_map(|(at, text)| Edit::Insert { at, text }),
        (at.clone(), any::<char>()).prop_map(|(at, with)| Edit::ReplaceChar { at, with }),
        at.clone().prop_map(|at| Edit::DuplicateLine { at }),
        at.prop_map(|at| Edit::Truncate { at }),
    ]
}

/// The char boundary nearest to fraction `at` of `text`.
fn boundary(text: &str, at: f64) -> usize {
    let mut index = ((text.len() as f64) * at) as usize;
    index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut text = text.to_string();
    for edit in edits {
        match edit {
            Edit::Delete { at, len } => {
                let start = boundary(&text, *at);
                let mut end = (start + len).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                text.replace_range(start..end, "");
            }
            Edit::Insert { at, text: fragment } => {
                let index = boundary(&text, *at);
                text.insert_str(index, fragment);
            }
            Edit::ReplaceChar { at, with } => {
                let index = boundary(&text, *at);
                if let Some(old) = text[index..].chars().next() {
                    text.replace_range(index..index + old.len_utf8(), &with.to_string());
                }
            }
            Edit::DuplicateLine { at } => {
                let index = boundary(&text, *at);
                let start = text[..index].rfind('\n').map_or(0, |i| i + 1);
                let end = text[index..]
                    .find('\n')
                    .map_or(text.len(), |i| index + i + 1);
                let line = text[start..end].to_string();
                text.insert_str(end, &line);
            }
            Edit::Truncate { at } => {
                let index = boundary(&text, *at);
                text.truncate(index);
            }
        }
    }
    text
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn suite_parse_of_arbitrary_text_is_ok_or_located(text in any::<String>()) {
        parse_is_located(&text)?;
    }

    #[test]
    fn suite_parse_of_fragments_is_ok_or_located(
        parts in prop::collection::vec(select(FRAGMENTS), 0..24),
    ) {
        let text = format!("name = \"x\"\n{}", parts.concat());
        parse_is_located(&text)?;
    }

    #[test]
    fn suite_parse_of_mutated_bundled_suite_is_ok_or_located(
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        parse_is_located(&apply(BUNDLED_SUITE, &edits))?;
    }
}

#[test]
fn the_bundled_suite_parses_unmutated() {
    Suite::parse(BUNDLED_SUITE, source()).expect("the bundled suite parses as x.toml");
}

// ---------------------------------------------------------------- encode_segment, PathTemplate

fn decode(encoded: &str) -> Option<Vec<u8>> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = encoded.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn encode_segment_is_unreserved_or_percent_and_decodes_back(
        value in prop_oneof![any::<String>(), select(INTERESTING).prop_map(str::to_owned), "[ -~]{0,40}"],
    ) {
        let encoded = encode_segment(&value);
        let bytes = encoded.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'%' {
                prop_assert!(
                    i + 2 < bytes.len() && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit(),
                    "`%` not followed by two hex digits at {i} in {encoded}"
                );
                prop_assert!(
                    !bytes[i + 1].is_ascii_lowercase() && !bytes[i + 2].is_ascii_lowercase(),
                    "lower-case hex in {encoded}"
                );
                i += 3;
            } else {
                prop_assert!(
                    b.is_ascii_alphanumeric() || b"-._~".contains(&b),
                    "reserved byte {b:#04x} left unencoded in {encoded}"
                );
                i += 1;
            }
        }
        prop_assert_eq!(decode(&encoded), Some(value.as_bytes().to_vec()));
        // Unreserved text passes through unchanged.
        if value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
            prop_assert_eq!(encoded, value);
        }
    }

    #[test]
    fn path_templates_never_panic(template in any::<String>(), value in any::<String>()) {
        let template = PathTemplate(template);
        let _ = template.placeholders();
        for placeholder in ["job_id", "unknown_job_id", "malformed_id"] {
            let _ = template.uses(placeholder);
            let _ = template.fill(placeholder, &value);
        }
    }

    #[test]
    fn fill_puts_the_encoded_value_in_place(
        prefix in "/v1/[a-z_/]{0,20}",
        suffix in "[a-z_/?=]{0,20}",
        value in any::<String>(),
    ) {
        let template = PathTemplate(format!("{prefix}{{job_id}}{suffix}"));
        prop_assert_eq!(template.placeholders(), vec!["job_id"]);
        let filled = template.fill("job_id", &value);
        prop_assert_eq!(filled.0, format!("{prefix}{}{suffix}", encode_segment(&value)));
    }
}
