//! Is the teacher worth distilling? DistilDP only beats a student trained directly with
//! DP-SGD when the DP teacher is much stronger than that student (Flemings & Annavaram use a
//! pre-trained GPT2-Large for a DistilGPT2 student). This module gathers the evidence a run
//! can give without touching the private test or validation splits — the prompt budget, the
//! models' sizes, public pre-training, perplexity on held-out *public* text — and turns it
//! into warnings that the start of a run and its report show.

use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::report::{ModelResult, TrainingKind};

/// The teacher should have at least this many times the student's parameters.
pub const MIN_SIZE_RATIO: f64 = 2.0;

/// How much of the teacher's block the control codes leave for text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptBudget {
    /// Control codes.
    pub codes: usize,
    /// Tokens of the longest code.
    pub longest_code_tokens: usize,
    /// Tokens of the teacher's training and generation block.
    pub block_size: usize,
    /// Tokens the longest code leaves for text in a block.
    pub text_tokens_left: usize,
    /// Tokens generated per synthetic sample (`generation.sampling.max_new_tokens`).
    pub max_new_tokens: usize,
}

impl PromptBudget {
    /// One line for the start of a run and the report.
    pub fn describe(&self) -> String {
        format!(
            "prompt budget: {} control codes, the longest {} tokens of the teacher's {}-token block, leaving {} tokens for text; each synthetic sample has up to {} new tokens",
            self.codes,
            self.longest_code_tokens,
            self.block_size,
            self.text_tokens_left,
            self.max_new_tokens
        )
    }

    /// A warning when the codes take more than a quarter of the block.
    pub fn warning(&self) -> Option<String> {
        (4 * self.longest_code_tokens > self.block_size).then(|| {
            format!(
                "WARNING: the longest control code takes {} of the teacher's {} tokens, so the teacher sees {} tokens of text per block where the DP-SGD student sees {}: shorten the codes (values that carry their names are used as they are, data.control_code) or raise teacher.block_size.",
                self.longest_code_tokens, self.block_size, self.text_tokens_left, self.block_size
            )
        })
    }
}

/// A model pre-trained on public text (stage 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pretrained {
    /// Its training (`pretrain-teacher`, `pretrain-student`).
    pub name: String,
    /// Its steps.
    pub steps: u64,
    /// Its perplexity on held-out public text.
    pub public_perplexity: f64,
}

/// The parameters of a fresh GPT-2 of `model`'s shape (tied embeddings), or `None` for a
/// checkpoint (its shape is known once loaded).
pub fn fresh_parameters(model: &ModelConfig, vocab: usize, positions: usize) -> Option<usize> {
    if model.checkpoint.is_some() {
        return None;
    }
    let (d, l) = (model.n_embd, model.n_layer);
    Some(vocab * d + positions * d + l * (12 * d * d + 13 * d) + 2 * d)
}

/// Warnings known before training: a teacher that is not clearly larger than the student
/// (fresh shapes only), and a teacher that starts from nothing (no checkpoint, no public
/// pre-training), which learns all its English from DP-SGD on the private data.
pub fn shape_warnings(
    teacher: &ModelConfig,
    student: &ModelConfig,
    vocab: usize,
    positions: usize,
) -> Vec<String> {
    let mut w = Vec::new();
    if let (Some(t), Some(s)) = (
        fresh_parameters(teacher, vocab, positions),
        fresh_parameters(student, vocab, positions),
    ) && (t as f64) < MIN_SIZE_RATIO * s as f64
    {
        w.push(format!(
            "WARNING: the teacher ({t} parameters) is not clearly larger than the student ({s}): DistilDP needs a teacher much stronger than what the student learns directly under DP; make [teacher.model] larger."
        ));
    }
    if teacher.checkpoint.is_none() && teacher.pretrain_steps == 0 {
        w.push("WARNING: the teacher is neither a checkpoint nor pre-trained on public text (teacher.model.pretrain_steps = 0): it learns all its language from DP-SGD on the private data and is usually too weak to beat a DP-SGD student; set teacher.model.pretrain_steps with a public corpus (tokenizer.public_corpus, e.g. /usr/share/wordnet).".to_string());
    }
    w
}

