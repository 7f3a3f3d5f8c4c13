//! Sharded generation through the command line: `generate --shard 0/2` and `--shard 1/2`,
//! then `merge --shards 2`, give the `synthetic.jsonl` a plain `generate` writes in another
//! run directory with the same teacher; the merge refuses a missing shard, the sharded
//! generate leaves `synthetic.jsonl` alone, and bad shard arguments are named.

mod common;

use std::path::Path;

use common::distil_dp;

/// `command extra… --set …` on the tiny configuration in `dir` (reproducible: seeded noise).
fn tiny(command: &str, extra: &[&str], dir: &Path) -> (bool, String, String) {
    let out = format!("output_dir={:?}", dir.display().to_string());
    let mut args = vec![command];
    args.extend(extra);
    for setting in [
        out.as_str(),
        "insecure_noise_seed=7",
        "data.max_records=120",
        "tokenizer.vocab_size=300",
        "teacher.model.n_embd=16",
        "teacher.model.n_layer=1",
        "teacher.model.n_head=2",
        "teacher.epochs=0.5",
        "teacher.expected_batch_size=16",
        "generation.samples=30",
        "generation.batch_size=8",
        "generation.dedup=true",
        "generation.sampling.max_new_tokens=16",
    ] {
        args.extend(["--set", setting]);
    }
    distil_dp(&args)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn two_shards_merged_equal_the_unsharded_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let sharded = tmp.path().join("sharded");
    let (ok, _, err) = tiny("teacher", &["--output", "quiet"], &sharded);
    assert!(ok, "{err}");
    // the same teacher, tokenizer and histogram in a second run directory
    let plain = tmp.path().join("plain");
    copy_dir(&sharded, &plain);
    std::fs::remove_file(plain.join("config.toml")).unwrap();
    let (ok, _, err) = tiny("generate", &["--output", "quiet"], &plain);
    assert!(ok, "{err}");
    let want = std::fs::read(plain.join("synthetic.jsonl")).unwrap();
    assert!(!want.is_empty());

    // more shards than samples, or none
    let (ok, _, err) = tiny("generate", &["--shard", "0/31"], &sharded);
    assert!(
        !ok && err.contains("invalid shards") && err.contains("30 synthetic samples"),
        "{err}"
    );
    let (ok, _, err) = tiny("merge", &["--shards", "0"], &sharded);
    assert!(!ok && err.contains("invalid shards = 0"), "{err}");

    let (ok, stdout, err) = tiny(
        "generate",
        &["--shard", "0/2", "--output", "json"],
        &sharded,
    );
    assert!(ok, "{err}");
    let done: serde_json::Value = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "shard-done")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(
        (&done["stage"], &done["start"], &done["end"]),
        (&"generate".into(), &0.into(), &15.into())
    );
    assert!(!stdout.contains("\"text\""), "no sample text in events");
    let metrics = std::fs::read_to_string(sharded.join("metrics.shard-0-of-2.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), stdout.lines().count());
    assert!(sharded.join("synthetic.shard-0-of-2.jsonl.done").is_file());

    // shard 1 has not run: the merge names its file and writes nothing
    let (ok, _, err) = tiny("merge", &["--shards", "2"], &sharded);
    assert!(
        !ok && err.contains("synthetic.shard-1-of-2.jsonl") && err.contains("missing"),
        "{err}"
    );
    assert!(!sharded.join("synthetic.jsonl").exists());

    let (ok, _, err) = tiny("generate", &["--shard", "1/2"], &sharded);
    assert!(ok, "{err}");
    assert!(
        !sharded.join("synthetic.jsonl").exists(),
        "a sharded generate does not touch synthetic.jsonl"
    );
    // the wrong shard count: shard files of 3 shards do not exist
    let (ok, _, err) = tiny("merge", &["--shards", "3"], &sharded);
    assert!(!ok && err.contains("synthetic.shard-0-of-3.jsonl"), "{err}");
    let (ok, _, err) = tiny("merge", &["--shards", "2"], &sharded);
    assert!(ok, "{err}");
    assert!(err.contains("merged 2 shards"), "{err}");
    assert_eq!(
        std::fs::read(sharded.join("synthetic.jsonl")).unwrap(),
        want
    );
    let merged = std::fs::read_to_string(sharded.join("metrics.jsonl")).unwrap();
    let event: serde_json::Value = serde_json::from_str(merged.lines().last().unwrap()).unwrap();
    assert_eq!(
        (&event["stage"], &event["event"]),
        (&"merge".into(), &"done".into())
    );
    assert_eq!(event["total"], 30);
    // drops by reason survive the merge: the same drop log as the plain generate's
    assert_eq!(
        std::fs::read(sharded.join("synthetic.jsonl.dropped")).unwrap(),
        std::fs::read(plain.join("synthetic.jsonl.dropped")).unwrap()
    );
    let dropped = &event["dropped"];
    assert_eq!(
        dropped["empty"].as_u64().unwrap()
            + dropped["duplicate"].as_u64().unwrap()
            + event["written"].as_u64().unwrap(),
        30,
        "{event}"
    );

    // a rerun of a finished shard generates nothing and keeps the merge valid
    let (ok, _, err) = tiny(
        "generate",
        &["--shard", "1/2", "--output", "bars"],
        &sharded,
    );
    assert!(ok && err.contains("done: generate shard 1/2"), "{err}");
    let (ok, _, err) = tiny("merge", &["--shards", "2"], &sharded);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(sharded.join("synthetic.jsonl")).unwrap(),
        want
    );
}

#[test]
fn bad_shard_arguments_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    for (args, expected) in [
        (["--shard", "2/2"], "shard.index"),
        (["--shard", "0/0"], "shard.count"),
        (["--shard", "1"], "I/N"),
        (["--shard", "a/b"], "I/N"),
    ] {
        let (ok, _, err) = tiny("generate", &args, &dir);
        assert!(!ok && err.contains(expected), "{args:?}: {err}");
    }
    // merge needs the teacher stage's label histogram
    let (ok, _, err) = tiny("merge", &["--shards", "2"], &dir);
    assert!(
        !ok && err.contains("label-histogram.json") && err.contains("distil-dp teacher"),
        "{err}"
    );
    let (ok, _, err) = tiny("merge", &["--shards", "x"], &dir);
    assert!(!ok && err.contains("--shards"), "{err}");
}
