//! What each stage and release of a run depends on, recorded in `run.json` in the run
//! directory, so that a rerun with other settings is judged stage by stage:
//!
//! - a **private release** (the DistilDP release: label histogram + teacher; the DP-SGD
//!   student; DPKD) that has started or finished is never remade: a rerun whose settings
//!   differ in a field it depends on (or whose data changed) is refused, naming the field and
//!   the release, because remaking it would release the private data again;
//! - a **post-processing** output (synthetic corpus, distilled and hard-label students, public
//!   pre-training) made with other settings is stale: the stage that makes it removes it and
//!   makes it again (nothing private is spent), and a stage that only reads it refuses;
//! - settings no output depends on (`workers`, `backend`, `checkpoint_every`, the
//!   `[baselines]` switches, the clipping path and physical batch size, which change speed
//!   and memory only) may change freely.
//!
//! Nothing is recorded before every check of the run has passed (see `pipeline`), so a refused
//! run leaves the directory as it was and a corrected rerun succeeds in it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Stage;
use super::trainings::TRAININGS;
use crate::config::PipelineConfig;
use crate::error::{DistilDpError, Mismatch, io};
use crate::fingerprint::DataFingerprint;
use crate::run_dir::{RunDir, write_atomic};

/// One output of a run that has an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// The DistilDP release: label histogram and DP teacher (private).
    DistilDp,
    /// Stage 0 of the teacher architecture (public pre-training).
    PretrainTeacher,
    /// Stage 0 of the student architecture (public pre-training).
    PretrainStudent,
    /// The synthetic corpus (post-processing).
    Generation,
    /// The distilled student (post-processing).
    Student,
    /// The hard-label student baseline (post-processing).
    HardLabels,
    /// The DP-SGD student baseline (private).
    DpSgdStudent,
    /// The DPKD baseline: its teacher and student (private).
    Dpkd,
    /// The on-policy student (post-processing).
    OnPolicy,
}

/// The settings every private release depends on.
const PRIVATE: &[&str] = &[
    "seed",
    "insecure_noise_seed",
    "data",
    "privacy",
    "tokenizer",
];
/// The DP-SGD settings of every DP training (the `[teacher]` section's; the clipping path and
/// the physical batch size change only speed and memory).
const DP_SGD: &[&str] = &[
    "teacher.block_size",
    "teacher.epochs",
    "teacher.expected_batch_size",
    "teacher.max_grad_norm",
    "teacher.clipping",
    "teacher.optimizer",
    "teacher.schedule",
    LORA,
];
/// DP-LoRA, one entry (`rank 2, alpha 4, attn.c_attn …`, the resolved α) and only when on:
/// a run without LoRA has the identity it had before the key existed, so its directory
/// stays usable, and turning LoRA on or off, or changing any of its fields, names this key.
const LORA: &str = "teacher.lora";

impl Part {
    /// Every part.
    pub const ALL: [Part; 9] = [
        Part::DistilDp,
        Part::PretrainTeacher,
        Part::PretrainStudent,
        Part::Generation,
        Part::Student,
        Part::HardLabels,
        Part::DpSgdStudent,
        Part::Dpkd,
        Part::OnPolicy,
    ];

