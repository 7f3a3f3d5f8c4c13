//! Stage 2 wiring: the released codes and counts become a JSONL corpus in the run directory;
//! a rerun after a cut-short file completes it to the same corpus.

use burn::backend::Flex;
use causal_lm::Gpt2Config;
use distil_dp::allocation::SampleAllocation;
use distil_dp::config::PipelineConfig;
use distil_dp::generation::{Generation, corpus_complete};
use distil_dp::histogram::{control_codes, release_or_load};
use distil_dp::prepare::{load_splits, tokenizer};
use distil_dp::run_dir::RunDir;
use dp_optim::DpRng;

#[test]
fn the_corpus_is_written_and_a_rerun_completes_it_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = PipelineConfig {
        output_dir: tmp.path().join("run"),
        ..PipelineConfig::default()
    };
    config.tokenizer.vocab_size = 300;
    config.generation.allocation = SampleAllocation::Uniform;
    config.generation.batch_size = 8;
    config.generation.sampling.max_new_tokens = 6;
    let dir = RunDir::open(&config).unwrap();
    let tok = tokenizer(&config, &dir).unwrap();
    let train = load_splits(&config).unwrap().train;
    let release = release_or_load(
        &config,
        &dir,
        &train,
        &control_codes(&config, &train).unwrap(),
        50,
        &mut DpRng::secure().unwrap(),
    )
    .unwrap();
    let device = Default::default();
    let mut teacher_config = Gpt2Config::new(tok.vocab_size(), 64, 16, 1, 2);
    teacher_config.eos_token_id = Some(tok.eos_id());
    let teacher = teacher_config.init::<Flex>(&device).unwrap();

    let generation = Generation {
        config: &config,
        dir: &dir,
        teacher: &teacher,
        tokenizer: &tok,
        release: &release,
        progress: false,
        device: &device,
    };
    let report = generation.corpus().unwrap();
    assert_eq!((report.total, report.generated), (50, 50));
    let full = std::fs::read_to_string(dir.synthetic_path()).unwrap();
    let lines: Vec<&str> = full.lines().collect();
    assert_eq!(lines.len() as u64, report.written);
    let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert!(first["Business Category"].is_string() && first["Review Stars"].is_string());

    // a kill in the middle of line 21: the rerun drops the partial line and continues
    let cut: String = lines[..20]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + &lines[20][..5];
    std::fs::write(dir.synthetic_path(), cut).unwrap();
    let again = generation.corpus().unwrap();
    assert!(again.generated > 0 && again.generated < 50);
    assert_eq!(std::fs::read_to_string(dir.synthetic_path()).unwrap(), full);
}

#[test]
fn a_corpus_whose_last_samples_were_dropped_is_complete_and_not_generated_again() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = PipelineConfig {
        output_dir: tmp.path().join("run"),
        ..PipelineConfig::default()
    };
    config.tokenizer.vocab_size = 300;
    config.generation.allocation = SampleAllocation::Uniform;
    config.generation.batch_size = 8;
    // greedy decoding: every sample of a code is the same text (4 tokens, never empty);
    // with dedup only the first of each code is kept, and every code has two samples, so
    // the last index of the run is always dropped
    config.generation.sampling = synth_gen::GenerationConfig::greedy(4);
    config.generation.sampling.min_new_tokens = 4;
    config.generation.dedup = true;
    let dir = RunDir::open(&config).unwrap();
    let tok = tokenizer(&config, &dir).unwrap();
    let train = load_splits(&config).unwrap().train;
    let codes: usize = distil_dp::embedded::label_values()
        .iter()
        .map(|(_, values)| values.len())
        .product();
    let total = 2 * codes;
    let release = release_or_load(
        &config,
        &dir,
        &train,
        &control_codes(&config, &train).unwrap(),
        total,
        &mut DpRng::secure().unwrap(),
    )
    .unwrap();
    assert_eq!(release.samples.len(), codes);
    assert!(
        release.samples.iter().all(|&n| n == 2),
        "{:?}",
        release.samples
    );
    let device = Default::default();
    let mut teacher_config = Gpt2Config::new(tok.vocab_size(), 64, 16, 1, 2);
    teacher_config.eos_token_id = Some(tok.eos_id());
    // seeded: an untrained model's greedy texts are sometimes all empty (all dropped too)
    <Flex as burn::tensor::backend::Backend>::seed(&device, 7);
    let teacher = teacher_config.init::<Flex>(&device).unwrap();

    assert!(
        !corpus_complete(&config, &dir, &release).unwrap(),
        "no file yet"
    );
    let generation = Generation {
        config: &config,
        dir: &dir,
        teacher: &teacher,
        tokenizer: &tok,
        release: &release,
        progress: false,
        device: &device,
    };
    let report = generation.corpus().unwrap();
    assert_eq!(report.total, total as u64);
    assert!(
        report.written > 0 && report.written <= codes as u64,
        "repeats dropped: {}",
        report.written
    );
    let text = std::fs::read_to_string(dir.synthetic_path()).unwrap();
    let last = text.lines().last().map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["index"].as_u64().unwrap()
    });
    assert!(
        last.is_none_or(|i| i + 1 < total as u64),
        "the last sample was dropped: {last:?}"
    );
    assert!(corpus_complete(&config, &dir, &release).unwrap());
    let again = generation.corpus().unwrap();
    assert_eq!(
        again.generated, 0,
        "a complete corpus is not generated again"
    );
    // a file changed since (a line lost) is no longer complete
    let fewer: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.synthetic_path(), fewer).unwrap();
    assert!(!corpus_complete(&config, &dir, &release).unwrap());
}
