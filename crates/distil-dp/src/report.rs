//! The run's report: test perplexities of every model and the privacy ledger of every DP
//! release, as `report.json` (for programs) and `report.md` (for people and auditors).

use dp_accounting::{DpEvent, PrivacyLedger};
use serde::{Deserialize, Serialize};

use crate::config::PipelineConfig;
use crate::corpus_stats::SyntheticCorpus;
use crate::dp_train::{DpFineTuning, DpSummary};
use crate::error::DistilDpError;
use crate::histogram::LabelRelease;
use crate::records::Record;
use crate::run_dir::{RunDir, write_atomic};
use crate::split::Splits;

/// The report format version.
pub const REPORT_VERSION: u32 = 1;

/// How a model was trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainingKind {
    /// DP-SGD on the private training split with control codes (stage 1).
    DpTeacher,
    /// Distilled on the synthetic corpus from the DP teacher (stage 3).
    DistilDp,
    /// DP-SGD directly on the private training split (baseline).
    DpSgdStudent,
    /// DP-SGD with the KD loss against a teacher DP-trained at ε/2 (baseline).
    Dpkd,
    /// Hard labels only on the synthetic corpus (baseline).
    SyntheticHardLabels,
    /// The DistilDP student trained further on its own samples against the DP teacher
    /// (on-policy distillation, `[student.on_policy]`).
    OnPolicy,
}

impl TrainingKind {
    /// What the model was trained on, for the table.
    pub fn trained_on(self) -> &'static str {
        match self {
            Self::DpTeacher => "private data, DP-SGD",
            Self::DistilDp => "synthetic data, soft + hard labels",
            Self::DpSgdStudent => "private data, DP-SGD",
            Self::Dpkd => "private data, DP-SGD with KD loss",
            Self::SyntheticHardLabels => "synthetic data, hard labels",
            Self::OnPolicy => "synthetic data, then its own samples scored by the teacher",
        }
    }
}

/// One row of the results table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    /// Display name.
    pub name: String,
    /// How it was trained.
    pub kind: TrainingKind,
    /// `L layers x W wide`.
    pub architecture: String,
    /// Parameter count.
    pub parameters: usize,
    /// Test perplexity (no control codes).
    pub perplexity: f64,
    /// Mean NLL per predicted token (nats).
    pub mean_nll: f64,
    /// Predicted test tokens.
    pub tokens: usize,
    /// The teacher only: test perplexity with each text preceded by its control code (as
    /// the teacher was trained); the code's own tokens are scored too.
    pub perplexity_with_codes: Option<f64>,
    /// Perplexity on held-out public text (never trained on, no private data): evidence on
    /// how much English a model knows that touches no private split.
    #[serde(default)]
    pub public_perplexity: Option<f64>,
    /// Its own DP training, for the DP-trained models.
    pub dp: Option<DpSummary>,
}

/// Record counts of the splits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordCounts {
    /// Training records (the private data the DP releases are about).
    pub train: usize,
    /// Validation records (not used by the pipeline).
    pub validation: usize,
    /// Test records (evaluation).
    pub test: usize,
}

/// One DP release the report accounts for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// What was released: `DistilDP` (the label histogram and the teacher; the corpus and
    /// the students trained on it are post-processing), or a DP-trained baseline.
    pub name: String,
    /// ε at the run's δ of its whole ledger.
    pub epsilon: f64,
    /// Its ledger: every mechanism it ran.
    pub ledger: PrivacyLedger,
}

/// The privacy part of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivacyReport {
    /// The configured total ε of each release.
    pub target_epsilon: f64,
    /// δ.
    pub delta: f64,
    /// The accountant (`pld`, `prv`, `rdp`).
    pub accountant: dp_accounting::AccountantKind,
    /// The DistilDP release (label histogram + teacher), then each DP-trained baseline.
    pub releases: Vec<Release>,
    /// ε if every release above were published together (their composition).
    pub all_releases_epsilon: f64,
    /// The label stage: codes, samples, allocation.
    pub label_release: LabelRelease,
    /// The noise came from a caller-seeded stream: NO privacy guarantee.
    pub insecure_noise: bool,
    /// What the guarantee covers and what it does not.
    pub notes: Vec<String>,
}