    /// Its name in `run.json` and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Part::DistilDp => "DistilDP release (label histogram + teacher)",
            Part::PretrainTeacher => "teacher pre-training",
            Part::PretrainStudent => "student pre-training",
            Part::Generation => "synthetic corpus",
            Part::Student => "distilled student",
            Part::HardLabels => "hard-label student",
            Part::DpSgdStudent => "DP-SGD student release",
            Part::Dpkd => "DPKD release",
            Part::OnPolicy => "on-policy student",
        }
    }

    /// The stage that makes it.
    pub fn stage(self) -> Stage {
        match self {
            Part::DistilDp | Part::PretrainTeacher => Stage::Teacher,
            Part::PretrainStudent | Part::Student | Part::OnPolicy => Stage::Student,
            Part::Generation => Stage::Generate,
            Part::HardLabels | Part::DpSgdStudent | Part::Dpkd => Stage::Baselines,
        }
    }

    /// Whether it is a release of the private data (never remade).
    pub fn is_private(self) -> bool {
        matches!(self, Part::DistilDp | Part::DpSgdStudent | Part::Dpkd)
    }

    /// The configuration fields (dotted paths) it depends on.
    fn keys(self) -> Vec<&'static str> {
        let teacher_release = || {
            let mut k = [PRIVATE, DP_SGD].concat();
            k.extend([
                "teacher.model",
                "generation.samples",
                "generation.allocation",
            ]);
            k
        };
        match self {
            Part::DistilDp => teacher_release(),
            Part::PretrainTeacher => {
                vec!["seed", "tokenizer", "teacher.model", "teacher.block_size"]
            }
            Part::PretrainStudent => {
                vec!["seed", "tokenizer", "student.model", "teacher.block_size"]
            }
            Part::Generation => [teacher_release(), vec!["generation"]].concat(),
            Part::Student | Part::HardLabels | Part::OnPolicy => {
                [teacher_release(), vec!["generation", "student"]].concat()
            }
            Part::DpSgdStudent => [PRIVATE, DP_SGD, &["student.model"]].concat(),
            Part::Dpkd => [
                PRIVATE,
                DP_SGD,
                &["teacher.model", "student.model", "student.loss"],
            ]
            .concat(),
        }
    }

    /// The files and directories it writes (their existence means it has started): the
    /// checkpoints of its trainings (see `pipeline::trainings`), and the label histogram or
    /// the corpus files.
    pub fn outputs(self, dir: &RunDir) -> Vec<PathBuf> {
        let mut v = match self {
            Part::DistilDp => vec![dir.histogram_path()],
            Part::Generation => {
                let corpus = dir.synthetic_path();
                let mut v = vec![
                    synth_gen::completion_marker(&corpus),
                    synth_gen::drop_log(&corpus),
                    corpus,
                ];
                if let Ok(entries) = std::fs::read_dir(dir.root()) {
                    v.extend(
                        entries
                            .filter_map(|e| e.ok())
                            .map(|e| e.path())
                            .filter(|p| {
                                p.file_name()
                                    .and_then(|n| n.to_str())
                                    .is_some_and(|n| n.starts_with("synthetic.shard-"))
                            }),
                    );
                }
                v
            }
            _ => Vec::new(),
        };
        for training in TRAININGS.iter().filter(|t| t.part == self) {
            v.extend(checkpoint_paths(dir.model_dir(training.dir)));
        }
        v
    }

    /// The identity of this part under `config` and `data`.
    pub fn identity(self, config: &PipelineConfig, data: &DataFingerprint) -> PartIdentity {
        let table = toml::Table::try_from(config).expect("a config serialises");
        let mut settings = BTreeMap::new();
        for key in self.keys() {
            if key == LORA {
                settings.extend(config.teacher.lora.describe().map(|d| (key.to_string(), d)));
                continue;
            }
            let mut value: Option<&toml::Value> = None;
            let mut table = Some(&table);
            for p in key.split('.') {
                value = table.and_then(|t| t.get(p));
                table = value.and_then(toml::Value::as_table);
            }
            match value {
                Some(toml::Value::Table(t)) => flatten(key, t, &mut settings),
                Some(v) => {
                    settings.insert(key.to_string(), v.to_string());
                }
                None => {} // an unset optional field
            }
        }
        // `[student.on_policy]` is the on-policy student's only: changing it leaves the
        // distilled and hard-label students as they are
        if self != Part::OnPolicy {
            settings.retain(|k, _| !k.starts_with("student.on_policy."));
        }
        // a model's stage-0 settings matter only when it is pre-trained: without stage 0 its
        // releases keep the identity they had before those settings existed
        for (section, model) in [
            ("teacher.model.", &config.teacher.model),
            ("student.model.", &config.student.model),
        ] {
            if model.pretrain_steps == 0 {
                settings.retain(|k, _| {
                    k.strip_prefix(section).is_none_or(|field| {
                        !field.starts_with("pretrain_") || field == "pretrain_steps"
                    })
                });
            }
        }
        PartIdentity {
            data: data.clone(),
            settings,
        }
    }
}

/// A checkpoint directory and the siblings an interrupted replacement may leave.
fn checkpoint_paths(dir: PathBuf) -> Vec<PathBuf> {
    let sibling = |suffix: &str| {
        let mut name = dir.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        dir.with_file_name(name)
    };
    vec![sibling(".partial"), sibling(".previous"), dir]
}

/// Every leaf of `table` as `prefix.key = value`.
fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (k, v) in table {
        let key = format!("{prefix}.{k}");
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            other => {
                out.insert(key, other.to_string());
            }
        }
    }
}

/// What one part was made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartIdentity {
    /// The data's fingerprints.
    pub data: DataFingerprint,
    /// Every field it depends on, `dotted.key = TOML value`.
    pub settings: BTreeMap<String, String>,
}

