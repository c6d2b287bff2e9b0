//! The documented response schemas ([`SchemaSet`]), compiled once per run.
//!
//! Schemas are JSON Schema draft 2020-12 with `format` validation on (jsonschema skips
//! `format` unless asked). A schema may `$ref` another of the suite's schemas by its `$id`;
//! nothing is ever fetched from the network.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::error::{config_error, AppError};
use crate::suite::Suite;

/// One way a document broke a schema: where, which rule, and the value seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the document (`/progress`), empty for the root.
    pub path: String,
    /// The schema keyword that failed (`type`, `format`, `required`, ...).
    pub rule: String,
    /// The validator's own sentence, which quotes the value.
    pub detail: String,
    /// The value at `path` that broke the rule.
    pub value: Value,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "(root)"
        } else {
            &self.path
        };
        write!(f, "at {path}: {} (rule `{}`)", self.detail, self.rule)
    }
}

/// The suite's schemas, by the name the suite gives them.
#[derive(Default)]
pub struct SchemaSet {
    validators: HashMap<String, jsonschema::Validator>,
    /// The schema documents themselves, by name and by `$id`, for [`SchemaSet::drift`].
    documents: HashMap<String, Value>,
    by_id: HashMap<String, Value>,
}

/// A field a live response carries that its schema does not declare (and, by allowing extra
/// fields, does not forbid): the provider changed its API ahead of its documentation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Drift {
    /// JSON pointer of the field in the response (`/meta`), with `*` for every item of an
    /// array (`/jobs/*/meta`): one drift, however many items show it.
    pub path: String,
}

/// How deep [`SchemaSet::drift`] follows a schema: a recursive one stops here.
const DRIFT_DEPTH: usize = 24;

/// The suite's schema documents, read and parsed, by name: (path or origin, document).
type Documents = BTreeMap<String, (String, Value)>;

/// Every schema document the suite names, read and parsed as JSON, and those it takes from
/// its OpenAPI document.
fn read_documents(suite: &Suite) -> Result<Documents, AppError> {
    let mut documents = BTreeMap::new();
    for (name, path) in &suite.schemas {
        let text = suite.source.read_relative(path)?;
        let document: Value = serde_json::from_str(&text).map_err(|e| {
            config_error(format!(
                "schema `{name}` ({path}, from {}): invalid JSON at line {} column {}: {e}",
                suite.source.display(),
                e.line(),
                e.column()
            ))
        })?;
        documents.insert(name.clone(), (path.clone(), document));
    }
    for (name, derived) in &suite.openapi_schemas {
        documents.insert(
            name.clone(),
            (derived.origin.clone(), derived.schema.clone()),
        );
    }
    Ok(documents)
}

impl SchemaSet {
    /// Read and compile every schema the suite names. Any failure is a configuration error.
    pub fn load(suite: &Suite) -> Result<SchemaSet, AppError> {
        let documents = read_documents(suite)?;
        let retriever =
            LocalRetriever::new(documents.values().map(|(path, doc)| (path.as_str(), doc)));
        let mut validators = HashMap::new();
        for (name, (path, document)) in &documents {
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .with_retriever(retriever.clone())
                .build(document)
                .map_err(|e| {
                    config_error(format!(
                        "schema `{name}` ({path}, from {}) does not compile: {e}",
                        suite.source.display()
                    ))
                })?;
            validators.insert(name.clone(), validator);
        }
        let by_id = documents
            .values()
            .filter_map(|(_, doc)| {
                let id = doc.get("$id")?.as_str()?;
                Some((id.to_string(), doc.clone()))
            })
            .collect();
        let documents = documents
            .into_iter()
            .map(|(name, (_, doc))| (name, doc))
            .collect();
        Ok(SchemaSet {
            validators,
            documents,
            by_id,
        })
    }

    /// Read and parse every schema the suite names, compiling none: what `--list` needs. A
    /// missing file or one that is not JSON is still a configuration error; a schema that does
    /// not compile is refused by the run that uses it ([`Self::load`]). The set is empty.
    pub fn read_only(suite: &Suite) -> Result<SchemaSet, AppError> {
        read_documents(suite)?;
        Ok(SchemaSet::default())
    }

