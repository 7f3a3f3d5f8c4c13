//! Stage 4: perplexities on the private test split, and the final models exported.

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::AutodiffBackend;
use causal_lm::{Gpt2, PerplexityReport, perplexity};

use super::ctx::{Ctx, Trained};
use crate::error::DistilDpError;
use crate::report::{ModelResult, TrainingKind};

/// Sequences per forward pass when scoring.
const EVAL_BATCH: usize = 16;

/// Where the final models are exported, in the run directory.
const MODELS: &str = "models";

impl<B: AutodiffBackend> Ctx<'_, B> {
    /// Stage 4 for one model: perplexity on the private test split, without control codes.
    pub(super) fn evaluate(
        &mut self,
        name: &str,
        kind: TrainingKind,
        trained: &Trained<B>,
    ) -> Result<ModelResult, DistilDpError> {
        let model = trained.model.valid();
        let r = self.test_perplexity(&model, false)?;
        let c = &model.config;
        let result = ModelResult {
            name: name.to_string(),
            kind,
            architecture: format!("{} layers x {} wide", c.n_layer, c.n_embd),
            parameters: trained.model.num_params(),
            perplexity: r.perplexity,
            mean_nll: r.mean_nll,
            tokens: r.tokens,
            perplexity_with_codes: None,
            public_perplexity: Some(self.public_perplexity(&model)?),
            dp: trained.dp.clone(),
        };
        self.rep.event(
            "evaluate",
            serde_json::json!({
                "model": name,
                "perplexity": r.perplexity,
                "tokens": r.tokens,
            }),
        );
        Ok(result)
    }

    /// Perplexity on the held-out public texts (packed like the pre-training's).
    pub(super) fn public_perplexity(
        &self,
        model: &Gpt2<B::InnerBackend>,
    ) -> Result<f64, DistilDpError> {
        let (_, held_out) = self.public_split()?;
        Ok(perplexity(
            model,
            &self.tok,
            &held_out,
            self.config.teacher.block_size,
            EVAL_BATCH,
            &self.device,
        )?
        .perplexity)
    }

    /// The teacher's test perplexity on `control code + text` (how it was trained).
    pub(super) fn perplexity_with_codes(&self, teacher: &Gpt2<B>) -> Result<f64, DistilDpError> {
        Ok(self.test_perplexity(&teacher.valid(), true)?.perplexity)
    }

    /// Perplexity on the test split: the texts, or `control code + text` with `codes`.
    fn test_perplexity(
        &self,
        model: &Gpt2<B::InnerBackend>,
        codes: bool,
    ) -> Result<PerplexityReport, DistilDpError> {
        let format = &self.config.data.control_code;
        let texts: Vec<String> = self
            .splits
            .test
            .iter()
            .map(|r| {
                if codes {
                    format!("{}{}", format.prompt(&r.labels), r.text)
                } else {
                    r.text.clone()
                }
            })
            .collect();
        Ok(perplexity(
            model,
            &self.tok,
            &texts,
            self.config.teacher.block_size,
            EVAL_BATCH,
            &self.device,
        )?)
    }

    /// Saves a final model as a native checkpoint with the run's tokenizer, ready for
    /// `distil-dp eval` or `causal_lm::checkpoint::load`.
    pub(super) fn export(&self, name: &str, model: &Gpt2<B>) -> Result<(), DistilDpError> {
        let dir = self.dir.model_dir(MODELS).join(name);
        causal_lm::checkpoint::save(&model.valid(), &dir)?;
        Ok(crate::run_dir::write_atomic(
            &dir.join("tokenizer.json"),
            self.tok.to_json()?.as_bytes(),
        )?)
    }
}
