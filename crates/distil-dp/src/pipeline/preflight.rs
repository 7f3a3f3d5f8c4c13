//! Every check of a run, before its first private release: the identity of each stage against
//! the run directory, the control codes, the prompt room, the starting checkpoints, the public
//! corpus, and the calibration of every DP training the run will start. Only when all pass is
//! anything written (`tokenizer.json`, `config.toml`, `run.json`), so a refused run leaves no
//! release on disk and a corrected rerun succeeds in the same directory.

use burn::tensor::backend::AutodiffBackend;
use dp_accounting::PrivacyLedger;
use synth_gen::ControlCodeFormat;

use super::{Ctx, Stage, dirs};
use crate::dp_train::{DpTraining, plan};
use crate::error::DistilDpError;
use crate::histogram::{ControlCodes, control_codes, load_release};
use crate::identity::{self, Part};

/// The default δ of a run over `n` training records: `n^-1.1`, strictly below 1/n for
/// n ≥ 2. A δ of 1/n would allow a mechanism that publishes one whole record in n with
/// probability ~1 (Dwork & Roth 2014, §2.3); the practice is δ ≪ 1/n (Ponomareva et al.
/// 2023, "How to DP-fy ML", §5.2).
pub fn default_delta(n: usize) -> f64 {
    (n as f64).powf(-1.1)
}

