//! `pricing::*` kinds: the public price list publishes the documented credits per minute of
//! each model, and a finished job is charged its model's rate for its video's length
//! (docs/contract.md section 4; settings in `[pricing]`).

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::Value;

use super::schema::judge_schema;
use super::usage::{job_events, planned_events};
use super::{success, Check, Finding, Findings, Needs};
use crate::client::{Outgoing, Response};
use crate::context::{Abort, CheckContext};
use crate::jobs::{shown, status_of, Phase};
use crate::schemas::SchemaSet;
use crate::suite::{Credential, PricingSettings, Settings, StatusSet};

/// `GET [pricing] path` without a key answers `schema`, with each model of `[pricing] rates`
/// at its documented price.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedRates {
    schema: String,
    #[serde(default = "success")]
    expect_status: StatusSet,
}

impl Check for PublishedRates {
    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::default()
    }

    fn plan(&self, settings: &Settings) -> Vec<String> {
        vec![format!("GET {} without a key", settings.pricing.path)]
    }

    fn schemas(&self, _settings: &Settings) -> Vec<String> {
        vec![self.schema.clone()]
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let mut request = Outgoing::get(cx.settings().pricing.path.clone());
            request.credential = Credential::Missing;
            let response = cx.send_outgoing(&request).await?;
            Ok(judge_rates(
                cx.schemas(),
                &self.schema,
                &self.expect_status,
                &cx.settings().pricing,
                &response,
            ))
        }
        .boxed()
    }
}

/// The price list matches `schema`, and every documented rate is published, as a number
/// equal to it (models the contract does not name are allowed).
fn judge_rates(
    schemas: &SchemaSet,
    schema: &str,
    expected: &StatusSet,
    pricing: &PricingSettings,
    response: &Response,
) -> Findings {
    let mut findings = judge_schema(schemas, schema, expected, response);
    if !response.is_success() || response.json.is_none() {
        return findings;
    }
    for (model, rate) in &pricing.rates {
        let pointer = format!("{}/{}", pricing.rates_pointer, pointer_token(model));
        let seen = response.pointer(&pointer);
        if seen.and_then(Value::as_f64) == Some(*rate) {
            continue;
        }
        findings.push(
            Finding::new(
                "pricing.rate",
                format!(
                    "at {pointer}: the model `{model}` costs {rate} credits per minute of video; the price list says {} in {}",
                    shown(seen),
                    response.label()
                ),
            )
            .expected(rate)
            .actual(shown(seen))
            .at(&pointer)
            .cites(response),
        );
    }
    findings
}

/// `text` as one JSON pointer token (RFC 6901 escapes).
fn pointer_token(text: &str) -> String {
    text.replace('~', "~0").replace('/', "~1")
}

/// A finished job's charge, summed over the usage events that name it, is its model's rate
/// times its length in minutes, within `[pricing] charge_tolerance_credits`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobCharge {}

impl Check for JobCharge {
    fn needs(&self, _settings: &Settings) -> Needs {
        Needs {
            job: true,
            finished_job: true,
            ..Needs::default()
        }
    }

    fn plan(&self, settings: &Settings) -> Vec<String> {
        let mut lines = vec![format!(
            "GET {} (the run's finished job: its model and duration)",
            settings.jobs.read_path
        )];
        lines.extend(planned_events(settings));
        lines
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let settings = cx.settings();
            let job_id = cx.job_id.clone().unwrap_or_default();
            let read = cx
                .send_outgoing(&settings.jobs.read_request(&job_id))
                .await?;
            let job = completed_job(settings, &read)?;
            let pricing = &settings.pricing;
            let Some(seconds) = job.pointer(&pricing.duration_pointer).and_then(Value::as_f64)
            else {
                return Err(Abort::Ignored(format!(
                    "the completed job gives no duration at {} (it may be null), so its charge cannot be computed",
                    pricing.duration_pointer
                )));
            };
            let model = job
                .pointer(&pricing.model_pointer)
                .and_then(Value::as_str)
                .unwrap_or(&pricing.default_model)
                .to_string();
            let Some(rate) = pricing.rates.get(&model).copied() else {
                return Err(Abort::Ignored(format!(
                    "the job's model `{model}` has no rate in [pricing] rates"
                )));
            };
            let (events, listing) = job_events(cx, &job_id).await?;
            if events.is_empty() {
                return Err(Abort::Ignored(format!(
                    "no usage event names job {job_id} (usage::job_event judges that), so its charge cannot be seen"
                )));
            }
            let credits: Option<f64> = events
                .iter()
                .map(|e| e.pointer(&settings.usage.event_credits_pointer)?.as_f64())
                .sum();
            let Some(charged) = credits else {
                return Err(Abort::Ignored(format!(
                    "a usage event of job {job_id} gives no number of credits at {}",
                    settings.usage.event_credits_pointer
                )));
            };
            Ok(judge_charge(
                &model, rate, seconds, charged, pricing, &read, &listing,
            ))
        }
        .boxed()
    }
}

