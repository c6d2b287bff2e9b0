//! `idempotency::*` kinds: retrying a request has no duplicate side effect. Reads change
//! nothing; a create retried with the same `Idempotency-Key` replays the original; starting a
//! job twice never charges twice. Side effects are observed with [`crate::oracle`].

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::Value;

use super::{created_job, with_oracle, Check, Finding, Findings, Needs, WRITES};
use crate::client::{Outgoing, Response};
use crate::context::{Abort, CheckContext};
use crate::jobs::{id_text, status_of};
use crate::oracle::Snapshot;
use crate::suite::{Credential, RequestSpec, Settings};

/// A fresh idempotency key, unique to this run and use.
fn fresh_key() -> String {
    format!("apiconform-{:032x}", rand::random::<u128>())
}

/// The suite's create request (`[jobs] create_path` and `create_body`) with an idempotency key.
fn create_with_key(cx: &CheckContext, key: &str, body: Value, credential: Credential) -> Outgoing {
    let settings = cx.settings();
    let mut request = settings.jobs.create_request(body);
    request.credential = credential;
    request.headers.push((
        settings.idempotency.header.clone(),
        settings.idempotency.value(key),
    ));
    request
}

/// The id a create reply carries, per the suite's pointer.
fn created_id(cx: &CheckContext, response: &Response) -> Option<String> {
    id_text(response.pointer(&cx.settings().jobs.created_id_pointer))
}

/// A create that must succeed for the check to go on; anything else is the check's finding.
fn expect_created(cx: &CheckContext, response: &Response, what: &str) -> Result<String, Findings> {
    created_job(cx.settings(), response, what, "idempotency.create")
}

/// The create body with `video_url` (or the first string field) changed, so it differs.
fn other_body(body: &Value) -> Value {
    let mut other = body.clone();
    if let Some(object) = other.as_object_mut() {
        let field = if object.contains_key("video_url") {
            Some("video_url".to_string())
        } else {
            object
                .iter()
                .find(|(_, v)| v.is_string())
                .map(|(k, _)| k.clone())
        };
        match field {
            Some(field) => {
                let old = object[&field].as_str().unwrap_or_default().to_string();
                object.insert(field, Value::String(format!("{old}?variant=2")));
            }
            None => {
                object.insert("apiconform_variant".into(), Value::from(2));
            }
        }
    }
    other
}

/// A finding when `what` (the `creates`) left more than one new job in the tenant's job list.
fn duplicate_jobs(
    before: &Snapshot,
    after: &Snapshot,
    what: &str,
    creates: &[&Response],
) -> Option<Finding> {
    let new_jobs = after.new_jobs(before);
    (new_jobs.len() > 1).then(|| {
        let message = format!(
            "{what} with one Idempotency-Key left {} new jobs in the job list (expected one): {}",
            new_jobs.len(),
            new_jobs.join(", ")
        );
        Finding::new("idempotency.duplicate_job", message)
            .expected(1)
            .actual(new_jobs.len())
            .cites_all(creates.iter().copied())
            .cites_exchanges(after.exchanges_since(before))
    })
}

/// A finding of `rule` about a side effect seen between `before` and `after` (the oracle's
/// reads), caused by `cause`.
fn side_effect(
    rule: &str,
    message: String,
    cause: &[&Response],
    before: &Snapshot,
    after: &Snapshot,
) -> Finding {
    Finding::new(rule, message)
        .cites_all(cause.iter().copied())
        .cites_exchanges(after.exchanges_since(before))
}

/// Writes, while no other check sends traffic (the side-effect oracle must see only ours).
fn writes_alone() -> Needs {
    Needs {
        exclusive: true,
        ..Needs::writes()
    }
}

/// Reading a job several times gives the same representation and changes no job and no charge.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadsAreSafe {
    request: RequestSpec,
    #[serde(default = "reads_compared")]
    reads: u32,
    /// JSON pointers of fields allowed to change between reads (a server clock, say).
    #[serde(default)]
    ignore: Vec<String>,
}

/// Enough reads to see a charge or a change that one repeat could miss.
fn reads_compared() -> u32 {
    3
}

impl Check for ReadsAreSafe {
    fn plan(&self, settings: &Settings) -> Vec<String> {
        with_oracle(
            settings,
            vec![format!(
                "{} x {}",
                self.request.describe(),
                self.reads.clamp(2, 10)
            )],
        )
    }

