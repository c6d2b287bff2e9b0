//! `uploads::*` kinds: `POST /v1/uploads` takes a video in a multipart field, says what it
//! kept, serves it at a URL a job can be made from, and refuses other types and files over
//! the limit (docs/contract.md section 2; settings in `[uploads]`).
//!
//! Every file sent is small and made here ([`crate::video::sample_mp4`]): never downloaded,
//! and never more than `[uploads] max_send_bytes`.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::Value;

use super::schema::judge_schema;
use super::{envelope_findings, status_finding, success, Check, Finding, Findings, Needs};
use crate::client::{same_origin, FailureKind, FilePart, Outgoing, Response};
use crate::context::{Abort, CheckContext};
use crate::jobs::{id_text, is_absolute_url, shown};
use crate::schemas::SchemaSet;
use crate::suite::{Credential, Settings, StatusSet, UploadSettings};
use crate::video::{sample_mp4, MIN_SAMPLE_BYTES};

/// How `--dry-run` marks an upload.
const UPLOADS: &str = "[side effect: uploads a file]";

/// The file name of the sample video.
fn sample_name() -> String {
    "apiconform-sample.mp4".into()
}

fn video_mp4() -> Option<String> {
    Some("video/mp4".into())
}

fn bad_request() -> StatusSet {
    StatusSet::exactly(&[400])
}

/// The sample video as the part of an upload: `content_type` is the part's own type, or none.
fn sample_part(settings: &UploadSettings, filename: &str, content_type: Option<&str>) -> FilePart {
    FilePart {
        field: settings.field.clone(),
        filename: filename.into(),
        content_type: content_type.map(String::from),
        bytes: Bytes::from(sample_mp4(MIN_SAMPLE_BYTES)),
    }
}

/// `POST [uploads] path` with `part` as the multipart body.
fn upload_request(settings: &UploadSettings, part: FilePart) -> Outgoing {
    let mut request = Outgoing::get(settings.path.clone());
    request.method = reqwest::Method::POST;
    request.file = Some(part);
    request
}

/// The `--dry-run` line of an upload of `part`.
fn planned_upload(settings: &UploadSettings, part: &FilePart) -> String {
    let media = part
        .content_type
        .as_deref()
        .unwrap_or("no part Content-Type");
    format!(
        "POST {} (multipart field {}: {}, {media}, {} bytes) {UPLOADS}",
        settings.path,
        part.field,
        part.filename,
        part.bytes.len()
    )
}

/// Send `part`, never more than `[uploads] max_send_bytes` of it.
async fn send_upload(cx: &CheckContext<'_>, part: FilePart) -> Result<Response, Abort> {
    let settings = &cx.settings().uploads;
    if part.bytes.len() as u64 > settings.max_send_bytes {
        return Err(Abort::Ignored(format!(
            "would send {} bytes, over [uploads] max_send_bytes ({})",
            part.bytes.len(),
            settings.max_send_bytes
        )));
    }
    cx.send_outgoing(&upload_request(settings, part)).await
}

/// A video upload, with or without the part's own Content-Type, is accepted with a 2xx.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadAccepted {
    #[serde(default = "sample_name")]
    filename: String,
    /// The part's Content-Type; leave it out to send the part without one (as the vendor's
    /// Python SDK does), so the type must come from the file name.
    content_type: Option<String>,
    #[serde(default = "success")]
    expect_status: StatusSet,
}

impl Check for UploadAccepted {
    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::writes()
    }

    fn plan(&self, settings: &Settings) -> Vec<String> {
        let part = sample_part(
            &settings.uploads,
            &self.filename,
            self.content_type.as_deref(),
        );
        vec![planned_upload(&settings.uploads, &part)]
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let part = sample_part(
                &cx.settings().uploads,
                &self.filename,
                self.content_type.as_deref(),
            );
            let response = send_upload(cx, part).await?;
            Ok(
                status_finding("uploads.status", &response, &self.expect_status)
                    .into_iter()
                    .collect(),
            )
        }
        .boxed()
    }
}

