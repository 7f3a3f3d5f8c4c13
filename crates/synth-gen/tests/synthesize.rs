//! The driver: codes and counts to a JSONL corpus; a run killed midway and resumed writes the
//! same corpus as an uninterrupted run.

mod common;

use burn::backend::Flex;
use causal_lm::{Tokenizer, hf};
use common::{fixture, jobs};
use synth_gen::{CodeJob, GenerationConfig, JsonlSink, Synthesis};

type B = Flex;

fn run(path: &std::path::Path, stop_after: Option<usize>) -> Vec<String> {
    let model = hf::load::<B>(fixture(""), &Default::default()).unwrap();
    let tokenizer = Tokenizer::from_file(fixture("tokenizer.json")).unwrap();
    let config = GenerationConfig {
        max_new_tokens: 12,
        ..Default::default()
    };
    let (mut sink, resume) = JsonlSink::open(path, false).unwrap();
    let jobs = jobs();
    let jobs = match stop_after {
        // a "kill" after the first batch: only the first samples' jobs exist in this process
        Some(n) => vec![CodeJob {
            samples: n,
            ..jobs[0].clone()
        }],
        None => jobs,
    };
    let report = Synthesis::new(&tokenizer, &jobs, 11)
        .with_config(config)
        .with_batch_size(3)
        .run(&model, &mut sink, resume.next_index, &Default::default())
        .unwrap();
    assert!(report.written <= report.total);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_resumed_run_writes_the_uninterrupted_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let whole = run(&dir.path().join("whole.jsonl"), None);
    let parts_path = dir.path().join("parts.jsonl");
    let first = run(&parts_path, Some(2));
    assert!(first.len() <= 2);
    let resumed = run(&parts_path, None);
    assert_eq!(resumed, whole);
    assert!(whole.len() >= 5, "{} samples kept of 7", whole.len());
    let labels: Vec<serde_json::Value> = whole
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(labels.iter().all(|v| v["Category"].is_string()));
    assert!(labels.iter().filter(|v| v["Stars"] == "5").count() <= 3);
}
