//! The JSONL sink: flushed lines, resume after an interruption, filtering and de-duplication.

use std::io::Write;

use synth_gen::{DropReason, Drops, JsonlSink, Resume, Sample, drop_log};

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
    assert_eq!(
        sink.dropped(),
        Drops {
            empty: 1,
            duplicate: 1
        }
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
    assert_eq!(
        sink.dropped(),
        Drops {
            empty: 1,
            duplicate: 1
        },
        "the drops of the first run are read back"
    );
    assert!(
        !sink.write(&sample(3, "Great food.")).unwrap(),
        "dedup survives the restart"
    );
    assert!(sink.write(&sample(4, "Whole again.")).unwrap());
    assert_eq!(
        sink.dropped(),
        Drops {
            empty: 1,
            duplicate: 1
        },
        "sample 3 dropped again is counted once"
    );
    drop(sink);
    assert_eq!(Drops::read(&path).unwrap().total(), 2);
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

#[test]
fn drops_are_logged_by_reason_and_survive_a_kill_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synthetic.jsonl");
    let (mut sink, _) = JsonlSink::open(&path, true).unwrap();
    for (i, text) in ["", "a", "\n\t ", "a", "b", "a"].into_iter().enumerate() {
        sink.write(&sample(i as u64, text)).unwrap();
    }
    let counted = Drops {
        empty: 2,
        duplicate: 2,
    };
    assert_eq!(sink.dropped(), counted);
    assert_eq!(sink.dropped().get(DropReason::Empty), 2);
    drop(sink);
    assert_eq!(Drops::read(&path).unwrap(), counted);
    let log = std::fs::read_to_string(drop_log(&path)).unwrap();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            r#"{"index":0,"reason":"empty"}"#,
            r#"{"index":2,"reason":"empty"}"#,
            r#"{"index":3,"reason":"duplicate"}"#,
            r#"{"index":5,"reason":"duplicate"}"#,
        ],
        "indices and reasons only, never text"
    );
    // a kill in the middle of a drop log line: the line is ignored, then removed on open
    std::fs::OpenOptions::new()
        .append(true)
        .open(drop_log(&path))
        .unwrap()
        .write_all(b"{\"index\":6,\"rea")
        .unwrap();
    assert_eq!(Drops::read(&path).unwrap(), counted);
    let (mut sink, resume) = JsonlSink::open(&path, true).unwrap();
    assert_eq!(resume.next_index, 5);
    assert_eq!(sink.dropped(), counted);
    assert!(!sink.write(&sample(6, "   ")).unwrap());
    drop(sink);
    assert_eq!(Drops::read(&path).unwrap().empty, 3);
    // a drop log line that is not an entry is an error naming it
    std::fs::write(drop_log(&path), "{\"index\":1}\n").unwrap();
    let e = Drops::read(&path).unwrap_err().to_string();
    assert!(e.contains(".dropped") && e.contains("line 1"), "{e}");
}