/// The reply to a video upload matches `schema`, and its size is the size sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadReply {
    schema: String,
    /// JSON pointer to the file's size in the reply.
    #[serde(default = "size_pointer")]
    size_pointer: String,
}

fn size_pointer() -> String {
    "/size".into()
}

impl Check for UploadReply {
    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::writes()
    }

    fn plan(&self, settings: &Settings) -> Vec<String> {
        let part = sample_part(&settings.uploads, &sample_name(), video_mp4().as_deref());
        vec![planned_upload(&settings.uploads, &part)]
    }

    fn schemas(&self, _settings: &Settings) -> Vec<String> {
        vec![self.schema.clone()]
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let part = sample_part(
                &cx.settings().uploads,
                &sample_name(),
                video_mp4().as_deref(),
            );
            let sent = part.bytes.len() as u64;
            let response = send_upload(cx, part).await?;
            Ok(judge_reply(
                cx.schemas(),
                &self.schema,
                &self.size_pointer,
                sent,
                &response,
            ))
        }
        .boxed()
    }
}

/// The upload reply is a 2xx JSON body valid against `schema`; a numeric size at
/// `size_pointer` is the `sent` bytes (a size of another type is the schema's to judge).
fn judge_reply(
    schemas: &SchemaSet,
    schema: &str,
    size_pointer: &str,
    sent: u64,
    response: &Response,
) -> Findings {
    let mut findings = judge_schema(schemas, schema, &StatusSet::success(), response);
    let size = response.pointer(size_pointer);
    if let Some(seen) = size.and_then(Value::as_f64) {
        if seen != sent as f64 {
            findings.push(
                Finding::new(
                    "uploads.size",
                    format!(
                        "at {size_pointer}: the reply must give the size of the file sent, {sent} bytes; saw {} in {}",
                        shown(size),
                        response.label()
                    ),
                )
                .expected(sent)
                .actual(shown(size))
                .at(size_pointer)
                .cites(response),
            );
        }
    }
    findings
}

/// The `video_url` of an upload serves the bytes uploaded, and a job created with it is
/// accepted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadVideoUrl {
    /// The job created from the upload, to which `video_url` is added; by default not
    /// started, so it spends no credits.
    #[serde(default = "draft_job")]
    create_body: Value,
}

fn draft_job() -> Value {
    serde_json::json!({ "auto_start": false })
}

impl Check for UploadVideoUrl {
    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::writes()
    }

    fn plan(&self, settings: &Settings) -> Vec<String> {
        let part = sample_part(&settings.uploads, &sample_name(), video_mp4().as_deref());
        vec![
            planned_upload(&settings.uploads, &part),
            format!(
                "GET the reply's {} (with the key only on the target's origin)",
                settings.uploads.video_url_pointer
            ),
            format!(
                "POST {} with {} and that video_url [side effect: creates a job]",
                settings.jobs.create_path, self.create_body
            ),
        ]
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let settings = &cx.settings().uploads;
            let part = sample_part(settings, &sample_name(), video_mp4().as_deref());
            let sent = part.bytes.clone();
            let reply = send_upload(cx, part).await?;
            let url = match video_url(settings, &reply) {
                Ok(url) => url,
                Err(finding) => return Ok(vec![*finding]),
            };
            let mut findings = Vec::new();
            let mut fetch = Outgoing::get(url.clone());
            // The key goes to the target's own origin only; a CDN gets none.
            if !same_origin(&url, cx.client().base_url()) {
                fetch.credential = Credential::Missing;
            }
            match cx.client().send(cx.name, &fetch, Default::default()).await {
                Ok(served) => findings.extend(judge_served(&url, &sent, &reply, &served)),
                Err(error) if error.kind == FailureKind::Refused => {
                    cx.note(&format!(
                        "the video_url {url} was not fetched: {}",
                        error.cause
                    ));
                }
                Err(error) if error.is_transport() => findings.push(
                    Finding::new(
                        "uploads.video_url_fetch",
                        format!("the video_url {url} of the upload cannot be fetched: {error}"),
                    )
                    .cites(&reply),
                ),
                Err(error) => return Err(error.into()),
            }
            let mut body = self.create_body.clone();
            if let Some(object) = body.as_object_mut() {
                object.insert("video_url".into(), Value::String(url.clone()));
            }
            let create = cx.settings().jobs.create_request(body);
            let created = cx.send_outgoing(&create).await?;
            if let Some(id) = id_text(created.pointer(&cx.settings().jobs.created_id_pointer)) {
                if created.is_success() {
                    cx.run.remember_job(&id);
                }
            }
            if let Some(finding) = status_finding("uploads.video_url_job", &created, &success()) {
                findings.push(
                    finding
                        .prefixed(&format!(
                            "a job created with the uploaded video_url {url}: "
                        ))
                        .cites(&reply),
                );
            }
            Ok(findings)
        }
        .boxed()
    }
}

