//! Every model a run trains, as one table ([`TRAININGS`]): its name, checkpoint directory,
//! architecture, the stage that trains it, the part of the run's identity it belongs to, how it
//! learns (a DP-SGD release with its noise stream and share of ε, the synthetic corpus, or
//! public pre-training), the `[baselines]` switch that enables it and its row in the results
//! table (or starts from: the on-policy student). `pipeline::run`, the single-stage commands, the preflight (identity, starting
//! checkpoints, calibration), the evaluation and report, and `identity` (which outputs a part
//! has) all read it.
//!
//! The order of the table is the order a run trains and reports them in.

use super::Stage;
use super::identity::Part;
pub use super::noise::NoiseStream;
use crate::config::{BaselinesConfig, ModelConfig, PipelineConfig};
use crate::error::DistilDpError;
use crate::report::TrainingKind;

/// One of the run's trainings (the key of [`TRAININGS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainingId {
    /// The DP teacher (stage 1).
    Teacher,
    /// The DistilDP student (stage 3).
    Student,
    /// The DistilDP student trained further on its own samples against the DP teacher
    /// (`[student.on_policy]`, off by default).
    OnPolicy,
    /// Baseline: the student architecture with DP-SGD on the private texts.
    DpSgdStudent,
    /// Baseline DPKD: its teacher, at ε/2.
    DpkdTeacher,
    /// Baseline DPKD: its student, with the KD loss against DPKD's teacher.
    DpkdStudent,
    /// Baseline: the student on the synthetic corpus with hard labels only.
    HardLabels,
    /// Public pre-training (stage 0) of the teacher architecture.
    PretrainTeacher,
    /// Public pre-training (stage 0) of the student architecture.
    PretrainStudent,
}

impl TrainingId {
    /// Its row of [`TRAININGS`].
    pub fn training(self) -> &'static Training {
        &TRAININGS[self as usize]
    }
}

/// Which architecture a training trains: which `model` section it reads, from which public
/// seed a fresh model starts, and which pre-training precedes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// `[teacher.model]`.
    Teacher,
    /// `[student.model]`.
    Student,
}

impl Architecture {
    /// Added to the run's `seed` to initialise a fresh model of this architecture (fixed:
    /// existing runs' models depend on it).
    pub fn seed_offset(self) -> u64 {
        match self {
            Self::Teacher => 1,
            Self::Student => 3,
        }
    }

    /// Its shape (or starting checkpoint) in `config`.
    pub fn model(self, config: &PipelineConfig) -> &ModelConfig {
        match self {
            Self::Teacher => &config.teacher.model,
            Self::Student => &config.student.model,
        }
    }

    /// Its public pre-training (stage 0).
    pub fn pretraining(self) -> &'static Training {
        match self {
            Self::Teacher => TrainingId::PretrainTeacher.training(),
            Self::Student => TrainingId::PretrainStudent.training(),
        }
    }
}

/// What share of the run's ε a DP training is calibrated for (its ledger's total, the
/// releases before it included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpsilonShare {
    /// All of it.
    Whole,
    /// Half (DPKD's teacher).
    Half,
}

impl EpsilonShare {
    /// The target ε of the training, for a run at `epsilon`.
    pub fn of(self, epsilon: f64) -> f64 {
        match self {
            Self::Whole => epsilon,
            Self::Half => epsilon / 2.0,
        }
    }
}

/// What a DP-SGD training learns from, and which ledger it continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateData {
    /// `control code + text` of each training record, after the label histogram in one
    /// ledger (the DistilDP release).
    CodedTexts,
    /// The training texts, in a ledger of its own.
    Texts,
    /// The training texts with the KD loss against the model of another DP training, in that
    /// training's ledger (DPKD: both together spend the run's ε).
    DistilledFrom(TrainingId),
}

/// A release of the private data by DP-SGD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpSgd {
    /// Its noise stream.
    pub noise: NoiseStream,
    /// The ε it is calibrated for.
    pub epsilon: EpsilonShare,
    /// Its examples and prior releases.
    pub data: PrivateData,
}

/// How a training learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// DP-SGD on the private training split: a release.
    DpSgd(DpSgd),
    /// On the synthetic corpus (post-processing): with the teacher's soft labels, or with
    /// hard labels only.
    Synthetic {
        /// Whether the DP teacher's distributions are the targets (else hard labels only).
        soft_labels: bool,
    },
    /// On the public corpus, a fixed number of steps (`model.pretrain_steps`).
    Pretraining,
    /// From the finished DistilDP student, on its own samples of the control codes, scored
    /// by the DP teacher (post-processing; only when `student.on_policy.steps > 0`).
    OnPolicy,
}

