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