/// The absolute URL at `[uploads] video_url_pointer` of a 2xx upload reply, or the finding.
fn video_url(settings: &UploadSettings, reply: &Response) -> Result<String, Box<Finding>> {
    if let Some(finding) = status_finding("uploads.status", reply, &success()) {
        return Err(Box::new(finding));
    }
    let pointer = &settings.video_url_pointer;
    let value = reply.pointer(pointer);
    match value.and_then(Value::as_str) {
        Some(url) if is_absolute_url(url) => Ok(url.to_string()),
        _ => Err(Box::new(
            Finding::new(
                "uploads.video_url",
                format!(
                    "at {pointer}: the upload reply must give an absolute URL of the video; saw {} in {}",
                    shown(value),
                    reply.label()
                ),
            )
            .expected("an absolute http(s) URL")
            .actual(shown(value))
            .at(pointer)
            .cites(reply),
        )),
    }
}

/// The `video_url` fetch is a 2xx whose body is the bytes uploaded (their start, when the
/// body was cut at the read cap).
fn judge_served(url: &str, sent: &[u8], reply: &Response, served: &Response) -> Findings {
    if !served.is_success() {
        return vec![Finding::new(
            "uploads.video_url_fetch",
            format!(
                "the video_url {url} of the upload must serve the video, got {}",
                served.label()
            ),
        )
        .expected("2xx")
        .actual(served.status)
        .cites(reply)
        .cites(served)];
    }
    let same = if served.truncated {
        sent.starts_with(&served.body)
    } else {
        served.body.as_ref() == sent
    };
    if same {
        return Vec::new();
    }
    vec![Finding::new(
        "uploads.video_url_bytes",
        format!(
            "the video_url {url} must serve the {} bytes uploaded, but served {} other bytes ({})",
            sent.len(),
            served.body.len(),
            served.label()
        ),
    )
    .expected(format!("the {} bytes uploaded", sent.len()))
    .actual(format!("{} bytes", served.body.len()))
    .cites(reply)
    .cites(served)]
}

/// An upload of another type than a video is refused with the error envelope.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadWrongType {
    #[serde(default = "text_name")]
    filename: String,
    #[serde(default = "text_plain")]
    content_type: Option<String>,
    /// What the file holds.
    #[serde(default = "text_content")]
    content: String,
    #[serde(default = "bad_request")]
    expect_status: StatusSet,
}

fn text_name() -> String {
    "apiconform-notes.txt".into()
}

fn text_plain() -> Option<String> {
    Some("text/plain".into())
}

fn text_content() -> String {
    "apiconform: this file is text, not a video.\n".into()
}

impl UploadWrongType {
    fn part(&self, settings: &UploadSettings) -> FilePart {
        FilePart {
            field: settings.field.clone(),
            filename: self.filename.clone(),
            content_type: self.content_type.clone(),
            bytes: Bytes::from(self.content.clone().into_bytes()),
        }
    }
}

