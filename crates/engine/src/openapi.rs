//! A published OpenAPI document (3.1, or 3.0 with `nullable`) as a source of response schemas.
//!
//! The document is read by maintained crates (`oas3` for 3.1, `openapiv3` for 3.0), which check
//! its structure and list its operations. A response schema is taken as written, from the
//! operation's response (a `$ref` to `components/responses` followed), and made standalone:
//! the document's `components` ride along inside it, so `#/components/schemas/...` refs resolve
//! in place. Any other ref is left to the schema set's retriever, which never fetches. A 3.0
//! schema is rewritten into the JSON Schema 2020-12 that 3.1 uses (`nullable`, boolean
//! `exclusiveMinimum`/`exclusiveMaximum`).

use serde::Deserialize;
use serde_json::{Map, Value};

/// Which OpenAPI the document is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// 3.0.x: schemas are OpenAPI's own JSON Schema dialect (`nullable`).
    V30,
    /// 3.1.x: schemas are JSON Schema 2020-12.
    V31,
}

/// One operation of the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Upper case (`GET`).
    pub method: String,
    /// As written, with `{placeholders}`.
    pub path: String,
    pub id: Option<String>,
}

impl Operation {
    /// `getJob (GET /v1/jobs/{job_id})`, or the method and path alone.
    pub fn describe(&self) -> String {
        match &self.id {
            Some(id) => format!("{id} ({} {})", self.method, self.path),
            None => format!("{} {}", self.method, self.path),
        }
    }

    /// The names of the path's `{placeholders}`.
    pub fn path_parameters(&self) -> Vec<&str> {
        self.path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect()
    }
}

/// What a suite names a schema by: an operation's response, or a component.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// The operation's `operationId`.
    pub operation: Option<String>,
    /// With `path`, the operation by method and path (when it has no id).
    pub method: Option<String>,
    pub path: Option<String>,
    /// The response's key in `responses`: `200`, `2XX`, `default`.
    #[serde(default = "success_status")]
    pub status: String,
    /// Instead of an operation: `components/schemas/<name>`.
    pub component: Option<String>,
}

fn success_status() -> String {
    "200".into()
}

/// A document, read and listed.
pub struct Document {
    raw: Value,
    pub version: Version,
    pub operations: Vec<Operation>,
}