/// Warnings only the finished models can give, from their perplexity on held-out public
/// text (no private split is read): the DP teacher knows less English than the DP-SGD
/// student.
pub fn result_warnings(results: &[ModelResult]) -> Vec<String> {
    let public = |kind: TrainingKind| {
        results
            .iter()
            .find(|r| r.kind == kind)
            .and_then(|r| r.public_perplexity.map(|p| (r, p)))
    };
    let mut w = Vec::new();
    if let (Some((t, tp)), Some((s, sp))) = (
        public(TrainingKind::DpTeacher),
        public(TrainingKind::DpSgdStudent),
    ) && tp >= sp
    {
        w.push(format!(
            "WARNING: on held-out public text the {} ({tp:.2}) is not better than the {} ({sp:.2}): a teacher this weak rarely yields a student better than DP-SGD; give it public pre-training or a pre-trained checkpoint.",
            t.name, s.name
        ));
    }
    w
}

/// Warnings from stage 0 (public text only): the pre-trained teacher is not better than the
/// pre-trained student on held-out public text, so its pre-training (steps or learning rate)
/// wasted the larger model's capacity before any private data was seen.
pub fn pretraining_warnings(pretrained: &[Pretrained]) -> Vec<String> {
    let find = |name: &str| pretrained.iter().find(|p| p.name == name);
    match (find("pretrain-teacher"), find("pretrain-student")) {
        (Some(t), Some(s)) if t.public_perplexity >= s.public_perplexity => vec![format!(
            "WARNING: after stage 0 the teacher's perplexity on held-out public text ({:.2}, {} steps) is not below the student's ({:.2}, {} steps): the larger model is undertrained or its learning rate is too high; lower teacher.model.pretrain_schedule's lr or raise teacher.model.pretrain_steps.",
            t.public_perplexity, t.steps, s.public_perplexity, s.steps
        )],
        _ => Vec::new(),
    }
}

/// Warnings from the synthetic corpus (validation-free evidence of a weak teacher): samples
/// that end far before the budget, or many dropped samples.
pub fn corpus_warnings(corpus: &crate::corpus_stats::SyntheticCorpus) -> Vec<String> {
    let mut w = Vec::new();
    let overall = &corpus.stats.overall;
    let budget = corpus.stats.budget as f64;
    if overall.samples > 0 && 4.0 * overall.mean_tokens < budget {
        w.push(format!(
            "WARNING: the synthetic samples average {:.1} tokens of a budget of {budget}: a teacher that ends its texts this early has learned little of the data's texts beyond the codes.",
            overall.mean_tokens
        ));
    }
    let dropped = corpus.dropped.total();
    if corpus.generated > 0 && 20 * dropped > corpus.generated {
        w.push(format!(
            "WARNING: {dropped} of {} synthetic samples were dropped ({}).",
            corpus.generated,
            corpus.drops_line()
        ));
    }
    w
}