impl Check for UploadWrongType {
    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::writes()
    }

    fn plan(&self, settings: &Settings) -> Vec<String> {
        vec![planned_upload(
            &settings.uploads,
            &self.part(&settings.uploads),
        )]
    }

    fn schemas(&self, settings: &Settings) -> Vec<String> {
        vec![settings.errors.schema.clone()]
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let response = send_upload(cx, self.part(&cx.settings().uploads)).await?;
            Ok(judge_refused(
                cx.schemas(),
                cx.settings(),
                &self.expect_status,
                &response,
            ))
        }
        .boxed()
    }
}

/// A video one byte over `[uploads] max_file_bytes` is refused with the error envelope; run
/// only when that file fits in `[uploads] max_send_bytes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadOversize {
    #[serde(default = "bad_request")]
    expect_status: StatusSet,
}

/// The size of the file just over the limit, or why it is not sent.
fn oversize(settings: &UploadSettings) -> Result<u64, String> {
    let size = settings.max_file_bytes.saturating_add(1);
    if size > settings.max_send_bytes {
        return Err(format!(
            "a file over the documented limit ([uploads] max_file_bytes = {}) is larger than [uploads] max_send_bytes ({}); raise max_send_bytes to send one",
            settings.max_file_bytes, settings.max_send_bytes
        ));
    }
    Ok(size)
}

impl Check for UploadOversize {
    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::writes()
    }

    fn plan(&self, settings: &Settings) -> Vec<String> {
        match oversize(&settings.uploads) {
            Ok(size) => vec![format!(
                "POST {} (multipart field {}: a video/mp4 of {size} bytes, one over the limit) {UPLOADS}",
                settings.uploads.path, settings.uploads.field
            )],
            Err(why) => vec![format!("nothing: {why}")],
        }
    }

    fn schemas(&self, settings: &Settings) -> Vec<String> {
        vec![settings.errors.schema.clone()]
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let settings = &cx.settings().uploads;
            let size = oversize(settings).map_err(Abort::Ignored)?;
            let part = FilePart {
                field: settings.field.clone(),
                filename: "apiconform-oversize.mp4".into(),
                content_type: video_mp4(),
                bytes: Bytes::from(sample_mp4(usize::try_from(size).unwrap_or(usize::MAX))),
            };
            let response = send_upload(cx, part).await?;
            Ok(judge_refused(
                cx.schemas(),
                cx.settings(),
                &self.expect_status,
                &response,
            ))
        }
        .boxed()
    }
}