/// Everything `report.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Format version.
    pub version: u32,
    /// Data source (`embedded corpus` or the path).
    pub data: String,
    /// Split sizes.
    pub records: RecordCounts,
    /// Public seed of the run.
    pub seed: u64,
    /// Test perplexities.
    pub results: Vec<ModelResult>,
    /// The ledger.
    pub privacy: PrivacyReport,
    /// How much of the teacher's block the control codes leave for text.
    #[serde(default)]
    pub prompt_budget: Option<crate::teacher_check::PromptBudget>,
    /// The models pre-trained on public text (stage 0) in the invocation that wrote the
    /// report, with their perplexity on held-out public text.
    #[serde(default)]
    pub pretraining: Vec<crate::teacher_check::Pretrained>,
    /// Stage 2's corpus: statistics, drops by reason, first samples (absent when the run
    /// directory holds no complete `synthetic.jsonl`).
    #[serde(default)]
    pub synthetic_corpus: Option<SyntheticCorpus>,
    /// What each DP training of the run trained (its LoRA adapters, or every parameter),
    /// DPKD's teacher included, in the order of the run.
    #[serde(default)]
    pub dp_trainings: Vec<DpFineTuning>,
}

impl Report {
    /// Assembles the report of a finished run; `warnings` (shown when the run started: δ
    /// not below 1/N, fine control codes) are repeated in its notes.
    pub fn new(
        config: &PipelineConfig,
        splits: &Splits<Record>,
        delta: f64,
        release: &LabelRelease,
        results: Vec<ModelResult>,
        warnings: &[String],
        prompt_budget: Option<crate::teacher_check::PromptBudget>,
    ) -> Result<Self, DistilDpError> {
        let accountant = config.privacy.accountant.build();
        let mut releases = Vec::new();
        let mut insecure = false;
        for r in &results {
            let Some(dp) = &r.dp else { continue };
            insecure |= dp.insecure;
            let name = match r.kind {
                TrainingKind::DpTeacher => "DistilDP".to_string(),
                TrainingKind::Dpkd => "DPKD baseline".to_string(),
                _ => format!("{} baseline", r.name),
            };
            releases.push(Release {
                name,
                epsilon: dp.epsilon,
                ledger: dp.ledger.clone(),
            });
        }
        let mut all = PrivacyLedger::new();
        for (i, r) in releases.iter().enumerate() {
            for e in r.ledger.entries() {
                all.record(&format!("release-{i}-{}", e.label), e.event.clone())
                    .map_err(|e| DistilDpError::Config {
                        message: format!("ledger: {e}"),
                    })?;
            }
        }
        let all_releases_epsilon = if all.entries().is_empty() {
            0.0
        } else {
            all.epsilon(&accountant, delta)
                .map_err(|e| DistilDpError::Config {
                    message: format!("ledger: {e}"),
                })?
                .upper
        };
        let mut notes = vec![
            "Guarantee: each release is (ε, δ)-DP with respect to adding or removing one training record, ε from the accountant's upper bound on the composition of its ledger, for anyone who sees the published outputs (below), assuming the DP noise and sampling came from the OS-seeded CSPRNG and the run directory was not read by others while the run went on.".to_string(),
            "Privacy unit: one record of the data file (its text and its labels). A person with k records is protected as a group of k (roughly kε).".to_string(),
            "Treated as public, outside the guarantee: N (training records) and the split sizes, the synthetic corpus size (generation.samples, default N), the configuration. Records are split by a keyed hash of their content (the seed data.split.seed), so adding or removing one record moves no other.".to_string(),
            "The DistilDP release is the label histogram (exact discrete Gaussian) and the teacher; the synthetic corpus, the DistilDP student and the hard-label student are post-processing of it and spend no further budget. The DPKD baseline's teacher (target ε/2) and student are composed in one ledger at the run's ε.".to_string(),
            tokenizer_note(config),
            "The test perplexities are computed on private test records and reported without noise: they are outside the guarantee (as in the paper). The validation split is not used.".to_string(),
            "Training losses and times of the DP trainings are not logged (they depend on private records and batch sizes); the loss curves show the non-private trainings only.".to_string(),
            "Safe to publish: the exported models (models/), the synthetic corpus (synthetic.jsonl), label-histogram.json, tokenizer.json, and this report's privacy section. Keep private: the data, run.json and the DP checkpoints' trainer state (run.json holds SHA-256 fingerprints of the data, which confirm a guessed file), the checkpoint directories of unfinished DP trainings (their secrets file regenerates the noise; it is deleted when a training finishes), and the test perplexities unless their disclosure is acceptable.".to_string(),
        ];
        notes.extend(
            warnings
                .iter()
                .filter(|w| !w.starts_with("DISCLOSURE") && !w.starts_with("INSECURE"))
                .cloned(),
        );
        notes.extend(crate::teacher_check::result_warnings(&results));
        if release.codes_from_private_data {
            notes.push("DISCLOSURE: the control codes are the label combinations present in the private training data (no public label domain was configured, data.label_values): which combinations occur is revealed outside the DP guarantee.".to_string());
        }
        if insecure {
            notes.push("INSECURE: the DP noise came from a caller-seeded stream (insecure_noise_seed): anyone who knows the seed can remove it. This run has NO differential-privacy guarantee.".to_string());
        }
        Ok(Self {
            version: REPORT_VERSION,
            data: config.data.path.as_ref().map_or_else(
                || "embedded corpus".to_string(),
                |p| p.display().to_string(),
            ),
            records: RecordCounts {
                train: splits.train.len(),
                validation: splits.validation.len(),
                test: splits.test.len(),
            },
            seed: config.seed,
            prompt_budget,
            pretraining: Vec::new(),
            results,
            privacy: PrivacyReport {
                target_epsilon: config.privacy.epsilon,
                delta,
                accountant: config.privacy.accountant,
                releases,
                all_releases_epsilon,
                label_release: release.clone(),
                insecure_noise: insecure,
                notes,
            },
            synthetic_corpus: None,
            dp_trainings: Vec::new(),
        })
    }

