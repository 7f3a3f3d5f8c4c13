//! Every check of a run, before its first private release: the identity of each stage against
//! the run directory, the control codes, the prompt room, the starting checkpoints, the public
//! corpus, and the calibration of every DP training the run will start. Only when all pass is
//! anything written (`tokenizer.json`, `config.toml`, `run.json`), so a refused run leaves no
//! release on disk and a corrected rerun succeeds in the same directory.

use burn::tensor::backend::AutodiffBackend;
use dp_accounting::PrivacyLedger;

use super::Stage;
use super::ctx::Ctx;
use super::dp::dp_training;
use super::identity::{self, Part};
use super::trainings::{Architecture, Method, PrivateData, TRAININGS, Training, TrainingId};
use crate::dp_train::plan;
use crate::error::DistilDpError;
use crate::histogram::{ControlCodes, control_codes, load_release};
use crate::teacher_check::{PromptBudget, shape_warnings};

/// The default δ of a run over `n` training records: `n^-1.1`, strictly below 1/n for
/// n ≥ 2. A δ of 1/n would allow a mechanism that publishes one whole record in n with
/// probability ~1 (Dwork & Roth 2014, §2.3); the practice is δ ≪ 1/n (Ponomareva et al.
/// 2023, "How to DP-fy ML", §5.2).
pub fn default_delta(n: usize) -> f64 {
    (n as f64).powf(-1.1)
}

impl<B: AutodiffBackend> Ctx<'_, B> {
    /// The parts this run makes and those it only reads: each training of the table its
    /// stage runs makes its part and the pre-training of its architecture, and reads what it
    /// learns from; the generation reads the DistilDP release; the evaluation reads every
    /// evaluated training's part and what that one read.
    fn parts(&self) -> (Vec<Part>, Vec<Part>) {
        let mut makes = Vec::new();
        let mut reads = Vec::new();
        if self.runs(Stage::Generate) {
            reads.push(Part::DistilDp);
            makes.push(Part::Generation);
        }
        for t in TRAININGS.iter().filter(|t| t.enabled(self.config)) {
            if t.method == Method::Pretraining {
                continue;
            }
            if self.runs(t.stage) {
                makes.extend([t.part, t.architecture.pretraining().part]);
                reads.extend(t.reads());
            }
            if self.runs(Stage::Evaluate) && t.result.is_some() {
                reads.push(t.part);
                reads.extend(t.reads());
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
            let budget = self.prompt_budget(&codes.codes)?;
            self.rep
                .event("run", serde_json::json!({ "prompt_budget": budget }));
            eprintln!("[run] {}", budget.describe());
            self.check_prompt_room(&budget)?;
            warnings.extend(budget.warning());
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
        warnings.extend(shape_warnings(
            &self.config.teacher.model,
            &self.config.student.model,
            self.tok.vocab_size(),
            self.config.teacher.block_size,
        ));
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

    /// How much of the teacher's block the control `codes` leave for text.
    pub(super) fn prompt_budget(
        &self,
        codes: &[crate::histogram::Code],
    ) -> Result<PromptBudget, DistilDpError> {
        let format = &self.config.data.control_code;
        let longest = codes
            .iter()
            .map(|c| self.tok.encode(&format.prompt(c)).map(|ids| ids.len()))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .max()
            .unwrap_or(0);
        let block = self.config.teacher.block_size;
        Ok(PromptBudget {
            codes: codes.len(),
            longest_code_tokens: longest,
            block_size: block,
            text_tokens_left: block.saturating_sub(longest),
            max_new_tokens: self.config.generation.sampling.max_new_tokens,
        })
    }

    /// Refuses, before any training, a generation that cannot fit the teacher's positions:
    /// the longest control code plus `max_new_tokens` must fit `teacher.block_size`.
    fn check_prompt_room(&self, budget: &PromptBudget) -> Result<(), DistilDpError> {
        if self.config.teacher.model.checkpoint.is_some() {
            return Ok(()); // a checkpoint has its own positions; generation checks them
        }
        let longest = budget.longest_code_tokens;
        let new = budget.max_new_tokens;
        let block = budget.block_size;
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
    /// the tokenizer, the block size and, for a DP training, `teacher.lora.rank`), so a bad
    /// path fails before any release.
    fn check_starting_checkpoints(&self, makes: &[Part]) -> Result<(), DistilDpError> {
        let trained = |architecture: Architecture, dp_only: bool| {
            TRAININGS.iter().any(|t| {
                t.method != Method::Pretraining
                    && (!dp_only || t.dp_sgd().is_some())
                    && t.enabled(self.config)
                    && t.architecture == architecture
                    && makes.contains(&t.part)
            })
        };
        let uses = |architecture: Architecture| trained(architecture, false);
        for (architecture, field) in [
            (Architecture::Teacher, "teacher.model.checkpoint"),
            (Architecture::Student, "student.model.checkpoint"),
        ] {
            let model = architecture.model(self.config);
            let Some(path) = model.checkpoint.as_ref().filter(|_| uses(architecture)) else {
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
            if trained(architecture, true) {
                let name = format!("{field} = {}", path.display());
                self.config
                    .teacher
                    .lora
                    .check_width(gpt.config.n_embd, &name)?;
            }
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
    /// larger than the data or any other bad setting fails here, before any release. A
    /// release (a part) is planned whole when any of its trainings starts.
    fn plan_releases(&self, makes: &[Part]) -> Result<(), DistilDpError> {
        let n = self.splits.train.len();
        let starts = |t: &Training| !dp_optim::checkpoint_exists(&self.model_dir(t));
        let dp_trainings = || TRAININGS.iter().filter(|t| t.dp_sgd().is_some());
        let mut planned: Vec<(TrainingId, PrivacyLedger)> = Vec::new();
        for training in dp_trainings() {
            if !makes.contains(&training.part)
                || !dp_trainings().any(|t| t.part == training.part && starts(t))
            {
                continue;
            }
            let prior = match training.release()?.data {
                PrivateData::CodedTexts => match load_release(&self.dir)? {
                    Some(r) => r.ledger,
                    None => self.config.generation.allocation.planned_ledger()?,
                },
                PrivateData::Texts => PrivacyLedger::new(),
                // planned just before: the same release (part) as this training
                PrivateData::DistilledFrom(id) => planned
                    .iter()
                    .find(|(p, _)| *p == id)
                    .map(|(_, ledger)| ledger.clone())
                    .unwrap_or_default(),
            };
            // on this process: the plan does not depend on how many processes share it
            let settings = dp_training(self.config, self.delta, &self.dataset_id, training, None)?;
            let plan = plan(&settings, n, prior)?;
            planned.push((training.id, plan.ledger));
        }
        Ok(())
    }
}
