//! Sharded generation: shards partition the indices exactly, three shards merged equal the
//! unsharded corpus byte for byte (with and without de-duplication across shards), a killed
//! shard resumes, and the merge refuses missing, unfinished or altered shards.

mod common;

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use causal_lm::{Gpt2, Tokenizer, hf};
use common::{fixture, jobs};
use synth_gen::{
    Drops, GenerationConfig, JsonlSink, Shard, SynthGenError, Synthesis, SynthesisReport,
    completion_marker, drop_log, merge_shards,
};

type B = Flex;

const SEED: u64 = 11;

struct Setup {
    model: Gpt2<B>,
    tokenizer: Tokenizer,
    config: GenerationConfig,
    dedup: bool,
}

impl Setup {
    fn new(config: GenerationConfig, dedup: bool) -> Self {
        Self {
            model: hf::load::<B>(fixture(""), &Default::default()).unwrap(),
            tokenizer: Tokenizer::from_file(fixture("tokenizer.json")).unwrap(),
            config,
            dedup,
        }
    }

    /// Generates into `path` (resuming what it holds): the whole run, or one shard of it.
    fn generate(&self, path: &Path, shard: Option<Shard>) -> SynthesisReport {
        let (mut sink, resume) = JsonlSink::open(path, self.dedup).unwrap();
        let jobs = jobs();
        let run = Synthesis::new(&self.tokenizer, &jobs, SEED).with_config(self.config.clone());
        let device = Default::default();
        match shard {
            None => run
                .with_batch_size(3)
                .run(&self.model, &mut sink, resume.next_index, &device),
            Some(shard) => run.with_batch_size(2).run_shard(
                &self.model,
                shard,
                &mut sink,
                resume.next_index,
                &device,
            ),
        }
        .unwrap()
    }

    /// The unsharded corpus.
    fn whole(&self, path: &Path) -> Vec<u8> {
        self.generate(path, None);
        std::fs::read(path).unwrap()
    }

    /// The three shard files of a run in `dir`, generated.
    fn shards(&self, dir: &Path) -> Vec<PathBuf> {
        (0..3)
            .map(|i| {
                let path = dir.join(format!("shard-{i}.jsonl"));
                let shard = Shard::new(i, 3).unwrap();
                let report = self.generate(&path, Some(shard));
                assert_eq!(report.total, shard.range(total()).count() as u64);
                path
            })
            .collect()
    }
}

fn total() -> u64 {
    jobs().iter().map(|j| j.samples as u64).sum()
}

