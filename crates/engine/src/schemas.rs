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
pub struct SchemaSet {
    validators: HashMap<String, jsonschema::Validator>,
}

impl SchemaSet {
    /// Read and compile every schema the suite names. Any failure is a configuration error.
    pub fn load(suite: &Suite) -> Result<SchemaSet, AppError> {
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
        Ok(SchemaSet { validators })
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
}
