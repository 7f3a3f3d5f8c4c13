//! The JSONL sink: flushed lines, resume after an interruption, filtering and de-duplication.

use std::io::Write;

use synth_gen::{JsonlSink, Resume, Sample};

fn sample(index: u64, text: &str) -> Sample {
    Sample {
        index,
        text: text.into(),
        labels: vec![("Review Stars".into(), "5.0".into())],
    }
}

#[test]
fn an_interrupted_file_resumes_after_its_last_complete_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synthetic.jsonl");
    let (mut sink, resume) = JsonlSink::open(&path, true).unwrap();
    assert_eq!(
        resume,
        Resume {
            next_index: 0,
            written: 0
        }
    );
    assert!(sink.write(&sample(0, "Great food.")).unwrap());
    assert!(
        !sink.write(&sample(1, "   ")).unwrap(),
        "prompt-only generations are dropped"
    );
    assert!(
        sink.write(&sample(2, "Tasty \"tacos\"\n and more"))
            .unwrap()
    );
    assert!(
        !sink.write(&sample(3, "Great food.")).unwrap(),
        "exact repeats are dropped"
    );
    drop(sink);
    // a kill in the middle of writing sample 4
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"index\":4,\"text\":\"Half wri")
        .unwrap();
    let (mut sink, resume) = JsonlSink::open(&path, true).unwrap();
    assert_eq!(
        resume,
        Resume {
            next_index: 3,
            written: 2
        }
    );
    assert!(
        !sink.write(&sample(3, "Great food.")).unwrap(),
        "dedup survives the restart"
    );
    assert!(sink.write(&sample(4, "Whole again.")).unwrap());
    drop(sink);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let indices: Vec<u64> = lines.iter().map(|v| v["index"].as_u64().unwrap()).collect();
    assert_eq!(indices, vec![0, 2, 4]);
    assert_eq!(lines[1]["text"], "Tasty \"tacos\"\n and more");
    assert_eq!(lines[2]["Review Stars"], "5.0");
}

#[test]
fn a_foreign_file_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.jsonl");
    std::fs::write(&path, "{\"index\":0,\"text\":\"a\"}\nnot json\n").unwrap();
    let e = JsonlSink::open(&path, false).unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
}