fn indices(bytes: &[u8]) -> Vec<u64> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["index"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn shards_partition_the_indices_exactly() {
    for total in [0u64, 1, 7, 8, 100, u64::MAX] {
        for count in [1u64, 2, 3, 7, 9] {
            let mut next = 0;
            for i in 0..count {
                let r = Shard::new(i, count).unwrap().range(total);
                assert_eq!(r.start, next, "{i}/{count} of {total}");
                let extra = (r.end - r.start).checked_sub(total / count);
                assert!(
                    matches!(extra, Some(0 | 1)),
                    "{i}/{count} of {total}: {r:?}"
                );
                next = r.end;
            }
            assert_eq!(next, total, "{count} shards of {total}");
        }
    }
    assert_eq!(Shard::new(1, 3).unwrap().range(8), 2..5);
    assert_eq!("2/3".parse::<Shard>().unwrap(), Shard::new(2, 3).unwrap());
    assert_eq!(Shard::new(2, 3).unwrap().to_string(), "2/3");
    assert_eq!(Shard::WHOLE.range(8), 0..8);
}

#[test]
fn invalid_shards_name_the_field_and_range() {
    // `Shard` is train-kit's; synth-gen's errors name the fields of a sharded run
    let e = SynthGenError::from(Shard::new(0, 0).unwrap_err()).to_string();
    assert!(e.contains("shard.count") && e.contains(">= 1"), "{e}");
    let e = SynthGenError::from(Shard::new(3, 3).unwrap_err()).to_string();
    assert!(e.contains("shard.index = 3") && e.contains("0..=2"), "{e}");
    let e = SynthGenError::from("3/3".parse::<Shard>().unwrap_err()).to_string();
    assert!(e.contains("shard.index"), "{e}");
    for bad in ["1", "a/3", "1/", "-1/3", "1/3/4", ""] {
        let e = SynthGenError::from(bad.parse::<Shard>().unwrap_err());
        assert!(
            matches!(&e, SynthGenError::InvalidParameter { field: "shard", .. })
                && e.to_string().contains("I/N"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn three_merged_shards_equal_the_unsharded_corpus() {
    // sampling; then greedy, whose repeats across shards the merge must drop again
    for (config, dedup) in [
        (
            GenerationConfig {
                max_new_tokens: 10,
                ..Default::default()
            },
            false,
        ),
        (
            GenerationConfig {
                max_new_tokens: 10,
                ..Default::default()
            },
            true,
        ),
        (GenerationConfig::greedy(6), true),
    ] {
        let greedy = !config.do_sample;
        let setup = Setup::new(config, dedup);
        let dir = tempfile::tempdir().unwrap();
        let whole_path = dir.path().join("whole.jsonl");
        let unsharded = setup.generate(&whole_path, None);
        let whole = std::fs::read(&whole_path).unwrap();
        let shards = setup.shards(dir.path());
        let merged = dir.path().join("merged.jsonl");
        let report = merge_shards(&shards, total(), dedup, &merged).unwrap();
        // every sample is either in the file or dropped for a reason, the same reasons
        // whether the corpus was generated whole or in shards
        assert_eq!(unsharded.written + unsharded.dropped.total(), total());
        assert_eq!(
            report.dropped, unsharded.dropped,
            "dedup {dedup}, greedy {greedy}"
        );
        assert_eq!(Drops::read(&merged).unwrap(), report.dropped);
        assert_eq!(
            std::fs::read(drop_log(&merged)).unwrap(),
            std::fs::read(drop_log(&whole_path)).unwrap(),
            "dedup {dedup}, greedy {greedy}"
        );
        assert_eq!(
            std::fs::read(&merged).unwrap(),
            whole,
            "dedup {dedup}, greedy {greedy}"
        );
        assert_eq!(report.written, indices(&whole).len() as u64);
        assert_eq!(report.read - report.duplicates, report.written);
        if greedy {
            // each code's greedy text is the same: one line per code survives
            assert_eq!(indices(&whole), vec![0, 4]);
            assert!(report.duplicates > 0, "{report:?}");
            // the other 5 samples repeat their code's first text: dropped as duplicates
            assert_eq!(
                unsharded.dropped,
                Drops {
                    empty: 0,
                    duplicate: total() - 2
                }
            );
            let log = std::fs::read_to_string(drop_log(&whole_path)).unwrap();
            assert!(
                log.starts_with("{\"index\":1,\"reason\":\"duplicate\"}\n"),
                "{log}"
            );
        } else {
            assert!(indices(&whole).len() >= 5, "{:?}", indices(&whole));
        }
        assert!(!dir.path().join("merged.jsonl.partial").exists());
    }
}

#[test]
fn a_killed_shard_resumes_and_the_merge_refuses_unfinished_or_missing_shards() {
    let setup = Setup::new(
        GenerationConfig {
            max_new_tokens: 10,
            ..Default::default()
        },
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let whole = setup.whole(&dir.path().join("whole.jsonl"));
    let shards = setup.shards(dir.path());
    let merged = dir.path().join("merged.jsonl");
    let refused = |what: &str| {
        let e = merge_shards(&shards, total(), false, &merged).unwrap_err();
        assert!(!merged.exists(), "{what}: nothing merged");
        e.to_string()
    };

    // shard 2 killed mid-line, before its marker: refused, then resumed to the same file
    let last = shards[2].clone();
    let full = std::fs::read(&last).unwrap();
    std::fs::write(&last, &full[..full.len() - 7]).unwrap();
    std::fs::remove_file(completion_marker(&last)).unwrap();
    let e = refused("killed");
    assert!(
        e.contains("shard-2.jsonl") && e.contains("shard 2/3") && e.contains("not finished"),
        "{e}"
    );
    let resumed = setup.generate(&last, Some(Shard::new(2, 3).unwrap()));
    assert!(
        resumed.generated > 0 && resumed.generated < 3,
        "{resumed:?}"
    );
    assert_eq!(std::fs::read(&last).unwrap(), full);
    merge_shards(&shards, total(), false, &merged).unwrap();
    assert_eq!(std::fs::read(&merged).unwrap(), whole);
    std::fs::remove_file(&merged).unwrap();

    // a finished shard whose last line was cut afterwards
    let middle = std::fs::read(&shards[1]).unwrap();
    std::fs::write(&shards[1], &middle[..middle.len() - 1]).unwrap();
    let e = refused("cut");
    assert!(
        e.contains("shard-1.jsonl") && e.contains("cut short"),
        "{e}"
    );
    // ... or lost a whole line
    let text = String::from_utf8(middle.clone()).unwrap();
    let first_line_end = text.find('\n').unwrap() + 1;
    std::fs::write(&shards[1], &text[first_line_end..]).unwrap();
    let e = refused("line lost");
    assert!(
        e.contains("shard-1.jsonl") && e.contains("completion marker says"),
        "{e}"
    );
    std::fs::write(&shards[1], &middle).unwrap();

    // shards in the wrong order: indices outside the expected range
    let swapped = [shards[1].clone(), shards[0].clone(), shards[2].clone()];
    let e = merge_shards(&swapped, total(), false, &merged)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("shard-1.jsonl") && e.contains("shard 0/3"),
        "{e}"
    );

    // another run's total
    let e = merge_shards(&shards, total() + 1, false, &merged)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("shard-0.jsonl") && e.contains("7-sample run") && e.contains("of 8 samples"),
        "{e}"
    );

    // a missing shard: named, with its indices; the other unfinished ones listed
    std::fs::remove_file(&shards[0]).unwrap();
    let e = refused("missing");
    assert!(
        e.contains("shard-0.jsonl") && e.contains("missing") && e.contains("0..2"),
        "{e}"
    );
    assert!(!e.contains("also incomplete"), "{e}");
    std::fs::remove_file(completion_marker(&shards[2])).unwrap();
    let e = refused("two missing");
    assert!(
        e.contains("shard-0.jsonl") && e.contains("also incomplete: shards 2/3"),
        "{e}"
    );
    let e = merge_shards::<PathBuf>(&[], total(), false, &merged)
        .unwrap_err()
        .to_string();
    assert!(e.contains("shards"), "{e}");
}