/// The report's "Is the teacher worth distilling?" section: the prompt budget, each model's
/// perplexity on held-out public text, and the warnings of the run.
pub fn markdown(report: &crate::report::Report) -> String {
    let mut s = String::new();
    if let Some(b) = &report.prompt_budget {
        s.push_str(&format!("{}.\n\n", capitalise(&b.describe())));
    }
    let rows: Vec<_> = report
        .results
        .iter()
        .filter_map(|r| r.public_perplexity.map(|p| (r, p)))
        .collect();
    if !report.pretraining.is_empty() || !rows.is_empty() {
        s.push_str("Perplexity on held-out public text (the public corpus's held-out part: no private split is read):\n\n| model | parameters | public perplexity |\n|---|---:|---:|\n");
        for p in &report.pretraining {
            s.push_str(&format!(
                "| {} ({} steps, before any private data) | | {:.2} |\n",
                p.name, p.steps, p.public_perplexity
            ));
        }
        for (r, p) in rows {
            s.push_str(&format!("| {} | {} | {p:.2} |\n", r.name, r.parameters));
        }
        s.push('\n');
    }
    let warnings: Vec<&String> = report
        .privacy
        .notes
        .iter()
        .filter(|n| n.starts_with("WARNING"))
        .collect();
    if warnings.is_empty() {
        s.push_str("No warning: the checks (the teacher at least twice the student's size, public pre-training or a checkpoint, the codes' share of the block, and the DP teacher's public perplexity against the DP-SGD student's when both were trained) found nothing.\n");
    }
    for w in warnings {
        s.push_str(&format!("- {w}\n"));
    }
    s
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpt2_small_shape_has_its_known_parameter_count() {
        let gpt2 = ModelConfig {
            n_embd: 768,
            n_layer: 12,
            n_head: 12,
            ..ModelConfig::default()
        };
        // GPT-2 small: 124 439 808 parameters with its 50257 tokens and 1024 positions
        assert_eq!(fresh_parameters(&gpt2, 50257, 1024), Some(124_439_808));
    }

    #[test]
    fn a_short_or_much_dropped_corpus_is_named() {
        use synth_gen::{CorpusStats, Drops, Sample};
        let sample = |i: u64, text: &str| Sample {
            index: i,
            text: text.to_string(),
            labels: vec![("Category".into(), "art".into())],
        };
        let corpus = |texts: &[&str], dropped: u64| {
            let samples: Vec<Sample> = texts
                .iter()
                .enumerate()
                .map(|(i, t)| sample(i as u64, t))
                .collect();
            let stats = CorpusStats::compute(&samples, 8, |t: &str| {
                Ok::<_, ()>(t.split_whitespace().count())
            })
            .unwrap();
            crate::corpus_stats::SyntheticCorpus {
                generated: texts.len() as u64 + dropped,
                written: texts.len() as u64,
                dropped: Drops {
                    empty: dropped,
                    duplicate: 0,
                },
                stats,
                examples: Vec::new(),
            }
        };
        // 1 word of a budget of 8 and 1 of 3 dropped: both named
        let w = corpus_warnings(&corpus(&["a", "b"], 1));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("average 1.0 tokens of a budget of 8"),
            "{w:?}"
        );
        // 4 words of 8, nothing dropped: no warning
        assert!(corpus_warnings(&corpus(&["a b c d", "e f g h"], 0)).is_empty());
    }

    #[test]
    fn warnings_name_the_weak_teacher() {
        let small = ModelConfig {
            n_embd: 64,
            n_layer: 2,
            n_head: 2,
            ..ModelConfig::default()
        };
        let w = shape_warnings(&small, &small, 2048, 64);
        assert_eq!(w.len(), 2, "{w:?}");
        let big = ModelConfig {
            pretrain_steps: 10,
            ..ModelConfig::default()
        };
        assert!(shape_warnings(&big, &small, 2048, 64).is_empty());
        let budget = PromptBudget {
            codes: 3,
            longest_code_tokens: 44,
            block_size: 128,
            text_tokens_left: 84,
            max_new_tokens: 48,
        };
        assert!(
            budget
                .warning()
                .unwrap()
                .contains("44 of the teacher's 128")
        );
    }

    #[test]
    fn a_teacher_behind_the_student_after_stage_0_is_named() {
        let p = |name: &str, public_perplexity| Pretrained {
            name: name.to_string(),
            steps: 100,
            public_perplexity,
        };
        let w = pretraining_warnings(&[p("pretrain-teacher", 241.0), p("pretrain-student", 188.0)]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("241.00") && w[0].contains("pretrain_schedule"));
        assert!(
            pretraining_warnings(&[p("pretrain-teacher", 150.0), p("pretrain-student", 188.0)])
                .is_empty()
        );
        // one architecture pre-trained only: nothing to compare
        assert!(pretraining_warnings(&[p("pretrain-teacher", 241.0)]).is_empty());
    }
}
