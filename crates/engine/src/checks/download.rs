//! `download::*` kinds: the public download endpoint refuses a job that has not completed, and
//! for a completed one names a URL that can be fetched without the key (docs/contract.md
//! section 2).

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::Value;

use super::schema::judge_schema;
use super::{
    created_job, envelope_findings, status_finding, success, unfetchable, Check, Finding, Findings,
    Needs,
};
use crate::client::{Outgoing, Response};
use crate::context::{Abort, CheckContext};
use crate::jobs::{is_absolute_url, shown, status_of, Phase};
use crate::schemas::SchemaSet;
use crate::suite::{Credential, PathTemplate, Settings, StatusSet};

/// The download request for `job_id`: `path` filled, without the key.
fn download_request(path: &PathTemplate, job_id: &str) -> Outgoing {
    let mut request = Outgoing::get(path.fill("job_id", job_id).0);
    request.credential = Credential::Missing;
    request.job_id = Some(job_id.to_string());
    request
}

/// Check that a download path names the job.
fn job_path(path: PathTemplate) -> Result<PathTemplate, String> {
    if path.uses("job_id") {
        Ok(path)
    } else {
        Err(format!("path `{}` must contain {{job_id}}", path.0))
    }
}

/// Suite parameters of [`BeforeCompletion`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeforeCompletionParams {
    /// The download path, with `{job_id}`.
    path: PathTemplate,
    /// The job created for it; by default not started, so it never completes nor spends.
    #[serde(default = "draft_job")]
    create_body: Value,
    #[serde(default = "bad_request")]
    expect_status: StatusSet,
    /// Words the error message must hold (case aside).
    #[serde(default = "not_completed")]
    expect_message: String,
    /// JSON pointer to the message in the error body.
    #[serde(default = "message_pointer")]
    message_pointer: String,
}

fn draft_job() -> Value {
    serde_json::json!({ "video_url": "https://example.com/apiconform-sample.mp4", "auto_start": false })
}

fn bad_request() -> StatusSet {
    StatusSet::exactly(&[400])
}

fn not_completed() -> String {
    "Job not completed".into()
}

fn message_pointer() -> String {
    "/error/message".into()
}

/// A job that has not completed is refused by the download endpoint with the status, the
/// envelope and the message.
#[derive(Debug)]
pub struct BeforeCompletion(BeforeCompletionParams);

impl BeforeCompletion {
    pub fn new(params: BeforeCompletionParams) -> Result<BeforeCompletion, String> {
        if !params.message_pointer.is_empty() && !params.message_pointer.starts_with('/') {
            return Err(format!(
                "`message_pointer` `{}` is not a JSON pointer (it must start with `/`)",
                params.message_pointer
            ));
        }
        Ok(BeforeCompletion(BeforeCompletionParams {
            path: job_path(params.path)?,
            ..params
        }))
    }
}

impl Check for BeforeCompletion {
    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::writes()
    }

    fn plan(&self, settings: &Settings) -> Vec<String> {
        vec![
            format!(
                "POST {} with {} [side effect: creates a job]",
                settings.jobs.create_path, self.0.create_body
            ),
            format!("GET {} without a key (the new job)", self.0.path.0),
        ]
    }

    fn schemas(&self, settings: &Settings) -> Vec<String> {
        vec![settings.errors.schema.clone()]
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let settings = cx.settings();
            let create = settings.jobs.create_request(self.0.create_body.clone());
            let created = cx.send_outgoing(&create).await?;
            let id = match created_job(settings, &created, "the job to download", "download.job") {
                Ok(id) => id,
                Err(findings) => return Ok(findings),
            };
            cx.run.remember_job(&id);
            let response = cx
                .send_outgoing(&download_request(&self.0.path, &id))
                .await?;
            Ok(judge_not_completed(
                cx.schemas(),
                settings,
                &self.0,
                &response,
            ))
        }
        .boxed()
    }
}

/// The refusal has the status, the envelope and a message holding the expected words.
fn judge_not_completed(
    schemas: &SchemaSet,
    settings: &Settings,
    params: &BeforeCompletionParams,
    response: &Response,
) -> Findings {
    if let Some(finding) = status_finding("download.status", response, &params.expect_status) {
        return vec![finding.prefixed("a job that has not completed: ")];
    }
    let mut findings = envelope_findings(schemas, settings, response);
    let pointer = &params.message_pointer;
    let message = response.pointer(pointer).and_then(Value::as_str);
    let says_it = message.is_some_and(|m| {
        m.to_lowercase()
            .contains(&params.expect_message.to_lowercase())
    });
    if findings.is_empty() && !says_it {
        findings.push(
            Finding::new(
                "download.message",
                format!(
                    "at {pointer}: expected a message saying \"{}\", saw {} in {}",
                    params.expect_message,
                    shown(response.pointer(pointer)),
                    response.label()
                ),
            )
            .expected(&params.expect_message)
            .actual(shown(response.pointer(pointer)))
            .at(pointer)
            .cites(response),
        );
    }
    findings
}

/// Suite parameters of [`Completed`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletedParams {
    path: PathTemplate,
    schema: String,
    /// JSON pointer to the download URL in the reply.
    #[serde(default = "url_pointer")]
    url_pointer: String,
}

fn url_pointer() -> String {
    "/download_url".into()
}