impl PartIdentity {
    /// The first difference from `other` (what this one has, then what `other` has), or
    /// `None` when they are equal.
    fn difference(&self, other: &Self) -> Option<(String, String, String)> {
        if self.data != other.data {
            return Some((
                "data (fingerprint of the input file and of the training split)".into(),
                format!(
                    "{} ({} training records)",
                    self.data.short(),
                    self.data.train_records
                ),
                format!(
                    "{} ({} training records)",
                    other.data.short(),
                    other.data.train_records
                ),
            ));
        }
        let keys: std::collections::BTreeSet<&String> =
            self.settings.keys().chain(other.settings.keys()).collect();
        keys.into_iter().find_map(|k| {
            let a = self.settings.get(k);
            let b = other.settings.get(k);
            (a != b).then(|| {
                let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(unset)".into());
                (k.clone(), show(a), show(b))
            })
        })
    }
}

/// `run.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunIdentity {
    /// Format version.
    pub version: u32,
    /// Each part's identity, by [`Part::name`].
    pub parts: BTreeMap<String, PartIdentity>,
}

/// The format version of `run.json`.
pub const IDENTITY_VERSION: u32 = 1;

impl RunIdentity {
    /// `run.json` of `dir` (empty when there is none).
    pub fn load(dir: &RunDir) -> Result<Self, DistilDpError> {
        let path = dir.identity_path();
        if !path.exists() {
            return Ok(Self {
                version: IDENTITY_VERSION,
                parts: BTreeMap::new(),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text).map_err(|e| DistilDpError::Data {
            path,
            line: e.line(),
            message: e.to_string(),
        })
    }
}

/// What a run will do to the run directory once its checks have passed.
#[derive(Debug, Clone)]
pub struct IdentityPlan {
    identity: RunIdentity,
    stale: Vec<Part>,
}

impl IdentityPlan {
    /// The post-processing parts whose outputs were made with other settings and will be
    /// removed and made again.
    pub fn stale(&self) -> &[Part] {
        &self.stale
    }

    /// Removes the stale outputs and writes `run.json`: call only when every check passed.
    pub fn commit(&self, dir: &RunDir) -> Result<(), DistilDpError> {
        for part in &self.stale {
            for path in part.outputs(dir) {
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else if path.exists() {
                    std::fs::remove_file(&path)
                } else {
                    Ok(())
                };
                removed.map_err(io(&path))?;
            }
        }
        let json = serde_json::to_string_pretty(&self.identity).expect("identity serialises");
        Ok(write_atomic(&dir.identity_path(), json.as_bytes())?)
    }
}

/// Checks the parts this run makes (`makes`) and reads (`reads`) against `run.json`, without
/// writing anything. A private part that started with other settings or data is refused; a
/// post-processing part is stale when this run makes it (and `remake` allows removing it:
/// not for a generation shard, whose siblings run at the same time), refused otherwise.
pub fn check(
    dir: &RunDir,
    config: &PipelineConfig,
    data: &DataFingerprint,
    makes: &[Part],
    reads: &[Part],
    remake: bool,
) -> Result<IdentityPlan, DistilDpError> {
    let mut identity = RunIdentity::load(dir)?;
    identity.version = IDENTITY_VERSION;
    let mut stale = Vec::new();
    let mut parts: Vec<Part> = makes.iter().chain(reads).copied().collect();
    parts.sort();
    parts.dedup();
    for part in parts {
        let now = part.identity(config, data);
        let started = part.outputs(dir).iter().any(|p| p.exists());
        let makes_it = makes.contains(&part);
        let recorded = identity.parts.get(part.name());
        let differs = match recorded {
            Some(r) => r.difference(&now),
            None if started => Some((
                "(no record)".into(),
                "an output without a record in run.json".into(),
                "this run".into(),
            )),
            None => None,
        };
        match differs {
            Some((field, was, is)) if started => {
                if part.is_private() || !makes_it || !remake {
                    return Err(DistilDpError::ReleaseMismatch(Box::new(Mismatch {
                        part: part.name(),
                        private: part.is_private(),
                        stage: part.stage().name(),
                        dir: dir.root().to_path_buf(),
                        field,
                        recorded: was,
                        now: is,
                    })));
                }
                stale.push(part);
            }
            _ => {}
        }
        if makes_it {
            identity.parts.insert(part.name().to_string(), now);
        }
    }
    Ok(IdentityPlan { identity, stale })
}