    /// Writes `report.json`, `report.md` and `loss-curves.svg` (atomically).
    pub fn write(&self, dir: &RunDir) -> Result<(), DistilDpError> {
        let json = serde_json::to_string_pretty(self).expect("a report serialises");
        write_atomic(&dir.root().join("report.json"), json.as_bytes())?;
        write_atomic(&dir.root().join("report.md"), self.markdown().as_bytes())?;
        let svg = crate::curves::loss_curves_svg(&dir.metrics_path())?;
        Ok(write_atomic(
            &dir.root().join("loss-curves.svg"),
            svg.as_bytes(),
        )?)
    }

    /// The results table (markdown).
    pub fn results_table(&self) -> String {
        let mut s = String::from(
            "| model | trained on | architecture | parameters | ε | test perplexity |\n|---|---|---|---:|---:|---:|\n",
        );
        let distil_eps = self
            .results
            .iter()
            .find(|r| r.kind == TrainingKind::DpTeacher)
            .and_then(|r| r.dp.as_ref())
            .map(|d| d.epsilon);
        for r in &self.results {
            let eps = r.dp.as_ref().map(|d| d.epsilon).or(distil_eps);
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {:.2} |\n",
                r.name,
                r.kind.trained_on(),
                r.architecture,
                r.parameters,
                eps.map_or("-".to_string(), |e| format!("{e:.3}")),
                r.perplexity
            ));
        }
        s
    }

    /// The teacher's perplexity with control codes, as a sentence (empty if not measured).
    pub fn codes_note(&self) -> String {
        self.results
            .iter()
            .find_map(|r| r.perplexity_with_codes.map(|p| (r, p)))
            .map_or_else(String::new, |(r, p)| {
                format!(
                    "\n{} on the test texts preceded by their control codes, as it was trained: {p:.2}.\n",
                    r.name
                )
            })
    }

    /// The privacy report (markdown).
    pub fn privacy_markdown(&self) -> String {
        let p = &self.privacy;
        let mut s = format!(
            "Target ε = {} per release, δ = {:.3e}, accountant `{}`.\n\n",
            p.target_epsilon,
            p.delta,
            serde_json::to_value(p.accountant)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        );
        s.push_str("| release | mechanism | q | σ | steps | ε |\n|---|---|---:|---:|---:|---:|\n");
        for r in &p.releases {
            for e in r.ledger.entries() {
                let (mechanism, q, sigma, steps) = describe(&e.event);
                s.push_str(&format!(
                    "| {} / {} | {mechanism} | {q} | {sigma} | {steps} | |\n",
                    r.name, e.label
                ));
            }
            s.push_str(&format!(
                "| **{}** | composition | | | | **{:.4}** |\n",
                r.name, r.epsilon
            ));
        }
        s.push_str(&format!(
            "\nAll releases together (if every model above were published): ε = {:.4}.\n\n",
            p.all_releases_epsilon
        ));
        s.push_str(&self.fine_tuning_markdown());
        let l = &p.label_release;
        s.push_str(&format!(
            "Label stage: {} control codes, {} synthetic samples allocated ({}).\n\n",
            l.codes.len(),
            l.samples.iter().sum::<usize>(),
            match &l.allocation {
                crate::allocation::SampleAllocation::DpHistogram { noise_multiplier } =>
                    format!("exact discrete Gaussian histogram of the private label counts, σ = {noise_multiplier}"),
                other => format!("{other:?}, no private data read"),
            }
        ));
        for n in &p.notes {
            s.push_str(&format!("- {n}\n"));
        }
        s
    }

    /// What each DP training trained, as a table (empty when the report lists none).
    pub fn fine_tuning_markdown(&self) -> String {
        if self.dp_trainings.is_empty() {
            return String::new();
        }
        let mut s = String::from(
            "What DP-SGD trained:\n\n| DP training | fine-tuning | trained parameters | released model's parameters |\n|---|---|---:|---:|\n",
        );
        for t in &self.dp_trainings {
            let how = match &t.lora {
                None => "full (every parameter)".to_string(),
                Some(l) => format!(
                    "DP-LoRA, rank {}, α = {} ({}), A seeded with {}",
                    l.rank,
                    l.alpha,
                    l.projections
                        .iter()
                        .map(|p| p.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                    l.seed
                ),
            };
            s.push_str(&format!(
                "| {} | {how} | {} ({:.2}%) | {} |\n",
                t.training,
                t.trainable_parameters,
                100.0 * t.trainable_parameters as f64 / t.parameters.max(1) as f64,
                t.parameters
            ));
        }
        if self.dp_trainings.iter().any(|t| t.lora.is_some()) {
            s.push_str("\nDP-LoRA (Yu et al. 2022, Kurakin et al. 2023): DP-SGD clipped, noised and updated the low-rank adapters only, with the q, σ and steps of the ledger above; the released model is the adapters merged into the frozen public starting model, which is post-processing: the same (ε, δ).\n");
        }
        s.push('\n');
        s
    }

    /// The whole `report.md`.
    pub fn markdown(&self) -> String {
        format!(
            "# DistilDP run report\n\nData: {} ({} train / {} validation / {} test records), seed {}.\n\n## Results\n\nPerplexity on the test split, texts without control codes (lower is better).\n\n{}{}\n{}## Is the teacher worth distilling?\n\n{}\n## Privacy\n\n{}\nLoss curves: `loss-curves.svg`; metrics: `metrics.jsonl`; configuration: `config.toml`.\n",
            self.data,
            self.records.train,
            self.records.validation,
            self.records.test,
            self.seed,
            self.results_table(),
            self.codes_note(),
            self.synthetic_corpus
                .as_ref()
                .map_or_else(String::new, SyntheticCorpus::markdown),
            crate::teacher_check::markdown(self),
            self.privacy_markdown()
        )
    }
}