    /// Fields of `document` that schema `name` does not declare, where it declares the fields
    /// of that object (an object the schema leaves open, with no `properties` and no
    /// `additionalProperties`, has none to compare with).
    pub fn drift(&self, name: &str, document: &Value) -> Vec<Drift> {
        let Some(schema) = self.documents.get(name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        self.undeclared(schema, &[schema], document, String::new(), 0, &mut out);
        out.sort();
        out.dedup();
        out
    }

    /// The subschemas `schema` applies to the same value: itself, its `$ref`, and the
    /// branches of `allOf`, `anyOf`, `oneOf`, `then` and `else`, each with the document it is
    /// in (a `#` ref resolves in it).
    fn branches<'s>(
        &'s self,
        root: &'s Value,
        schema: &'s Value,
        depth: usize,
        out: &mut Vec<(&'s Value, &'s Value)>,
    ) {
        if depth > DRIFT_DEPTH {
            return;
        }
        out.push((root, schema));
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            let (base, pointer) = target.split_once('#').unwrap_or((target, ""));
            let doc = if base.is_empty() {
                Some(root)
            } else {
                self.by_id.get(base)
            };
            if let Some((doc, resolved)) = doc.and_then(|doc| Some((doc, doc.pointer(pointer)?))) {
                self.branches(doc, resolved, depth + 1, out);
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            for branch in schema
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.branches(root, branch, depth + 1, out);
            }
        }
        for key in ["then", "else"] {
            if let Some(branch) = schema.get(key) {
                self.branches(root, branch, depth + 1, out);
            }
        }
    }

    fn undeclared(
        &self,
        root: &Value,
        schemas: &[&Value],
        value: &Value,
        path: String,
        depth: usize,
        out: &mut Vec<Drift>,
    ) {
        if depth > DRIFT_DEPTH {
            return;
        }
        let mut branches = Vec::new();
        for schema in schemas {
            self.branches(root, schema, depth, &mut branches);
        }
        match value {
            Value::Object(object) => {
                let declares = |key: &str| branches.iter().any(|(_, s)| s.get(key).is_some());
                // Extra fields are then the schema's own business (forbidden or typed).
                if declares("additionalProperties")
                    || declares("patternProperties")
                    || declares("unevaluatedProperties")
                    || !declares("properties")
                {
                    return;
                }
                for (key, child) in object {
                    let declared: Vec<(&Value, &Value)> = branches
                        .iter()
                        .filter_map(|(r, s)| Some((*r, s.get("properties")?.get(key)?)))
                        .collect();
                    let child_path =
                        format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                    if declared.is_empty() {
                        out.push(Drift { path: child_path });
                        continue;
                    }
                    for (r, s) in declared {
                        self.undeclared(r, &[s], child, child_path.clone(), depth + 1, out);
                    }
                }
            }
            Value::Array(items) => {
                for (r, s) in &branches {
                    if let Some(item_schema) = s.get("items") {
                        for item in items {
                            self.undeclared(
                                r,
                                &[item_schema],
                                item,
                                format!("{path}/*"),
                                depth + 1,
                                out,
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.validators.contains_key(name)
    }

    /// Every violation of schema `name` by `document` (empty when valid).
    ///
    /// Panics only if `name` is unknown, which suite validation rules out before any check runs.
    pub fn violations(&self, name: &str, document: &Value) -> Vec<Violation> {
        let validator = self.validators.get(name).unwrap_or_else(|| {
            panic!("schema `{name}` was not loaded; suite validation should have refused it")
        });
        validator
            .iter_errors(document)
            .map(|error| Violation {
                path: error.instance_path().as_str().to_string(),
                rule: error.kind().keyword().to_string(),
                detail: error.to_string(),
                value: error.instance().clone().into_owned(),
            })
            .collect()
    }
}

/// Resolves `$ref`s to the suite's own schemas, by `$id` or by file name; never the network.
#[derive(Clone)]
struct LocalRetriever {
    by_uri: Arc<HashMap<String, Value>>,
}

impl LocalRetriever {
    fn new<'a>(documents: impl Iterator<Item = (&'a str, &'a Value)>) -> LocalRetriever {
        let mut by_uri = HashMap::new();
        for (path, document) in documents {
            if let Some(id) = document.get("$id").and_then(Value::as_str) {
                by_uri.insert(id.to_string(), document.clone());
            }
            let file_name = path.rsplit('/').next().unwrap_or(path);
            by_uri.insert(file_name.to_string(), document.clone());
        }
        LocalRetriever {
            by_uri: Arc::new(by_uri),
        }
    }
}

impl jsonschema::Retrieve for LocalRetriever {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let wanted = uri.as_str();
        let file_name = wanted.rsplit('/').next().unwrap_or(wanted);
        self.by_uri
            .get(wanted)
            .or_else(|| self.by_uri.get(file_name))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "`{wanted}` is not one of the suite's schemas (refs are resolved locally only)"
                )
                .into()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn job_schema_names_path_rule_and_value() {
        let suite = Suite::load(None).unwrap();
        let schemas = SchemaSet::load(&suite).unwrap();
        let job = json!({
            "id": "job_1", "status": "processing", "progress": "50", "output_url": null,
            "error": null, "created_at": "27/11/2026 12:00:00"
        });
        let violations = schemas.violations("job", &job);
        let progress = violations
            .iter()
            .find(|v| v.path == "/progress")
            .expect("progress flagged");
        assert_eq!(progress.rule, "type");
        assert!(progress.detail.contains("\"50\""), "{progress}");
        assert!(violations
            .iter()
            .any(|v| v.path == "/created_at" && v.rule == "format"));
    }

    /// A job object as the contract documents it, every field present.
    fn conforming_job() -> Value {
        json!({
            "id": "job_1", "status": "completed", "progress": 100,
            "output_url": "https://cdn.example.com/job_1.webm", "error": null,
            "created_at": "2026-11-27T12:00:00Z", "duration_seconds": 12.5,
            "billing_status": "charged"
        })
    }

    fn bundled() -> SchemaSet {
        SchemaSet::load(&Suite::load(None).unwrap()).unwrap()
    }

    /// The `required` violation naming `field`, if any.
    fn missing<'v>(violations: &'v [Violation], field: &str) -> Option<&'v Violation> {
        violations
            .iter()
            .find(|v| v.rule == "required" && v.detail.contains(&format!("\"{field}\"")))
    }

    #[test]
    fn job_schema_requires_every_documented_field() {
        let schemas = bundled();
        assert!(schemas.violations("job", &conforming_job()).is_empty());
        for field in [
            "id",
            "status",
            "progress",
            "output_url",
            "error",
            "created_at",
            "duration_seconds",
            "billing_status",
        ] {
            let mut job = conforming_job();
            job.as_object_mut().unwrap().remove(field);
            let violations = schemas.violations("job", &job);
            let found = missing(&violations, field)
                .unwrap_or_else(|| panic!("a job without `{field}` passed: {violations:?}"));
            assert_eq!(found.path, "", "{found}");
            assert!(found.to_string().contains(field), "{found}");
            // A job list holding that job is refused too, at the job's own path.
            let violations = schemas.violations("job_list", &json!({ "jobs": [job] }));
            assert!(
                violations
                    .iter()
                    .any(|v| v.path == "/jobs/0" && v.detail.contains(field)),
                "{violations:?}"
            );
        }
    }

    #[test]
    fn job_schema_accepts_what_the_contract_leaves_open() {
        let schemas = bundled();
        let variants = [
            // Offset timestamp with milliseconds, the other pre-processing name, nulls.
            json!({
                "id": "job_2", "status": "created", "progress": 0, "output_url": null,
                "error": null, "created_at": "2026-11-27T12:00:00.123+00:00",
                "duration_seconds": null, "billing_status": null
            }),
            // Fractional progress, microseconds with Z, webhook fields present and null.
            json!({
                "id": "job_3", "status": "processing", "progress": 42.5, "output_url": null,
                "error": null, "created_at": "2026-11-27T12:00:00.123456Z",
                "duration_seconds": 0, "billing_status": "pending",
                "webhook_url": null, "webhook_events": null
            }),
            // Failed, with undocumented extra fields and webhook delivery states.
            json!({
                "id": "job_4", "status": "failed", "progress": 10, "output_url": null,
                "error": "Could not decode the video", "created_at": "2026-11-27T12:00:00+00:00",
                "duration_seconds": 3, "billing_status": "refunded",
                "model": "pro", "metadata": { "order": 7 },
                "webhook_url": "https://hooks.example.com/x",
                "webhook_events": { "job.started": "sent", "job.failed": "failed" }
            }),
            json!({
                "id": "job_5", "status": "pending", "progress": 0, "output_url": null,
                "error": null, "created_at": "2026-11-27T12:00:00Z",
                "duration_seconds": null, "billing_status": null,
                "webhook_events": [{ "event": "job.started", "status": "sent" }]
            }),
            conforming_job(),
        ];
        for job in &variants {
            let violations = schemas.violations("job", job);
            assert!(violations.is_empty(), "{job}: {violations:?}");
        }
        let page = json!({ "jobs": variants, "total": 5, "limit": 10, "offset": 0 });
        assert!(schemas.violations("job_list", &page).is_empty());
        let bare = Value::Array(variants.to_vec());
        assert!(schemas.violations("job_list", &bare).is_empty());
    }

    #[test]
    fn create_and_start_replies_require_every_documented_field() {
        let schemas = bundled();
        let replies = [
            (
                "create_reply",
                json!({"success": true, "id": "job_1", "status": "pending", "message": "Job created"}),
            ),
            (
                "start_reply",
                json!({"success": true, "id": "job_1", "status": "processing", "message": "Job started"}),
            ),
        ];
        for (schema, reply) in replies {
            assert!(schemas.violations(schema, &reply).is_empty(), "{schema}");
            for field in ["success", "id", "status", "message"] {
                let mut partial = reply.clone();
                partial.as_object_mut().unwrap().remove(field);
                let violations = schemas.violations(schema, &partial);
                assert!(
                    missing(&violations, field).is_some(),
                    "{schema} without `{field}` passed: {violations:?}"
                );
            }
        }
    }

    #[test]
    fn create_reply_accepts_every_documented_status_and_extra_fields() {
        let schemas = bundled();
        for status in ["pending", "created", "processing"] {
            let reply = json!({
                "success": true, "id": "job_1", "status": status, "message": "ok",
                "credits_reserved": 60
            });
            let violations = schemas.violations("create_reply", &reply);
            assert!(violations.is_empty(), "{reply}: {violations:?}");
        }
        let queued = json!({"success": true, "id": "job_1", "status": "queued", "message": "ok"});
        assert!(!schemas.violations("create_reply", &queued).is_empty());
        let started = json!({"success": true, "id": "job_1", "status": "pending", "message": "ok"});
        assert!(!schemas.violations("start_reply", &started).is_empty());
    }

    #[test]
    fn error_schema_requires_code_message_and_request_id() {
        let schemas = bundled();
        let envelope = json!({"error": {
            "code": "job_not_found", "message": "Job not found", "request_id": "req_1"
        }, "success": false});
        assert!(schemas.violations("error", &envelope).is_empty());
        for field in ["code", "message", "request_id"] {
            let mut partial = envelope.clone();
            partial["error"].as_object_mut().unwrap().remove(field);
            let violations = schemas.violations("error", &partial);
            assert!(
                violations.iter().any(|v| v.path == "/error"
                    && v.rule == "required"
                    && v.detail.contains(field)),
                "{violations:?}"
            );
        }
        let flat = json!({"error": "Job not found"});
        assert!(!schemas.violations("error", &flat).is_empty());
    }

    #[test]
    fn list_schema_resolves_job_ref_locally() {
        let suite = Suite::load(None).unwrap();
        let schemas = SchemaSet::load(&suite).unwrap();
        let page = json!({"jobs": [{"id": 5}], "total": 1, "limit": 10, "offset": 0});
        let violations = schemas.violations("job_list", &page);
        assert!(
            violations.iter().any(|v| v.path.starts_with("/jobs/0")),
            "{violations:?}"
        );
        // A bare array of jobs is a page too; its violations keep their paths.
        let violations = schemas.violations("job_list", &json!([{"id": 5}]));
        assert!(
            violations.iter().any(|v| v.path.starts_with("/0")),
            "{violations:?}"
        );
        let violations = schemas.violations("job_list", &json!({"items": []}));
        assert!(
            violations.iter().any(|v| v.rule == "required"),
            "{violations:?}"
        );
    }

    #[test]
    fn drift_is_every_field_the_schema_does_not_declare() {
        let set = bundled();
        let mut job = json!({
            "id": "j", "status": "pending", "progress": 0, "output_url": null, "error": null,
            "created_at": "2026-12-02T00:00:00Z", "duration_seconds": null, "billing_status": null,
            "webhook_events": {"anything": 1}
        });
        assert_eq!(
            set.drift("job", &job),
            vec![],
            "every field declared; webhook_events is open"
        );
        job["queue_position"] = json!(3);
        job["meta"] = json!({"region": "eu"});
        let paths: Vec<String> = set.drift("job", &job).into_iter().map(|d| d.path).collect();
        assert_eq!(paths, ["/meta", "/queue_position"]);
        // Through the list's if/then/else and its $ref to the job schema, once per field.
        let list = json!({"jobs": [job.clone(), job.clone()], "total": 2, "cursor": "x"});
        let paths: Vec<String> = set
            .drift("job_list", &list)
            .into_iter()
            .map(|d| d.path)
            .collect();
        assert_eq!(paths, ["/cursor", "/jobs/*/meta", "/jobs/*/queue_position"]);
        let bare = json!([job]);
        let paths: Vec<String> = set
            .drift("job_list", &bare)
            .into_iter()
            .map(|d| d.path)
            .collect();
        assert_eq!(paths, ["/*/meta", "/*/queue_position"]);
    }
}