    /// A finished job, so two reads of it can be compared whole.
    fn needs(&self, _settings: &Settings) -> Needs {
        let needs = Needs::of([&self.request]);
        Needs {
            exclusive: true,
            finished_job: needs.job,
            ..needs
        }
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let before = Snapshot::take(cx, Credential::Valid).await?;
            let mut reads = Vec::new();
            for _ in 0..self.reads.clamp(2, 10) {
                reads.push(cx.send(&self.request).await?);
            }
            let after = Snapshot::take(cx, Credential::Valid).await?;
            let mut findings = Vec::new();
            let bodies: Vec<Option<Value>> = reads
                .iter()
                .map(|r| {
                    r.json.clone().map(|mut json| {
                        for pointer in &self.ignore {
                            if let Some(value) = json.pointer_mut(pointer) {
                                *value = Value::Null;
                            }
                        }
                        json
                    })
                })
                .collect();
            let jobs = &cx.settings().jobs;
            let all_terminal = bodies.iter().all(|b| {
                b.as_ref()
                    .and_then(|b| status_of(b, jobs))
                    .is_some_and(|s| jobs.is_terminal(s))
            });
            if all_terminal {
                for (read, body) in reads.iter().zip(&bodies).skip(1) {
                    if body != &bodies[0] {
                        let (first, then) = (
                            crate::jobs::shown(bodies[0].as_ref()),
                            crate::jobs::shown(body.as_ref()),
                        );
                        let message = format!(
                            "the same finished job read twice differs: first {first}, then {then} in {}",
                            read.label()
                        );
                        findings.push(
                            Finding::new("idempotency.read_changed", message)
                                .expected(first)
                                .actual(then)
                                .cites(&reads[0])
                                .cites(read),
                        );
                        break;
                    }
                }
            } else {
                cx.note("the job is not finished, so only side effects were compared");
            }
            let reads: Vec<&Response> = reads.iter().collect();
            let new_jobs = after.new_jobs(&before);
            if !new_jobs.is_empty() {
                let message = format!("reading a job created job(s): {}", new_jobs.join(", "));
                findings.push(side_effect("idempotency.read_created_job", message, &reads, &before, &after));
            }
            if let Some(events) = after.new_events(&before).filter(|e| !e.is_empty()) {
                let message = format!(
                    "reading a job added {} usage event(s), e.g. {}",
                    events.len(),
                    events[0]
                );
                findings.push(side_effect("idempotency.read_charged", message, &reads, &before, &after));
            }
            Ok(findings)
        }
        .boxed()
    }
}

/// The same create sent twice with one `Idempotency-Key` returns the same job, and exactly
/// one new job (and at most one charge) exists afterwards.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotentCreate {}

impl Check for IdempotentCreate {
    fn plan(&self, settings: &Settings) -> Vec<String> {
        with_oracle(
            settings,
            vec![format!(
                "POST {} twice with one Idempotency-Key {WRITES}",
                settings.jobs.create_path
            )],
        )
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        writes_alone()
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let before = Snapshot::take(cx, Credential::Valid).await?;
            let key = fresh_key();
            let request = create_with_key(cx, &key, cx.settings().jobs.create_body.clone(), Credential::Valid);
            let first = cx.send_outgoing(&request).await?;
            let first_id = match expect_created(cx, &first, "the first create") {
                Ok(id) => id,
                Err(findings) => return Ok(findings),
            };
            let retry = cx.send_outgoing(&request).await?;
            let after = Snapshot::take(cx, Credential::Valid).await?;
            let mut findings = Vec::new();
            match expect_created(cx, &retry, "the retry with the same key and body") {
                Err(mut f) => findings.append(&mut f),
                Ok(id) if id != first_id => findings.push(
                    Finding::new(
                        "idempotency.not_replayed",
                        format!(
                            "the retry with the same Idempotency-Key created job {id} instead of replaying {first_id}, in {}",
                            retry.label()
                        ),
                    )
                    .expected(&first_id)
                    .actual(&id)
                    .cites(&first)
                    .cites(&retry),
                ),
                Ok(_) => {}
            }
            let creates = [&first, &retry];
            findings.extend(duplicate_jobs(&before, &after, "the create and its retry", &creates));
            if let Some(events) = after.new_events(&before) {
                if events.len() > 1 {
                    let message = format!(
                        "the create and its retry added {} usage events (at most one charge expected)",
                        events.len()
                    );
                    findings.push(side_effect("idempotency.charged_twice", message, &creates, &before, &after));
                }
            }
            Ok(findings)
        }
        .boxed()
    }
}