/// A refused upload has a status in `expected` and the suite's error envelope.
fn judge_refused(
    schemas: &SchemaSet,
    settings: &Settings,
    expected: &StatusSet,
    response: &Response,
) -> Findings {
    if let Some(finding) = status_finding("uploads.status", response, expected) {
        return vec![finding];
    }
    envelope_findings(schemas, settings, response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::Suite;

    const JSON: (&str, &str) = ("content-type", "application/json");

    fn bundled() -> (Suite, SchemaSet) {
        let suite = Suite::load(None).unwrap();
        let schemas = SchemaSet::load(&suite).unwrap();
        (suite, schemas)
    }

    const REPLY: &str = r#"{"success": true, "video_id": "v1", "video_url": "https://cdn.example/v1.mp4", "filename": "a.mp4", "size": 152}"#;

    #[test]
    fn a_reply_with_every_field_and_the_size_sent_passes() {
        let (_, schemas) = bundled();
        let ok = Response::for_test(201, &[JSON], REPLY);
        assert_eq!(judge_reply(&schemas, "upload_reply", "/size", 152, &ok), []);
        // Ids of any shape, extra fields, and 200 are all fine: an extra field is drift only.
        let other = REPLY
            .replace("\"v1\"", "\"4f0c-88\"")
            .replace('}', r#", "extra": [1]}"#);
        let ok = Response::for_test(200, &[JSON], &other);
        let (violations, drift) = crate::finding::split_drift(
            judge_reply(&schemas, "upload_reply", "/size", 152, &ok),
            false,
        );
        assert_eq!(violations, []);
        assert_eq!(drift.len(), 1);
        assert_eq!(drift[0].pointer.as_deref(), Some("/extra"));
    }

    #[test]
    fn a_reply_with_a_string_size_a_missing_field_or_another_size_fails() {
        let (_, schemas) = bundled();
        let judge = |body: &str| {
            judge_reply(
                &schemas,
                "upload_reply",
                "/size",
                152,
                &Response::for_test(201, &[JSON], body),
            )
        };
        let string_size = judge(&REPLY.replace("152", "\"152\""));
        assert_eq!(string_size.len(), 1, "{string_size:?}");
        assert_eq!(string_size[0].rule, "schema.type");
        assert_eq!(string_size[0].pointer.as_deref(), Some("/size"));
        let missing = judge(&REPLY.replace(r#""filename": "a.mp4", "#, ""));
        assert_eq!(missing[0].rule, "schema.required");
        let wrong = judge(&REPLY.replace("152", "99"));
        assert_eq!(wrong[0].rule, "uploads.size");
        assert_eq!(wrong[0].expected.as_deref(), Some("152"));
        assert_eq!(wrong[0].actual.as_deref(), Some("99"));
        let refused = judge_reply(
            &schemas,
            "upload_reply",
            "/size",
            152,
            &Response::for_test(400, &[JSON], "{}"),
        );
        assert_eq!(refused[0].rule, "schema.status");
    }

    #[test]
    fn the_video_url_must_be_absolute_and_serve_the_bytes_sent() {
        let settings = UploadSettings::default();
        let reply = Response::for_test(201, &[JSON], REPLY);
        assert_eq!(
            video_url(&settings, &reply).unwrap(),
            "https://cdn.example/v1.mp4"
        );
        let relative = Response::for_test(201, &[JSON], &REPLY.replace("https://cdn.example", ""));
        assert_eq!(
            video_url(&settings, &relative).unwrap_err().rule,
            "uploads.video_url"
        );
        let refused = Response::for_test(415, &[JSON], "{}");
        assert_eq!(
            video_url(&settings, &refused).unwrap_err().rule,
            "uploads.status"
        );

        let sent = b"\x00\x00\x00\x08mdat";
        let url = "https://cdn.example/v1.mp4";
        let served = Response::for_test(200, &[("content-type", "video/mp4")], "\0\0\0\x08mdat");
        assert_eq!(judge_served(url, sent, &reply, &served), []);
        let other = Response::for_test(200, &[], "<html>");
        assert_eq!(
            judge_served(url, sent, &reply, &other)[0].rule,
            "uploads.video_url_bytes"
        );
        let missing = Response::for_test(404, &[JSON], "{}");
        let finding = &judge_served(url, sent, &reply, &missing)[0];
        assert_eq!(finding.rule, "uploads.video_url_fetch");
        assert_eq!(finding.actual.as_deref(), Some("404"));
    }

    #[test]
    fn a_refused_upload_needs_the_status_and_the_envelope() {
        let (suite, schemas) = bundled();
        let judge = |r: &Response| judge_refused(&schemas, &suite.settings, &bad_request(), r);
        let envelope =
            r#"{"error": {"code": "invalid_request", "message": "no", "request_id": "req_1"}}"#;
        assert_eq!(judge(&Response::for_test(400, &[JSON], envelope)), []);
        assert_eq!(
            judge(&Response::for_test(201, &[JSON], REPLY))[0].rule,
            "uploads.status"
        );
        let plain = judge(&Response::for_test(400, &[JSON], r#"{"detail": "no"}"#));
        assert_eq!(plain[0].rule, "errors.envelope");
    }

    #[test]
    fn the_oversize_file_is_sent_only_when_it_fits_the_send_budget() {
        let mut settings = UploadSettings::default();
        let why = oversize(&settings).unwrap_err();
        assert!(why.contains("max_file_bytes = 524288000"), "{why}");
        settings.max_file_bytes = 4096;
        settings.max_send_bytes = 4097;
        assert_eq!(oversize(&settings), Ok(4097));
        settings.max_send_bytes = 4096;
        assert!(oversize(&settings).is_err());
    }
}