/// A `[baselines]` switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// `dp_sgd_student`.
    DpSgdStudent,
    /// `dpkd`.
    Dpkd,
    /// `synthetic_hard_labels`.
    SyntheticHardLabels,
}

impl Baseline {
    /// Whether `config` turns it on.
    pub fn enabled(self, config: &BaselinesConfig) -> bool {
        match self {
            Self::DpSgdStudent => config.dp_sgd_student,
            Self::Dpkd => config.dpkd,
            Self::SyntheticHardLabels => config.synthetic_hard_labels,
        }
    }
}

/// A row of the results table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultRow {
    /// The model's name in the table.
    pub name: &'static str,
    /// How it was trained.
    pub kind: TrainingKind,
}

/// One training of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Training {
    /// Its key.
    pub id: TrainingId,
    /// Its name in events, progress bars and its ledger's labels.
    pub name: &'static str,
    /// Its checkpoint directory in the run directory.
    pub dir: &'static str,
    /// What it trains.
    pub architecture: Architecture,
    /// The stage that trains it; any other stage only loads it.
    pub stage: Stage,
    /// The part of the run's identity its checkpoint belongs to.
    pub part: Part,
    /// How it learns.
    pub method: Method,
    /// The switch that enables it; `None`: every run that needs it trains it.
    pub baseline: Option<Baseline>,
    /// Its row in the results table; `None`: not evaluated.
    pub result: Option<ResultRow>,
    /// Exported as `models/<name>` by the evaluation.
    pub exported: bool,
}

impl Training {
    /// Whether `config` turns it on.
    pub fn enabled(&self, config: &PipelineConfig) -> bool {
        let configured = self.method != Method::OnPolicy || config.student.on_policy.enabled();
        configured && self.baseline.is_none_or(|b| b.enabled(&config.baselines))
    }

    /// The finished training whose model it starts from (instead of a fresh or configured
    /// model): the DistilDP student for the on-policy student.
    pub fn starts_from(&self) -> Option<TrainingId> {
        match self.method {
            Method::OnPolicy => Some(TrainingId::Student),
            _ => None,
        }
    }

    /// Its DP-SGD release, if it is one.
    pub fn dp_sgd(&self) -> Option<&DpSgd> {
        match &self.method {
            Method::DpSgd(dp) => Some(dp),
            _ => None,
        }
    }

    /// Its DP-SGD release; an error naming it when it is not one.
    pub fn release(&self) -> Result<&DpSgd, DistilDpError> {
        self.dp_sgd().ok_or_else(|| DistilDpError::InvalidArgument {
            field: "training",
            value: self.name.to_string(),
            expected: "a DP-SGD training of the table",
        })
    }

    /// The training whose model it needs, besides its own starting point: the DP teacher
    /// for the distilled student, DPKD's teacher for DPKD's student.
    pub fn learns_from(&self) -> Option<TrainingId> {
        match self.method {
            Method::DpSgd(DpSgd {
                data: PrivateData::DistilledFrom(teacher),
                ..
            }) => Some(teacher),
            Method::Synthetic { soft_labels: true } | Method::OnPolicy => Some(TrainingId::Teacher),
            _ => None,
        }
    }

    /// The parts of the run it reads besides its own: the synthetic corpus (and the release
    /// it comes from) for a training on it; and the distilled student for the on-policy one.
    pub fn reads(&self) -> &'static [Part] {
        match self.method {
            Method::Synthetic { .. } => &[Part::DistilDp, Part::Generation],
            Method::OnPolicy => &[Part::DistilDp, Part::Generation, Part::Student],
            _ => &[],
        }
    }
}