impl Document {
    /// Read `text`, JSON or YAML. The error says where the document is wrong.
    pub fn parse(text: &str) -> Result<Document, String> {
        let raw: Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(text)
                .map_err(|e| format!("not JSON at line {} column {}: {e}", e.line(), e.column()))?
        } else {
            yaml_serde::from_str(text).map_err(|e| match e.location() {
                Some(at) => format!(
                    "neither JSON nor YAML: at line {} column {}: {e}",
                    at.line(),
                    at.column()
                ),
                None => format!("neither JSON nor YAML: {e}"),
            })?
        };
        let declared = raw.get("openapi").and_then(Value::as_str).unwrap_or("");
        let structure =
            |e: serde_json::Error| format!("not a valid OpenAPI {declared} document: {e}");
        let (version, operations) = if declared.starts_with("3.1.") {
            let spec: oas3::Spec = serde_json::from_value(raw.clone()).map_err(structure)?;
            let operations = spec
                .operations()
                .map(|(path, method, op)| Operation {
                    method: method.as_str().to_ascii_uppercase(),
                    path,
                    id: op.operation_id.clone(),
                })
                .collect();
            (Version::V31, operations)
        } else if declared.starts_with("3.0.") {
            let spec: openapiv3::OpenAPI =
                serde_json::from_value(raw.clone()).map_err(structure)?;
            let mut operations = Vec::new();
            for (path, item) in spec.paths.iter() {
                let Some(item) = item.as_item() else {
                    return Err(format!(
                        "path `{path}` is a $ref; only operations written in place are read"
                    ));
                };
                for (method, op) in item.iter() {
                    operations.push(Operation {
                        method: method.to_ascii_uppercase(),
                        path: path.clone(),
                        id: op.operation_id.clone(),
                    });
                }
            }
            (Version::V30, operations)
        } else {
            return Err(format!(
                "`openapi` is `{declared}`: only OpenAPI 3.0.x and 3.1.x documents are read"
            ));
        };
        Ok(Document {
            raw,
            version,
            operations,
        })
    }

    /// The operation `selector` names, or why there is none.
    pub fn operation(&self, selector: &Selector) -> Result<&Operation, String> {
        let found = match (&selector.operation, &selector.method, &selector.path) {
            (Some(id), None, None) => self
                .operations
                .iter()
                .find(|op| op.id.as_deref() == Some(id.as_str())),
            (None, Some(method), Some(path)) => self
                .operations
                .iter()
                .find(|op| op.method.eq_ignore_ascii_case(method) && op.path == *path),
            _ => {
                return Err(
                    "name the operation by `operation` (its operationId) or by `method` and `path`, or name a `component`"
                        .into(),
                )
            }
        };
        found.ok_or_else(|| {
            let known: Vec<String> = self.operations.iter().map(Operation::describe).collect();
            format!(
                "the document has no such operation (it has: {})",
                known.join(", ")
            )
        })
    }

    /// The standalone JSON Schema `selector` names.
    pub fn schema(&self, selector: &Selector) -> Result<Value, String> {
        let schema = match &selector.component {
            Some(name) if selector.operation.is_none() && selector.method.is_none() => self
                .raw
                .pointer(&format!("/components/schemas/{}", escape(name)))
                .cloned()
                .ok_or_else(|| format!("the document has no `components/schemas/{name}`"))?,
            Some(_) => return Err("name either a `component` or an operation, not both".into()),
            None => {
                let operation = self.operation(selector)?;
                self.response_schema(operation, &selector.status)?
            }
        };
        Ok(self.standalone(schema))
    }

    /// The JSON schema of `operation`'s response `status`, as written.
    fn response_schema(&self, operation: &Operation, status: &str) -> Result<Value, String> {
        let responses = self
            .raw
            .pointer(&format!(
                "/paths/{}/{}/responses",
                escape(&operation.path),
                operation.method.to_ascii_lowercase()
            ))
            .ok_or_else(|| format!("{} documents no responses", operation.describe()))?;
        let mut response = responses.get(status).ok_or_else(|| {
            let keys: Vec<&str> = responses
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            format!(
                "{} documents no response `{status}` (it documents: {})",
                operation.describe(),
                keys.join(", ")
            )
        })?;
        // A response may be a $ref to components/responses; follow a few, never a loop.
        for _ in 0..8 {
            let Some(target) = response.get("$ref").and_then(Value::as_str) else {
                break;
            };
            response = target
                .strip_prefix('#')
                .and_then(|pointer| self.raw.pointer(pointer))
                .ok_or_else(|| format!("response `{status}` refers to `{target}`, which is not in the document (refs are resolved locally only)"))?;
        }
        let content = response
            .get("content")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                format!(
                    "{} response `{status}` has no content",
                    operation.describe()
                )
            })?;
        let json = content
            .iter()
            .find(|(media, _)| media.starts_with("application/json"))
            .or_else(|| content.iter().find(|(media, _)| media.contains("+json")))
            .ok_or_else(|| {
                format!(
                    "{} response `{status}` has no JSON content",
                    operation.describe()
                )
            })?;
        json.1.get("schema").cloned().ok_or_else(|| {
            format!(
                "{} response `{status}` ({}) has no schema",
                operation.describe(),
                json.0
            )
        })
    }

    /// `schema` with the document's components inside it, so its local refs resolve, in the
    /// JSON Schema 2020-12 a validator reads.
    fn standalone(&self, schema: Value) -> Value {
        let mut root = match schema {
            Value::Object(object) => object,
            other => {
                let mut wrapper = Map::new();
                wrapper.insert("allOf".into(), Value::Array(vec![other]));
                wrapper
            }
        };
        if let Some(components) = self.raw.get("components") {
            root.insert("components".into(), components.clone());
        }
        let mut root = Value::Object(root);
        if self.version == Version::V30 {
            from_openapi_30(&mut root);
        }
        if let Value::Object(object) = &mut root {
            object.insert(
                "$schema".into(),
                Value::String("https://json-schema.org/draft/2020-12/schema".into()),
            );
        }
        root
    }
}

