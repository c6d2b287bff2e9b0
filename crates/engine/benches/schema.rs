//! Schema validation throughput: job objects validated per second against the bundled suite's
//! compiled `job` schema, compiled once as a run does (never per response).
//!
//! `cargo bench -p apiconform-engine --bench schema` (no test harness: it prints one line,
//! `schema_validations_per_s=<N>`); `scripts/bench.sh` runs it. Runs about a second.

use std::time::{Duration, Instant};

use apiconform_engine::schemas::SchemaSet;
use apiconform_engine::suite::Suite;

fn main() {
    let suite = Suite::load(None).expect("the bundled suite loads");
    let schemas = SchemaSet::load(&suite).expect("the bundled schemas compile");
    // Distinct documents, as a run sees them: a job in each state.
    let jobs: Vec<serde_json::Value> = ["pending", "processing", "completed", "failed"]
        .iter()
        .enumerate()
        .map(|(i, status)| {
            serde_json::json!({
                "id": format!("job_{i:024x}"),
                "status": status,
                "progress": if *status == "completed" { 100.0 } else { 12.5 },
                "output_url": if *status == "completed" { serde_json::json!("https://cdn.example.com/out/a.webm") } else { serde_json::Value::Null },
                "error": if *status == "failed" { serde_json::json!("decode error") } else { serde_json::Value::Null },
                "created_at": "2026-11-27T10:11:12.345Z",
                "duration_seconds": 12.0,
                "billing_status": "charged",
                "webhook_url": null
            })
        })
        .collect();
    for job in &jobs {
        let violations = schemas.violations("job", job);
        assert!(violations.is_empty(), "{violations:?}");
    }
    let budget = Duration::from_millis(
        std::env::var("SCHEMA_BENCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
    );
    let started = Instant::now();
    let mut validated: u64 = 0;
    while started.elapsed() < budget {
        for job in &jobs {
            std::hint::black_box(schemas.violations("job", std::hint::black_box(job)));
        }
        validated += jobs.len() as u64;
    }
    let rate = validated as f64 / started.elapsed().as_secs_f64();
    println!("schema_validations_per_s={rate:.0}");
}