/// The same `Idempotency-Key` with another body is refused with 422 (IETF draft).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyReuse {}

impl Check for KeyReuse {
    fn plan(&self, settings: &Settings) -> Vec<String> {
        vec![format!(
            "POST {} twice with one Idempotency-Key and two bodies {WRITES}",
            settings.jobs.create_path
        )]
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        writes_alone()
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let key = fresh_key();
            let body = cx.settings().jobs.create_body.clone();
            let first = cx
                .send_outgoing(&create_with_key(cx, &key, body.clone(), Credential::Valid))
                .await?;
            let first_id = match expect_created(cx, &first, "the first create") {
                Ok(id) => id,
                Err(findings) => return Ok(findings),
            };
            let reuse = cx
                .send_outgoing(&create_with_key(
                    cx,
                    &key,
                    other_body(&body),
                    Credential::Valid,
                ))
                .await?;
            if reuse.status == 422 {
                return Ok(Vec::new());
            }
            let what = match created_id(cx, &reuse) {
                Some(id) if reuse.is_success() && id == first_id => {
                    "replayed the first job for a different body"
                }
                Some(_) if reuse.is_success() => "created a second job",
                _ => "did not answer 422",
            };
            let message = format!(
                "the same Idempotency-Key with another body {what}: expected 422, got {}",
                reuse.status_from()
            );
            Ok(vec![Finding::new("idempotency.key_reuse", message)
                .expected(422)
                .actual(reuse.status)
                .cites(&first)
                .cites(&reuse)])
        }
        .boxed()
    }
}

/// Two identical creates sent at once with one key make one job: both get it, or one gets 409.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrentCreate {}

impl Check for ConcurrentCreate {
    fn plan(&self, settings: &Settings) -> Vec<String> {
        with_oracle(
            settings,
            vec![format!(
                "POST {} twice at once with one Idempotency-Key {WRITES}",
                settings.jobs.create_path
            )],
        )
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        writes_alone()
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let before = Snapshot::take(cx, Credential::Valid).await?;
            let key = fresh_key();
            let request = create_with_key(cx, &key, cx.settings().jobs.create_body.clone(), Credential::Valid);
            let (a, b) = tokio::join!(cx.send_outgoing(&request), cx.send_outgoing(&request));
            let (a, b) = (a?, b?);
            let after = Snapshot::take(cx, Credential::Valid).await?;
            let mut findings = Vec::new();
            let ids: Vec<Option<String>> = [&a, &b]
                .iter()
                .map(|r| if r.is_success() { created_id(cx, r) } else { None })
                .collect();
            let outcome_ok = match (a.status, b.status) {
                (x, y) if (200..300).contains(&x) && (200..300).contains(&y) => ids[0] == ids[1],
                (x, 409) | (409, x) => (200..300).contains(&x),
                _ => false,
            };
            if !outcome_ok {
                let message = format!(
                    "two concurrent creates with one key: expected one job for both or a 409 for one, got {} (job {}) and {} (job {})",
                    a.label(),
                    ids[0].as_deref().unwrap_or("none"),
                    b.label(),
                    ids[1].as_deref().unwrap_or("none")
                );
                findings.push(Finding::new("idempotency.concurrent_create", message).cites(&a).cites(&b));
            }
            findings.extend(duplicate_jobs(&before, &after, "the two concurrent creates", &[&a, &b]));
            Ok(findings)
        }
        .boxed()
    }
}

/// A key used by one tenant does not replay that tenant's result to another.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantScoped {}