impl Document {
    /// The raw operation object.
    fn operation_object(&self, operation: &Operation) -> Option<&Value> {
        self.raw.pointer(&format!(
            "/paths/{}/{}",
            escape(&operation.path),
            operation.method.to_ascii_lowercase()
        ))
    }

    /// Each response key `operation` documents, and whether it gives a JSON schema.
    pub fn documented_responses(&self, operation: &Operation) -> Vec<(String, bool)> {
        let keys: Vec<String> = self
            .operation_object(operation)
            .and_then(|op| op.get("responses"))
            .and_then(Value::as_object)
            .map(|responses| responses.keys().cloned().collect())
            .unwrap_or_default();
        keys.into_iter()
            .map(|key| {
                let has_schema = self.response_schema(operation, &key).is_ok();
                (key, has_schema)
            })
            .collect()
    }

    /// Whether `operation` asks for credentials: its own `security`, else the document's;
    /// an empty requirement (`{}`) among them makes them optional.
    pub fn secured(&self, operation: &Operation) -> bool {
        let requirements = self
            .operation_object(operation)
            .and_then(|op| op.get("security"))
            .or_else(|| self.raw.get("security"))
            .and_then(Value::as_array);
        requirements.is_some_and(|list| {
            !list.is_empty()
                && list
                    .iter()
                    .all(|r| r.as_object().is_some_and(|o| !o.is_empty()))
        })
    }

    /// The header a key goes in and what precedes it, from the first security scheme that is
    /// an API key in a header or HTTP bearer auth.
    pub fn key_header(&self) -> Option<(String, String)> {
        let schemes = self
            .raw
            .pointer("/components/securitySchemes")?
            .as_object()?;
        schemes.values().find_map(|scheme| {
            match (
                scheme.get("type").and_then(Value::as_str),
                scheme.get("in").and_then(Value::as_str),
                scheme.get("scheme").and_then(Value::as_str),
            ) {
                (Some("apiKey"), Some("header"), _) => scheme
                    .get("name")
                    .and_then(Value::as_str)
                    .map(|name| (name.to_owned(), String::new())),
                (Some("http"), _, Some(s)) if s.eq_ignore_ascii_case("bearer") => {
                    Some(("Authorization".into(), "Bearer ".into()))
                }
                _ => None,
            }
        })
    }
}