/// The run's trainings, in the order a run trains and reports them; row `i` is
/// [`TrainingId`] `i`.
pub static TRAININGS: [Training; 9] = [
    Training {
        id: TrainingId::Teacher,
        name: "teacher",
        dir: "teacher",
        architecture: Architecture::Teacher,
        stage: Stage::Teacher,
        part: Part::DistilDp,
        method: Method::DpSgd(DpSgd {
            noise: NoiseStream::TEACHER,
            epsilon: EpsilonShare::Whole,
            data: PrivateData::CodedTexts,
        }),
        baseline: None,
        result: Some(ResultRow {
            name: "DP teacher",
            kind: TrainingKind::DpTeacher,
        }),
        exported: true,
    },
    Training {
        id: TrainingId::Student,
        name: "student",
        dir: "student",
        architecture: Architecture::Student,
        stage: Stage::Student,
        part: Part::Student,
        method: Method::Synthetic { soft_labels: true },
        baseline: None,
        result: Some(ResultRow {
            name: "DistilDP student",
            kind: TrainingKind::DistilDp,
        }),
        exported: true,
    },
    Training {
        id: TrainingId::OnPolicy,
        name: "on-policy",
        dir: "on-policy",
        architecture: Architecture::Student,
        stage: Stage::Student,
        part: Part::OnPolicy,
        method: Method::OnPolicy,
        baseline: None,
        result: Some(ResultRow {
            name: "DistilDP student + on-policy",
            kind: TrainingKind::OnPolicy,
        }),
        exported: true,
    },
    Training {
        id: TrainingId::DpSgdStudent,
        name: "dp-sgd-student",
        dir: "baseline-dp-sgd-student",
        architecture: Architecture::Student,
        stage: Stage::Baselines,
        part: Part::DpSgdStudent,
        method: Method::DpSgd(DpSgd {
            noise: NoiseStream::DP_SGD_STUDENT,
            epsilon: EpsilonShare::Whole,
            data: PrivateData::Texts,
        }),
        baseline: Some(Baseline::DpSgdStudent),
        result: Some(ResultRow {
            name: "DP-SGD student",
            kind: TrainingKind::DpSgdStudent,
        }),
        exported: false,
    },
    Training {
        id: TrainingId::DpkdTeacher,
        name: "dpkd-teacher",
        dir: "baseline-dpkd-teacher",
        architecture: Architecture::Teacher,
        stage: Stage::Baselines,
        part: Part::Dpkd,
        method: Method::DpSgd(DpSgd {
            noise: NoiseStream::DPKD_TEACHER,
            epsilon: EpsilonShare::Half,
            data: PrivateData::Texts,
        }),
        baseline: Some(Baseline::Dpkd),
        result: None,
        exported: false,
    },
    Training {
        id: TrainingId::DpkdStudent,
        name: "dpkd-student",
        dir: "baseline-dpkd-student",
        architecture: Architecture::Student,
        stage: Stage::Baselines,
        part: Part::Dpkd,
        method: Method::DpSgd(DpSgd {
            noise: NoiseStream::DPKD_STUDENT,
            epsilon: EpsilonShare::Whole,
            data: PrivateData::DistilledFrom(TrainingId::DpkdTeacher),
        }),
        baseline: Some(Baseline::Dpkd),
        result: Some(ResultRow {
            name: "DPKD student",
            kind: TrainingKind::Dpkd,
        }),
        exported: false,
    },
    Training {
        id: TrainingId::HardLabels,
        name: "hard-labels",
        dir: "baseline-hard-labels",
        architecture: Architecture::Student,
        stage: Stage::Baselines,
        part: Part::HardLabels,
        method: Method::Synthetic { soft_labels: false },
        baseline: Some(Baseline::SyntheticHardLabels),
        result: Some(ResultRow {
            name: "Synthetic, hard labels only",
            kind: TrainingKind::SyntheticHardLabels,
        }),
        exported: false,
    },
    Training {
        id: TrainingId::PretrainTeacher,
        name: "pretrain-teacher",
        dir: "pretrain-teacher",
        architecture: Architecture::Teacher,
        stage: Stage::Teacher,
        part: Part::PretrainTeacher,
        method: Method::Pretraining,
        baseline: None,
        result: None,
        exported: false,
    },
    Training {
        id: TrainingId::PretrainStudent,
        name: "pretrain-student",
        dir: "pretrain-student",
        architecture: Architecture::Student,
        stage: Stage::Student,
        part: Part::PretrainStudent,
        method: Method::Pretraining,
        baseline: None,
        result: None,
        exported: false,
    },
];

// Row `i` is `TrainingId` `i`, and a training needs only trainings before it: checked when
// the crate compiles.
const _: () = {
    let mut i = 0;
    while i < TRAININGS.len() {
        assert!(TRAININGS[i].id as usize == i);
        if let Method::DpSgd(DpSgd {
            data: PrivateData::DistilledFrom(teacher),
            ..
        }) = TRAININGS[i].method
        {
            assert!((teacher as usize) < i);
        }
        if let Method::OnPolicy = TRAININGS[i].method {
            assert!((TrainingId::Student as usize) < i && (TrainingId::Teacher as usize) < i);
        }
        i += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_directories_are_unique_and_the_noise_streams_keep_their_seeds() {
        let mut dirs: Vec<&str> = TRAININGS.iter().map(|t| t.dir).collect();
        dirs.sort();
        dirs.dedup();
        assert_eq!(dirs.len(), TRAININGS.len());
        let streams: Vec<u64> = TRAININGS
            .iter()
            .filter_map(|t| t.dp_sgd())
            .map(|dp| dp.noise.insecure_seed(0))
            .collect();
        assert_eq!(streams, [2 * 0x9E37, 3 * 0x9E37, 4 * 0x9E37, 5 * 0x9E37]);
        assert_eq!(NoiseStream::LABEL_HISTOGRAM.insecure_seed(7), 7 + 0x9E37);
    }
}