impl Check for TenantScoped {
    fn plan(&self, settings: &Settings) -> Vec<String> {
        vec![format!(
            "POST {} with a key, then the same key as the second tenant {WRITES}",
            settings.jobs.create_path
        )]
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs {
            second_key: true,
            ..writes_alone()
        }
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let key = fresh_key();
            let body = cx.settings().jobs.create_body.clone();
            let first = cx.send_outgoing(&create_with_key(cx, &key, body.clone(), Credential::Valid)).await?;
            let first_id = match expect_created(cx, &first, "the first tenant's create") {
                Ok(id) => id,
                Err(findings) => return Ok(findings),
            };
            let other = cx.send_outgoing(&create_with_key(cx, &key, body, Credential::Second)).await?;
            if other.status >= 500 {
                let message = format!("the second tenant's create with the same key failed: {}", other.label());
                return Ok(vec![Finding::new("idempotency.tenant_server_error", message).actual(other.status).cites(&other)]);
            }
            Ok(match created_id(cx, &other) {
                Some(id) if id == first_id => vec![Finding::new(
                    "idempotency.tenant_leak",
                    format!(
                        "the second tenant, sending the first tenant's Idempotency-Key, got the first tenant's job {id}, in {}",
                        other.label()
                    ),
                )
                .cites(&first)
                .cites(&other)],
                _ => Vec::new(),
            })
        }
        .boxed()
    }
}

/// Starting a job that is already processing, and again once it is finished, never charges a
/// second time and is never a 5xx.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartOnce {}

impl Check for StartOnce {
    fn plan(&self, settings: &Settings) -> Vec<String> {
        with_oracle(
            settings,
            vec![
                format!("POST {} {WRITES}", settings.jobs.create_path),
                format!(
                    "POST {} while processing, and again once finished, reading {} around each",
                    settings.jobs.start_path, settings.jobs.read_path
                ),
            ],
        )
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        writes_alone()
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let settings = cx.settings();
            let create = settings.jobs.create_request(settings.jobs.create_body.clone());
            let created = cx.send_outgoing(&create).await?;
            let job_id = match expect_created(cx, &created, "creating the job to start") {
                Ok(id) => id,
                Err(findings) => return Ok(findings),
            };
            let mut findings = Vec::new();
            let start = settings.jobs.start_request(&job_id);
            for moment in ["while it is processing", "after it finished"] {
                if moment == "after it finished" {
                    wait_until_terminal(cx, &job_id).await?;
                }
                let before = Snapshot::take(cx, Credential::Valid).await?;
                let (billing_before, read_before) = billing_status(cx, &job_id).await?;
                let reply = cx.send_outgoing(&start).await?;
                let after = Snapshot::take(cx, Credential::Valid).await?;
                let (billing_after, read_after) = billing_status(cx, &job_id).await?;
                if reply.status >= 500 {
                    let message = format!("starting the job again {moment} is a 5xx: {}", reply.label());
                    findings.push(Finding::new("idempotency.start_server_error", message).actual(reply.status).cites(&reply));
                }
                // Nothing else runs meanwhile: any new usage event is this start's charge.
                if let Some(events) = after.new_events(&before).filter(|e| !e.is_empty()) {
                    let message = format!(
                        "starting job {job_id} again {moment} added {} usage event(s) (a second charge), e.g. {}, after {}",
                        events.len(),
                        events[0],
                        reply.label()
                    );
                    findings.push(side_effect("idempotency.start_charged", message, &[&reply], &before, &after));
                }
                if billing_before != billing_after {
                    let message = format!(
                        "starting the job again {moment} changed its billing status from {billing_before} to {billing_after}"
                    );
                    findings.push(
                        Finding::new("idempotency.start_billing_changed", message)
                            .expected(billing_before)
                            .actual(billing_after)
                            .at(&settings.usage.billing_status_pointer)
                            .cites_exchange(read_before.exchange)
                            .cites(&reply)
                            .cites_exchange(read_after.exchange),
                    );
                }
            }
            Ok(findings)
        }
        .boxed()
    }
}

/// The job's billing status as shown in messages, and the read it came in.
async fn billing_status(cx: &CheckContext<'_>, job_id: &str) -> Result<(String, Response), Abort> {
    let response = cx
        .send_outgoing(&cx.settings().jobs.read_request(job_id))
        .await?;
    let shown = crate::jobs::shown(response.pointer(&cx.settings().usage.billing_status_pointer));
    Ok((shown, response))
}

/// Poll the job until it is terminal (within the suite's deadline).
async fn wait_until_terminal(cx: &CheckContext<'_>, job_id: &str) -> Result<(), Abort> {
    cx.run
        .follow(None, cx.name)
        .until_terminal(job_id, |_| {})
        .await
        .map(|_| ())
        .map_err(|failure| Abort::Errored(failure.to_string()))
}