/// A suite made from a document alone (`apiconform --openapi`): for every GET operation whose
/// path parameters are all given in `params`, its reply with the key is a documented 2xx that
/// matches its schema, a secured one refuses a request without a key with a documented 401
/// or 403, and every reply carries a request id. Also says, for each operation left out,
/// why.
pub fn generated_suite(
    document_text: &str,
    origin: &str,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<(crate::suite::Suite, Vec<String>), crate::error::AppError> {
    use toml::{Table, Value as T};
    let document = Document::parse(document_text)
        .map_err(|why| crate::error::config_error(format!("OpenAPI document {origin}: {why}")))?;
    let mut schemas = Table::new();
    let mut checks = Vec::new();
    let mut exercised = Vec::new();
    let mut left_out = Vec::new();
    for operation in &document.operations {
        if operation.method != "GET" {
            left_out.push(format!(
                "{} not exercised: only GET operations are sent without a hand-written suite",
                operation.describe()
            ));
            continue;
        }
        let missing: Vec<&str> = operation
            .path_parameters()
            .into_iter()
            .filter(|p| !params.contains_key(*p))
            .collect();
        if !missing.is_empty() {
            let flags: Vec<String> = missing.iter().map(|p| format!("--param {p}=...")).collect();
            left_out.push(format!(
                "{} not exercised: it needs {}",
                operation.describe(),
                flags.join(" ")
            ));
            continue;
        }
        let path = params
            .iter()
            .fold(operation.path.clone(), |path, (name, value)| {
                path.replace(&format!("{{{name}}}"), &crate::suite::encode_segment(value))
            });
        let name = check_name(operation);
        let mut responses = Table::new();
        for (status, has_schema) in document.documented_responses(operation) {
            let schema_name = if has_schema {
                let schema_name = format!("{name}.{status}");
                let mut selector = Table::new();
                selector.insert("method".into(), T::String(operation.method.clone()));
                selector.insert("path".into(), T::String(operation.path.clone()));
                selector.insert("status".into(), T::String(status.clone()));
                schemas.insert(schema_name.clone(), T::Table(selector));
                schema_name
            } else {
                String::new()
            };
            responses.insert(status, T::String(schema_name));
        }
        let request = |credential: &str| {
            let mut request = Table::new();
            request.insert("path".into(), T::String(path.clone()));
            request.insert("credential".into(), T::String(credential.into()));
            T::Table(request)
        };
        let check = |suffix: &str, credential: &str, expect: T| {
            let mut check = Table::new();
            check.insert(
                "name".into(),
                T::String(format!("openapi::{name}::{suffix}")),
            );
            check.insert("level".into(), T::String("MUST".into()));
            check.insert("kind".into(), T::String("documented_response".into()));
            check.insert("request".into(), request(credential));
            check.insert("operation".into(), T::String(operation.describe()));
            check.insert("responses".into(), T::Table(responses.clone()));
            check.insert("expect_status".into(), expect);
            T::Table(check)
        };
        checks.push(check("response", "valid", T::String("2xx".into())));
        if document.secured(operation) {
            checks.push(check(
                "without_key",
                "missing",
                T::Array(vec![T::Integer(401), T::Integer(403)]),
            ));
        }
        exercised.push(request("valid"));
    }
    if exercised.is_empty() {
        return Err(crate::error::config_error(format!(
            "OpenAPI document {origin}: no operation can be exercised: {}",
            left_out.join("; ")
        )));
    }
    let mut request_ids = Table::new();
    request_ids.insert("name".into(), T::String("openapi::request_ids".into()));
    request_ids.insert("level".into(), T::String("SHOULD".into()));
    request_ids.insert("kind".into(), T::String("request_id_header".into()));
    request_ids.insert("requests".into(), T::Array(exercised.clone()));
    checks.push(T::Table(request_ids));

    let mut suite = Table::new();
    let title = document
        .raw
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or(origin);
    suite.insert("name".into(), T::String(format!("openapi: {title}")));
    let mut target = Table::new();
    // Any HTTP answer tells the target is up: the first path the run reads anyway.
    if let Some(T::String(first)) = exercised[0].get("path") {
        target.insert("probe_path".into(), T::String(first.clone()));
    }
    suite.insert("target".into(), T::Table(target));
    if let Some((header, prefix)) = document.key_header() {
        let mut auth = Table::new();
        auth.insert("header".into(), T::String(header));
        auth.insert("prefix".into(), T::String(prefix));
        suite.insert("auth".into(), T::Table(auth));
    }
    let mut openapi = Table::new();
    openapi.insert("document".into(), T::String(origin.into()));
    openapi.insert("schemas".into(), T::Table(schemas));
    suite.insert("openapi".into(), T::Table(openapi));
    suite.insert("check".into(), T::Array(checks));
    let text = toml::to_string(&suite).map_err(|e| {
        crate::error::config_error(format!("cannot write the suite for {origin}: {e}"))
    })?;
    let source = crate::suite::SuiteSource::Generated {
        origin: origin.into(),
        document: document_text.into(),
    };
    let suite = crate::suite::Suite::parse(&text, source)?;
    let notices = left_out
        .into_iter()
        .map(|line| format!("openapi: {line}"))
        .collect();
    Ok((suite, notices))
}

/// Fetch a published document from `url` (without the key, redirects not followed, at most
/// 16 MiB). No answer at all is an unreachable target; a non-2xx or an oversize or non-UTF-8
/// body is a usage error.
pub async fn fetch(
    url: &str,
    tls: &crate::tls::TlsOptions,
) -> Result<String, crate::error::AppError> {
    use crate::error::{config_error, AppError};
    const MAX_BYTES: usize = 16 << 20;
    let unreachable = |e: reqwest::Error| AppError::Unreachable {
        url: url.to_owned(),
        cause: crate::client::error_chain(&e),
    };
    let client = tls
        .apply(reqwest::Client::builder(), true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(30))
        .user_agent(concat!("apiconform/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| config_error(format!("cannot build the HTTP client: {e}")))?;
    let response = client.get(url).send().await.map_err(unreachable)?;
    let status = response.status();
    if !status.is_success() {
        return Err(config_error(format!(
            "--openapi {url}: answered {status}, not the document"
        )));
    }
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BYTES {
            return Err(config_error(format!(
                "--openapi {url}: the document is over {} MiB",
                MAX_BYTES >> 20
            )));
        }
    }
    String::from_utf8(body)
        .map_err(|_| config_error(format!("--openapi {url}: the document is not UTF-8")))
}

/// A check name segment for `operation`: its id, or its method and path, in the characters
/// a filter can type.
fn check_name(operation: &Operation) -> String {
    let raw = match &operation.id {
        Some(id) => id.clone(),
        None => format!(
            "{}_{}",
            operation.method.to_ascii_lowercase(),
            operation.path
        ),
    };
    let mut name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    name.trim_matches('_').to_owned()
}

/// A JSON pointer segment for `key` (`/` and `~` escaped).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Rewrite OpenAPI 3.0's schema dialect into JSON Schema 2020-12, everywhere in `value`:
/// `nullable: true` lets null through, boolean `exclusiveMinimum`/`exclusiveMaximum` become
/// the numbers they qualify.
pub fn from_openapi_30(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(from_openapi_30),
        Value::Object(object) => {
            for child in object.values_mut() {
                from_openapi_30(child);
            }
            for (flag, bound) in [
                ("exclusiveMinimum", "minimum"),
                ("exclusiveMaximum", "maximum"),
            ] {
                if let Some(Value::Bool(exclusive)) = object.get(flag).cloned() {
                    object.remove(flag);
                    if exclusive {
                        if let Some(limit) = object.remove(bound) {
                            object.insert(flag.into(), limit);
                        }
                    }
                }
            }
            if object.remove("nullable") == Some(Value::Bool(true)) {
                allow_null(object);
            }
        }
        _ => {}
    }
}

/// Let a schema object also accept null.
fn allow_null(object: &mut Map<String, Value>) {
    if let Some(Value::Array(values)) = object.get_mut("enum") {
        if !values.contains(&Value::Null) {
            values.push(Value::Null);
        }
    }
    match object.get_mut("type") {
        Some(Value::String(single)) => {
            let single = std::mem::take(single);
            object.insert("type".into(), serde_json::json!([single, "null"]));
        }
        Some(Value::Array(types)) => {
            if !types.contains(&Value::from("null")) {
                types.push(Value::from("null"));
            }
        }
        _ => {
            // No type to widen (a $ref, an allOf): null, or the schema as it was.
            let original = Value::Object(std::mem::take(object));
            object.insert(
                "anyOf".into(),
                serde_json::json!([{"type": "null"}, original]),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The same small document, its nullable field and exclusive bound written as `version`
    /// writes them.
    fn document(version: &str) -> String {
        let (error, progress) = if version.starts_with("3.0") {
            (
                json!({"type": "string", "nullable": true}),
                json!({"type": "number", "minimum": 0, "exclusiveMinimum": true}),
            )
        } else {
            (
                json!({"type": ["string", "null"]}),
                json!({"type": "number", "exclusiveMinimum": 0}),
            )
        };
        json!({
            "openapi": version,
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/v1/jobs/{job_id}": {"get": {
                    "operationId": "getJob",
                    "responses": {
                        "200": {"description": "the job", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
                        "404": {"$ref": "#/components/responses/NotFound"}
                    }
                }}
            },
            "components": {
                "schemas": {
                    "Job": {"type": "object", "required": ["id"], "properties": {
                        "id": {"type": "string"},
                        "error": error,
                        "progress": progress
                    }},
                    "Error": {"type": "object", "required": ["error"]}
                },
                "responses": {"NotFound": {"description": "no", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
            }
        })
        .to_string()
    }

    fn by_id(id: &str, status: &str) -> Selector {
        Selector {
            operation: Some(id.into()),
            method: None,
            path: None,
            status: status.into(),
            component: None,
        }
    }

    fn valid(schema: &Value, instance: &Value) -> bool {
        jsonschema::validator_for(schema)
            .unwrap()
            .is_valid(instance)
    }

    #[test]
    fn a_response_schema_resolves_its_refs_in_place() {
        let doc = Document::parse(&document("3.1.0")).unwrap();
        assert_eq!(doc.version, Version::V31);
        assert_eq!(
            doc.operations[0].describe(),
            "getJob (GET /v1/jobs/{job_id})"
        );
        assert_eq!(doc.operations[0].path_parameters(), ["job_id"]);
        let job = doc.schema(&by_id("getJob", "200")).unwrap();
        assert!(valid(&job, &json!({"id": "j1"})));
        assert!(!valid(&job, &json!({"id": 7})));
        // Through components/responses, and a +json media type.
        let not_found = doc.schema(&by_id("getJob", "404")).unwrap();
        assert!(!valid(&not_found, &json!({"detail": "x"})));
        assert!(valid(&not_found, &json!({"error": {}})));
    }

    #[test]
    fn a_yaml_document_reads_as_its_json_does() {
        let json: Value = serde_json::from_str(&document("3.1.0")).unwrap();
        let yaml = yaml_serde::to_string(&json).unwrap();
        let doc = Document::parse(&yaml).unwrap();
        let job = doc.schema(&by_id("getJob", "200")).unwrap();
        assert!(valid(&job, &json!({"id": "j1"})));
        assert!(!valid(&job, &json!({"id": 7})));
    }

    #[test]
    fn openapi_30_nullable_and_boolean_bounds_become_2020_12() {
        for version in ["3.0.3", "3.1.0"] {
            let doc = Document::parse(&document(version)).unwrap();
            let job = doc.schema(&by_id("getJob", "200")).unwrap();
            assert!(valid(&job, &json!({"id": "j", "error": null})), "{version}");
            assert!(!valid(&job, &json!({"id": "j", "error": 3})), "{version}");
            assert!(
                !valid(&job, &json!({"id": "j", "progress": 0})),
                "{version}"
            );
            assert!(
                valid(&job, &json!({"id": "j", "progress": 0.5})),
                "{version}"
            );
        }
        let doc = Document::parse(&document("3.0.3")).unwrap();
        assert_eq!(doc.version, Version::V30);
        let job = doc.schema(&by_id("getJob", "200")).unwrap();
        assert!(valid(&job, &json!({"id": "j", "error": null})));
        assert!(!valid(&job, &json!({"id": "j", "error": 3})));
        assert!(!valid(&job, &json!({"id": "j", "progress": 0})));
        assert!(valid(&job, &json!({"id": "j", "progress": 0.5})));
    }

    #[test]
    fn what_is_missing_is_said_with_what_there_is() {
        let doc = Document::parse(&document("3.1.0")).unwrap();
        let err = doc.schema(&by_id("listJobs", "200")).unwrap_err();
        assert!(err.contains("getJob (GET /v1/jobs/{job_id})"), "{err}");
        let err = doc.schema(&by_id("getJob", "201")).unwrap_err();
        assert!(
            err.contains("documents no response `201`") && err.contains("200, 404"),
            "{err}"
        );
        let component = Selector {
            component: Some("Nope".into()),
            ..by_id("x", "200")
        };
        assert!(doc.schema(&component).unwrap_err().contains("not both"));
        let err = Document::parse("openapi: [unclosed").err().unwrap();
        assert!(err.starts_with("neither JSON nor YAML: at line "), "{err}");
        let err = Document::parse(r#"{"openapi": "2.0"}"#).err().unwrap();
        assert!(err.contains("only OpenAPI 3.0.x and 3.1.x"), "{err}");
        let err = Document::parse(r#"{"openapi": "3.1.0"}"#).err().unwrap();
        assert!(err.contains("not a valid OpenAPI 3.1.0 document"), "{err}");
    }
}