impl<B: AutodiffBackend> Ctx<'_, B> {
    /// The parts this run makes and those it only reads.
    fn parts(&self) -> (Vec<Part>, Vec<Part>) {
        let b = &self.config.baselines;
        let mut makes = Vec::new();
        let mut reads = Vec::new();
        if self.runs(Stage::Teacher) {
            makes.extend([Part::DistilDp, Part::PretrainTeacher]);
        }
        if self.runs(Stage::Generate) {
            reads.push(Part::DistilDp);
            makes.push(Part::Generation);
        }
        if self.runs(Stage::Student) {
            reads.extend([Part::DistilDp, Part::Generation]);
            makes.extend([Part::Student, Part::PretrainStudent]);
        }
        if self.runs(Stage::Baselines) {
            if b.dp_sgd_student {
                makes.extend([Part::DpSgdStudent, Part::PretrainStudent]);
            }
            if b.dpkd {
                makes.extend([Part::Dpkd, Part::PretrainTeacher, Part::PretrainStudent]);
            }
            if b.synthetic_hard_labels {
                reads.extend([Part::DistilDp, Part::Generation]);
                makes.extend([Part::HardLabels, Part::PretrainStudent]);
            }
        }
        if self.runs(Stage::Evaluate) {
            reads.extend([Part::DistilDp, Part::Generation, Part::Student]);
            if b.dp_sgd_student {
                reads.push(Part::DpSgdStudent);
            }
            if b.dpkd {
                reads.push(Part::Dpkd);
            }
            if b.synthetic_hard_labels {
                reads.push(Part::HardLabels);
            }
        }
        (makes, reads)
    }

    /// Runs every check, then records the run (see the module docs). `remake`: stale
    /// post-processing outputs may be removed (not for a generation shard).
    pub(super) fn preflight(&mut self, remake: bool) -> Result<(), DistilDpError> {
        let (makes, reads) = self.parts();
        let plan_dir = identity::check(
            &self.dir,
            self.config,
            &self.fingerprint,
            &makes,
            &reads,
            remake,
        )?;
        crate::prepare::check_public_corpus(self.config)?;
        let mut warnings = Vec::new();
        if makes.contains(&Part::DistilDp) {
            let codes = match load_release(&self.dir)? {
                Some(r) => ControlCodes {
                    codes: r.codes,
                    from_private_data: r.codes_from_private_data,
                    warning: None,
                },
                None => {
                    let codes = control_codes(self.config, &self.splits.train)?;
                    if codes.from_private_data {
                        warnings.push("DISCLOSURE: the control codes are the label combinations present in the private training records (no public domain in data.label_values): which combinations occur is released outside the DP guarantee.".to_string());
                    }
                    warnings.extend(codes.warning.clone());
                    codes
                }
            };
            self.check_prompt_room(&codes)?;
            self.codes = Some(codes);
        }
        self.check_starting_checkpoints(&makes)?;
        self.plan_releases(&makes)?;
        // every check passed: record the run
        crate::prepare::save_tokenizer(&self.dir, &self.tok)?;
        self.dir.save_config(self.config)?;
        plan_dir.commit(&self.dir)?;
        for part in plan_dir.stale() {
            self.rep.warn(
                "run",
                &format!(
                    "the {} was made with other settings: it is removed and made again",
                    part.name()
                ),
            );
        }
        if self.config.insecure_noise_seed.is_some() {
            warnings.push("INSECURE: insecure_noise_seed is set: the DP noise is reproducible from it, so this run has NO differential-privacy guarantee (for tests and debugging only).".to_string());
        }
        let n = self.splits.train.len();
        if self.delta >= 1.0 / n as f64 {
            warnings.push(format!(
                "WARNING: privacy.delta = {:e} is not below 1/N = {:e} (N = {n} training records): a δ this large allows a mechanism that publishes whole records; the default is N^-1.1 = {:e}.",
                self.delta,
                1.0 / n as f64,
                default_delta(n)
            ));
        }
        for w in &warnings {
            self.rep.warn("run", w);
        }
        self.warnings = warnings;
        Ok(())
    }

    /// Refuses, before any training, a generation that cannot fit the teacher's positions:
    /// the longest control code plus `max_new_tokens` must fit `teacher.block_size`.
    fn check_prompt_room(&self, codes: &ControlCodes) -> Result<(), DistilDpError> {
        if self.config.teacher.model.checkpoint.is_some() {
            return Ok(()); // a checkpoint has its own positions; generation checks them
        }
        let format = ControlCodeFormat::default();
        let longest = codes
            .codes
            .iter()
            .map(|c| self.tok.encode(&format.prompt(c)).map(|ids| ids.len()))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .max()
            .unwrap_or(0);
        let new = self.config.generation.sampling.max_new_tokens;
        let block = self.config.teacher.block_size;
        if longest + new > block {
            return Err(DistilDpError::Config {
                message: format!(
                    "generation.sampling.max_new_tokens = {new} does not fit: the longest control code is {longest} tokens and teacher.block_size is {block}; lower max_new_tokens to at most {} or raise teacher.block_size",
                    block.saturating_sub(longest)
                ),
            });
        }
        Ok(())
    }

    /// Loads every starting checkpoint a training of this run reads (and checks it against
    /// the tokenizer and the block size), so a bad path fails before any release.
    fn check_starting_checkpoints(&self, makes: &[Part]) -> Result<(), DistilDpError> {
        let teacher_role = makes
            .iter()
            .any(|p| matches!(p, Part::DistilDp | Part::Dpkd));
        let student_role = makes.iter().any(|p| {
            matches!(
                p,
                Part::Student | Part::HardLabels | Part::DpSgdStudent | Part::Dpkd
            )
        });
        for (uses, field, model) in [
            (
                teacher_role,
                "teacher.model.checkpoint",
                &self.config.teacher.model,
            ),
            (
                student_role,
                "student.model.checkpoint",
                &self.config.student.model,
            ),
        ] {
            let Some(path) = model.checkpoint.as_ref().filter(|_| uses) else {
                continue;
            };
            let gpt = causal_lm::checkpoint::load_any::<B::InnerBackend>(
                path,
                &crate::backend::inner_device::<B>(&self.device),
            )
            .map_err(|e| DistilDpError::Config {
                message: format!("{field} = {}: {e}", path.display()),
            })?;
            self.check_vocabulary(path, gpt.config.vocab_size)?;
            if gpt.config.n_positions < self.config.teacher.block_size {
                return Err(DistilDpError::Config {
                    message: format!(
                        "{field} = {}: the model has {} positions, teacher.block_size is {}",
                        path.display(),
                        gpt.config.n_positions,
                        self.config.teacher.block_size
                    ),
                });
            }
        }
        Ok(())
    }

    /// Calibrates σ of every DP training this run will start, after what each one's ledger
    /// will hold before it (the label histogram for the teacher, DPKD's teacher for DPKD's
    /// student), exactly as the training will: a budget no σ can meet, an expected batch
    /// larger than the data or any other bad setting fails here, before any release.
    fn plan_releases(&self, makes: &[Part]) -> Result<(), DistilDpError> {
        let n = self.splits.train.len();
        let starts = |dir: &str| !dp_optim::checkpoint_exists(&self.dir.model_dir(dir));
        let epsilon = self.config.privacy.epsilon;
        if makes.contains(&Part::DistilDp) && starts(dirs::TEACHER) {
            let prior = match load_release(&self.dir)? {
                Some(r) => r.ledger,
                None => self.config.generation.allocation.planned_ledger()?,
            };
            plan(&self.training("teacher", epsilon, 2), n, prior)?;
        }
        if makes.contains(&Part::DpSgdStudent) && starts(dirs::DP_SGD_STUDENT) {
            let training = self.training("dp-sgd-student", epsilon, 3);
            plan(&training, n, PrivacyLedger::new())?;
        }
        if makes.contains(&Part::Dpkd) && (starts(dirs::DPKD_TEACHER) || starts(dirs::DPKD_STUDENT))
        {
            let teacher = self.training("dpkd-teacher", epsilon / 2.0, 4);
            let planned = plan(&teacher, n, PrivacyLedger::new())?;
            let student = self.training("dpkd-student", epsilon, 5);
            plan(&student, n, planned.ledger)?;
        }
        Ok(())
    }

    /// The settings of one DP-SGD training this run plans (on this process: the plan does
    /// not depend on how many processes share it; see [`dp_training`]).
    fn training<'s>(&'s self, name: &'s str, epsilon: f64, noise_tag: u64) -> DpTraining<'s> {
        dp_training(
            self.config,
            self.delta,
            None,
            &self.dataset_id,
            name,
            epsilon,
            noise_tag,
        )
    }
}

/// The settings of one DP-SGD training of a run (`noise_tag` picks its insecure stream when
/// `insecure_noise_seed` is set; `processes`: spread over them).
pub(super) fn dp_training<'s>(
    config: &'s crate::config::PipelineConfig,
    delta: f64,
    processes: Option<&'s crate::dp_train::Processes>,
    dataset: &'s str,
    name: &'s str,
    epsilon: f64,
    noise_tag: u64,
) -> DpTraining<'s> {
    DpTraining {
        label: name,
        settings: &config.teacher,
        epsilon,
        delta,
        accountant: config.privacy.accountant,
        insecure_noise_seed: config
            .insecure_noise_seed
            .map(|s| s.wrapping_add(noise_tag.wrapping_mul(0x9E37))),
        checkpoint_every: config.checkpoint_every,
        workers: config.workers,
        processes,
        dataset: Some(dataset),
    }
}
