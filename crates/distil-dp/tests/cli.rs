//! The command line end to end: `distil-dp eval` (every data format, both backends, clear
//! errors) and the pipeline commands (JSON events, refused settings and run directories).

mod common;

use std::path::{Path, PathBuf};

use common::distil_dp as stage;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../causal-lm/tests/fixtures/tiny-gpt2")
}

/// The texts and perplexity `transformers` computed (scripts/peers/causal_lm_fixtures.py).
fn reference() -> (Vec<String>, usize, f64) {
    let p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_dir().join("parity.json")).unwrap())
            .unwrap();
    let p = &p["perplexity"];
    let texts = p["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    (
        texts,
        p["block_size"].as_u64().unwrap() as usize,
        p["perplexity"].as_f64().unwrap(),
    )
}

fn eval(args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["eval"];
    all.extend(args);
    stage(&all)
}

#[test]
fn eval_prints_the_reference_perplexity_for_every_format_and_backend() {
    let (texts, block, want) = reference();
    let dir = tempfile::tempdir().unwrap();
    let txt = dir.path().join("eval.txt");
    std::fs::write(&txt, texts.join("\n") + "\n").unwrap();
    let jsonl = dir.path().join("eval.jsonl");
    let lines: Vec<String> = texts
        .iter()
        .map(|t| serde_json::json!({"text": t, "label": "x"}).to_string())
        .collect();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    let csv_path = dir.path().join("eval.csv");
    let mut w = csv::Writer::from_path(&csv_path).unwrap();
    w.write_record(["label", "text"]).unwrap();
    for t in &texts {
        w.write_record(["x", t.as_str()]).unwrap();
    }
    w.flush().unwrap();
    let model = fixture_dir();
    let block = block.to_string();
    for data in [&txt, &jsonl, &csv_path] {
        for backend in ["flex", "ndarray"] {
            let (ok, stdout, stderr) = eval(&[
                "--model",
                model.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--block-size",
                &block,
                "--batch-size",
                "3",
                "--backend",
                backend,
            ]);
            assert!(ok, "{stderr}");
            assert_eq!(stdout.lines().count(), 1, "one line of JSON");
            let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            let ppl = report["perplexity"].as_f64().unwrap();
            assert!(
                (ppl - want).abs() / want < 1e-5,
                "{data:?} {backend}: {ppl} vs {want}"
            );
            assert_eq!(report["texts"].as_u64().unwrap() as usize, texts.len());
            assert!(report["tokens"].as_u64().unwrap() > 0);
            assert_eq!(report["backend"], backend);
        }
    }
}

#[test]
fn eval_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture_dir();
    let model = model.to_str().unwrap();
    let csv_path = dir.path().join("bad.csv");
    std::fs::write(&csv_path, "label,body\nx,hello\n").unwrap();
    let (ok, _, err) = eval(&["--model", model, "--data", csv_path.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("bad.csv") && err.contains("`text` column"),
        "{err}"
    );

    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    let (ok, _, err) = eval(&["--model", model, "--data", empty.to_str().unwrap()]);
    assert!(
        !ok && err.contains("empty.txt") && err.contains("no text"),
        "{err}"
    );

    let jsonl = dir.path().join("bad.jsonl");
    std::fs::write(&jsonl, "{\"text\": \"ok\"}\n{broken\n").unwrap();
    let (ok, _, err) = eval(&["--model", model, "--data", jsonl.to_str().unwrap()]);
    assert!(!ok && err.contains("bad.jsonl:2"), "{err}");

    let txt = dir.path().join("ok.txt");
    std::fs::write(&txt, "some text here\n").unwrap();
    let (ok, _, err) = eval(&[
        "--model",
        dir.path().to_str().unwrap(),
        "--data",
        txt.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("not a checkpoint directory"), "{err}");

    let (ok, _, err) = eval(&[
        "--model",
        model,
        "--data",
        txt.to_str().unwrap(),
        "--block-size",
        "1000",
    ]);
    assert!(!ok && err.contains("block_size"), "{err}");

    let (ok, _, err) = eval(&[
        "--model",
        model,
        "--data",
        txt.to_str().unwrap(),
        "--backend",
        "tpu",
    ]);
    assert!(!ok && err.contains("tpu"), "{err}");

    let (ok, _, err) = eval(&["--model", model, "--data", "/nonexistent.txt"]);
    assert!(!ok && err.contains("/nonexistent.txt"), "{err}");
}

#[test]
fn pipeline_commands_log_json_and_name_bad_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let out = format!(
        "output_dir={:?}",
        tmp.path().join("run").display().to_string()
    );
    let tiny = [
        "--set",
        &out,
        "--set",
        "data.max_records=120",
        "--set",
        "tokenizer.vocab_size=300",
        "--set",
        "teacher.model.n_embd=16",
        "--set",
        "teacher.model.n_layer=1",
        "--set",
        "teacher.model.n_head=2",
        "--set",
        "teacher.epochs=0.5",
        "--set",
        "teacher.expected_batch_size=16",
        "--set",
        "generation.sampling.max_new_tokens=16",
    ];
    let mut args = vec!["teacher", "--output", "json"];
    args.extend(tiny);
    let (ok, stdout, stderr) = stage(&args);
    assert!(ok, "{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(events.iter().all(|e| e["stage"].is_string()), "{stdout}");
    assert!(
        events
            .iter()
            .any(|e| e["stage"] == "teacher" && e["event"] == "done"),
        "{stdout}"
    );
    // the same events went to the run's metrics file
    let metrics = std::fs::read_to_string(tmp.path().join("run/metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), events.len());

    // a later stage with another budget is refused: the teacher release depends on it
    let mut other = vec!["generate", "--set", "privacy.epsilon=8"];
    other.extend(tiny);
    let (ok, _, stderr) = stage(&other);
    assert!(
        !ok && stderr.contains("never made twice") && stderr.contains("privacy.epsilon"),
        "{stderr}"
    );

    for (bad, field) in [
        ("privacy.epsilon=-1", "privacy.epsilon"),
        ("privacy.delta=2", "privacy.delta"),
        ("teacher.epoch=3", "epoch"),
        ("backend=tpu", "backend"),
    ] {
        let (ok, _, stderr) = stage(&["run", "--set", &out, "--set", bad]);
        assert!(!ok && stderr.contains(field), "{bad}: {stderr}");
    }
}