/// What the report says of the tokenizer: what was actually used.
fn tokenizer_note(config: &PipelineConfig) -> String {
    let t = &config.tokenizer;
    if let Some(path) = &t.path {
        return format!(
            "The tokenizer is the user-supplied {}: what it was trained on is the user's responsibility (if on the private data, that use is outside the guarantee).",
            path.display()
        );
    }
    if t.public_corpus.is_empty() {
        return "The tokenizer was trained on the embedded public corpus, never on the private records.".to_string();
    }
    format!(
        "The tokenizer (and any pre-training) used the public files {} (refused when they are the private data), never the private records.",
        t.public_corpus
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// (mechanism, q, σ, steps) of a ledger event, as table cells.
fn describe(event: &DpEvent) -> (String, String, String, String) {
    match event {
        DpEvent::DiscreteGaussian { sigma } => (
            "discrete Gaussian (label counts)".into(),
            "1".into(),
            format!("{sigma:.4}"),
            "1".into(),
        ),
        DpEvent::Gaussian { noise_multiplier } => (
            "Gaussian".into(),
            "1".into(),
            format!("{noise_multiplier:.4}"),
            "1".into(),
        ),
        DpEvent::PoissonSampledGaussian {
            sample_rate,
            noise_multiplier,
        } => (
            "Poisson-sampled Gaussian (DP-SGD)".into(),
            format!("{sample_rate:.5}"),
            format!("{noise_multiplier:.4}"),
            "1".into(),
        ),
        DpEvent::SelfComposed { event, count } => {
            let (m, q, s, _) = describe(event);
            (m, q, s, count.to_string())
        }
        DpEvent::Composed { events } => (
            format!("composition of {} events", events.len()),
            String::new(),
            String::new(),
            String::new(),
        ),
    }
}