/// For the run's completed job, the download endpoint answers `schema` without the key, and
/// its download URL is absolute and can be fetched without the key.
#[derive(Debug)]
pub struct Completed(CompletedParams);

impl Completed {
    pub fn new(params: CompletedParams) -> Result<Completed, String> {
        if !params.url_pointer.starts_with('/') {
            return Err(format!(
                "`url_pointer` `{}` is not a JSON pointer (it must start with `/`)",
                params.url_pointer
            ));
        }
        Ok(Completed(CompletedParams {
            path: job_path(params.path)?,
            ..params
        }))
    }
}

impl Check for Completed {
    fn needs(&self, _settings: &Settings) -> Needs {
        Needs {
            job: true,
            finished_job: true,
            ..Needs::default()
        }
    }

    fn plan(&self, settings: &Settings) -> Vec<String> {
        vec![
            format!(
                "GET {} (the run's finished job, to see it completed)",
                settings.jobs.read_path
            ),
            format!("GET {} without a key", self.0.path.0),
            format!(
                "HEAD or GET the reply's {} without the key",
                self.0.url_pointer
            ),
        ]
    }

    fn schemas(&self, _settings: &Settings) -> Vec<String> {
        vec![self.0.schema.clone()]
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let settings = cx.settings();
            let id = cx.job_id.clone().unwrap_or_default();
            let read = cx.send_outgoing(&settings.jobs.read_request(&id)).await?;
            let status = read
                .json
                .as_ref()
                .and_then(|j| status_of(j, &settings.jobs));
            if !read.is_success()
                || status.and_then(|s| settings.jobs.phase(s)) != Some(Phase::Completed)
            {
                return Err(Abort::Ignored(format!(
                    "needs a completed job, and the run's job read {} (status {})",
                    read.label(),
                    status.unwrap_or("unknown")
                )));
            }
            let response = cx
                .send_outgoing(&download_request(&self.0.path, &id))
                .await?;
            let mut findings = judge_schema(cx.schemas(), &self.0.schema, &success(), &response);
            if !findings.is_empty() {
                return Ok(findings);
            }
            let url = match download_url(&self.0.url_pointer, &response) {
                Ok(url) => url,
                Err(finding) => return Ok(vec![*finding]),
            };
            let what = format!("the download URL {url} of the completed job");
            if let Some(finding) = unfetchable(cx, &url, "download.url_unreachable", &what).await? {
                findings.push(
                    finding
                        .cites(&response)
                        .at(&self.0.url_pointer)
                        .actual(&url),
                );
            }
            Ok(findings)
        }
        .boxed()
    }
}

/// The absolute URL at `pointer` of a download reply, or the finding.
fn download_url(pointer: &str, response: &Response) -> Result<String, Box<Finding>> {
    let value = response.pointer(pointer);
    match value.and_then(Value::as_str) {
        Some(url) if is_absolute_url(url) => Ok(url.to_string()),
        _ => Err(Box::new(
            Finding::new(
                "download.url",
                format!(
                    "at {pointer}: the download reply of a completed job must give an absolute URL; saw {} in {}",
                    shown(value),
                    response.label()
                ),
            )
            .expected("an absolute http(s) URL")
            .actual(shown(value))
            .at(pointer)
            .cites(response),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::Suite;

    const JSON: (&str, &str) = ("content-type", "application/json");

    fn params() -> BeforeCompletionParams {
        BeforeCompletionParams {
            path: PathTemplate("/api/download/{job_id}".into()),
            create_body: draft_job(),
            expect_status: bad_request(),
            expect_message: not_completed(),
            message_pointer: message_pointer(),
        }
    }

    #[test]
    fn before_completion_needs_the_400_the_envelope_and_the_message() {
        let suite = Suite::load(None).unwrap();
        let schemas = SchemaSet::load(&suite).unwrap();
        let judge = |status, body: &str| {
            judge_not_completed(
                &schemas,
                &suite.settings,
                &params(),
                &Response::for_test(status, &[JSON], body),
            )
        };
        let refusal = r#"{"error": {"code": "invalid_request", "message": "Job not completed", "request_id": "r1"}}"#;
        assert_eq!(judge(400, refusal), []);
        assert_eq!(
            judge(
                400,
                &refusal.replace("Job not completed", "job not completed yet")
            ),
            []
        );
        assert_eq!(
            judge(200, r#"{"success": true, "download_url": null}"#)[0].rule,
            "download.status"
        );
        assert_eq!(
            judge(400, &refusal.replace("Job not completed", "Bad request"))[0].rule,
            "download.message"
        );
        assert_eq!(
            judge(400, r#"{"detail": "Job not completed"}"#)[0].rule,
            "errors.envelope"
        );
    }

    #[test]
    fn the_download_url_must_be_absolute() {
        let ok = Response::for_test(
            200,
            &[JSON],
            r#"{"download_url": "https://cdn.example/o.webm"}"#,
        );
        assert_eq!(
            download_url("/download_url", &ok).unwrap(),
            "https://cdn.example/o.webm"
        );
        let relative = Response::for_test(200, &[JSON], r#"{"download_url": "/o.webm"}"#);
        assert_eq!(
            download_url("/download_url", &relative).unwrap_err().rule,
            "download.url"
        );
        assert!(job_path(PathTemplate("/api/download".into())).is_err());
    }
}