/// The job object of a 2xx read of a completed job; otherwise the check cannot judge.
fn completed_job<'r>(settings: &Settings, read: &'r Response) -> Result<&'r Value, Abort> {
    let job = read.json.as_ref().filter(|_| read.is_success());
    let status = job.and_then(|j| status_of(j, &settings.jobs));
    match (job, status.and_then(|s| settings.jobs.phase(s))) {
        (Some(job), Some(Phase::Completed)) => Ok(job),
        _ => Err(Abort::Ignored(format!(
            "needs a completed job, and the run's job read {} (status {})",
            read.label(),
            status.unwrap_or("unknown")
        ))),
    }
}

/// The charge is within the tolerance of `rate` x `seconds` / 60.
fn judge_charge(
    model: &str,
    rate: f64,
    seconds: f64,
    charged: f64,
    pricing: &PricingSettings,
    read: &Response,
    listing: &Response,
) -> Findings {
    let expected = rate * seconds / 60.0;
    if (charged - expected).abs() <= pricing.charge_tolerance_credits {
        return Vec::new();
    }
    vec![Finding::new(
        "pricing.charge",
        format!(
            "a {seconds} s job of model `{model}` at {rate} credits per minute costs {expected} credits (within {}), but was charged {charged}",
            pricing.charge_tolerance_credits
        ),
    )
    .expected(expected)
    .actual(charged)
    .cites(read)
    .cites(listing)]
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

    const PRICES: &str = r#"{"model_pricing_credits_per_minute": {"original": 60, "light": 45.0, "pro": 180, "human": 45, "turbo": 500}, "packages": []}"#;

    #[test]
    fn the_documented_rates_pass_and_a_wrong_or_missing_one_fails() {
        let (suite, schemas) = bundled();
        let pricing = &suite.settings.pricing;
        let judge = |body: &str| {
            judge_rates(
                &schemas,
                "pricing",
                &StatusSet::success(),
                pricing,
                &Response::for_test(200, &[JSON], body),
            )
        };
        assert_eq!(judge(PRICES), []);
        let wrong = judge(&PRICES.replace("180", "120"));
        assert_eq!(wrong.len(), 1, "{wrong:?}");
        assert_eq!(wrong[0].rule, "pricing.rate");
        assert_eq!(
            wrong[0].pointer.as_deref(),
            Some("/model_pricing_credits_per_minute/pro")
        );
        let as_text = judge(&PRICES.replace("180", "\"180\""));
        assert_eq!(as_text[0].actual.as_deref(), Some("\"180\""));
        let missing = judge(&PRICES.replace(r#""human": 45, "#, ""));
        assert_eq!(missing[0].rule, "pricing.rate");
        let refused = judge_rates(
            &schemas,
            "pricing",
            &StatusSet::success(),
            pricing,
            &Response::for_test(401, &[JSON], "{}"),
        );
        assert_eq!(refused[0].rule, "schema.status");
    }

    #[test]
    fn a_charge_follows_the_rate_and_the_length_within_the_tolerance() {
        let pricing = PricingSettings::default();
        let read = Response::for_test(200, &[JSON], "{}");
        let judge = |rate, seconds, charged| {
            judge_charge("light", rate, seconds, charged, &pricing, &read, &read)
        };
        assert_eq!(judge(45.0, 30.0, 23.0), []);
        assert_eq!(judge(45.0, 30.0, 22.0), []);
        assert_eq!(judge(60.0, 150.0, 150.0), []);
        let flat = judge(60.0, 30.0, 60.0);
        assert_eq!(flat[0].rule, "pricing.charge");
        assert_eq!(flat[0].expected.as_deref(), Some("30"));
        assert_eq!(flat[0].actual.as_deref(), Some("60"));
    }
}
