//! Model configuration: [`Gpt2Config`] and its named presets.

use serde::{Deserialize, Serialize};

use crate::error::CausalLmError;

/// Hyper-parameters of a GPT-2-family model.
///
/// Field names follow Hugging Face's `GPT2Config`, so a `config.json` of the GPT-2 family maps
/// onto it directly (see [`crate::hf`]). Dropout is off by default: the DP-SGD noise already
/// regularises, and a deterministic forward is what distillation and evaluation need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpt2Config {
    /// Number of tokens in the vocabulary (rows of the tied embedding / LM head).
    pub vocab_size: usize,
    /// Longest sequence the learned position embedding covers.
    pub n_positions: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Number of attention heads; must divide `n_embd`.
    pub n_head: usize,
    /// Width of the MLP's hidden layer; `None` means `4 * n_embd`.
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// Epsilon of every LayerNorm.
    #[serde(default = "default_layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
    /// Dropout on the token + position embeddings.
    #[serde(default)]
    pub embd_pdrop: f64,
    /// Dropout on the attention probabilities.
    #[serde(default)]
    pub attn_pdrop: f64,
    /// Dropout on each residual branch.
    #[serde(default)]
    pub resid_pdrop: f64,
    /// Standard deviation of the normal initialisation of weights (GPT-2: 0.02).
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
    /// Id of the end-of-text token, if known (written to Hugging Face's `config.json` as
    /// `bos_token_id` and `eos_token_id`).
    #[serde(default)]
    pub eos_token_id: Option<u32>,
}

fn default_layer_norm_epsilon() -> f64 {
    1e-5
}

fn default_initializer_range() -> f64 {
    0.02
}

impl Gpt2Config {
    /// A configuration with GPT-2's defaults for everything but the sizes.
    pub fn new(
        vocab_size: usize,
        n_positions: usize,
        n_embd: usize,
        n_layer: usize,
        n_head: usize,
    ) -> Self {
        Self {
            vocab_size,
            n_positions,
            n_embd,
            n_layer,
            n_head,
            n_inner: None,
            layer_norm_epsilon: default_layer_norm_epsilon(),
            embd_pdrop: 0.0,
            attn_pdrop: 0.0,
            resid_pdrop: 0.0,
            initializer_range: default_initializer_range(),
            eos_token_id: None,
        }
    }

    /// A configuration by preset name: one of [`Gpt2Config::PRESETS`].
    pub fn preset(name: &str) -> Result<Self, CausalLmError> {
        match name {
            "tiny" => Ok(Self::tiny()),
            "gpt2" => Ok(Self::gpt2()),
            "distilgpt2" => Ok(Self::distilgpt2()),
            "gpt2-medium" => Ok(Self::gpt2_medium()),
            "gpt2-large" => Ok(Self::gpt2_large()),
            "gpt2-xl" => Ok(Self::gpt2_xl()),
            other => Err(CausalLmError::InvalidParameter {
                field: "preset",
                value: other.to_string(),
                expected: "one of tiny, gpt2, distilgpt2, gpt2-medium, gpt2-large, gpt2-xl",
            }),
        }
    }

    /// Names accepted by [`Gpt2Config::preset`].
    pub const PRESETS: [&'static str; 6] = [
        "tiny",
        "gpt2",
        "distilgpt2",
        "gpt2-medium",
        "gpt2-large",
        "gpt2-xl",
    ];

    /// A 1.3M-parameter model for tests and CPU demos: 4 layers, width 128, 4 heads,
    /// 256 positions, a 4096-token vocabulary (train a tokenizer of that size).
    pub fn tiny() -> Self {
        Self::new(4096, 256, 128, 4, 4)
    }

    /// Hugging Face `gpt2` (124M parameters).
    pub fn gpt2() -> Self {
        Self::new(50257, 1024, 768, 12, 12)
    }

    /// Hugging Face `distilgpt2` (82M parameters): `gpt2` with 6 layers.
    pub fn distilgpt2() -> Self {
        Self::new(50257, 1024, 768, 6, 12)
    }

    /// Hugging Face `gpt2-medium` (355M parameters).
    pub fn gpt2_medium() -> Self {
        Self::new(50257, 1024, 1024, 24, 16)
    }

    /// Hugging Face `gpt2-large` (774M parameters).
    pub fn gpt2_large() -> Self {
        Self::new(50257, 1024, 1280, 36, 20)
    }

    /// Hugging Face `gpt2-xl` (1.5B parameters).
    pub fn gpt2_xl() -> Self {
        Self::new(50257, 1024, 1600, 48, 25)
    }

    /// Replaces the vocabulary size (e.g. with a trained tokenizer's).
    pub fn with_vocab_size(mut self, vocab_size: usize) -> Self {
        self.vocab_size = vocab_size;
        self
    }

    /// Replaces the context length.
    pub fn with_n_positions(mut self, n_positions: usize) -> Self {
        self.n_positions = n_positions;
        self
    }

    /// Sets the three dropout probabilities at once.
    pub fn with_dropout(mut self, p: f64) -> Self {
        self.embd_pdrop = p;
        self.attn_pdrop = p;
        self.resid_pdrop = p;
        self
    }

    /// Width of the MLP's hidden layer.
    pub fn inner_dim(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Number of trainable parameters (the LM head is tied, so not counted twice).
    pub fn num_params(&self) -> usize {
        let d = self.n_embd;
        let inner = self.inner_dim();
        let block = 2 * (2 * d) // two LayerNorms
            + d * 3 * d + 3 * d // c_attn
            + d * d + d // attn.c_proj
            + d * inner + inner // c_fc
            + inner * d + d; // mlp.c_proj
        self.vocab_size * d + self.n_positions * d + self.n_layer * block + 2 * d
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), CausalLmError> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_inner", self.inner_dim()),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(CausalLmError::InvalidParameter {
                    field,
                    value: value.to_string(),
                    expected: "an integer >= 1",
                });
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(CausalLmError::InvalidParameter {
                field: "n_head",
                value: self.n_head.to_string(),
                expected: "a divisor of n_embd",
            });
        }
        for (field, p) in [
            ("embd_pdrop", self.embd_pdrop),
            ("attn_pdrop", self.attn_pdrop),
            ("resid_pdrop", self.resid_pdrop),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(CausalLmError::InvalidParameter {
                    field,
                    value: p.to_string(),
                    expected: "a probability in [0, 1)",
                });
            }
        }
        if !(self.layer_norm_epsilon > 0.0 && self.layer_norm_epsilon.is_finite()) {
            return Err(CausalLmError::InvalidParameter {
                field: "layer_norm_epsilon",
                value: self.layer_norm_epsilon.to_string(),
                expected: "a finite number > 0",
            });
        }
        if !(self.initializer_range > 0.0 && self.initializer_range.is_finite()) {
            return Err(CausalLmError::InvalidParameter {
                field: "initializer_range",
                value: self.initializer_range.to_string(),
                expected: "a finite number > 0",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_published_sizes() {
        // Parameter counts of the Hugging Face checkpoints.
        assert_eq!(Gpt2Config::gpt2().num_params(), 124_439_808);
        assert_eq!(Gpt2Config::distilgpt2().num_params(), 81_912_576);
        assert_eq!(Gpt2Config::gpt2_medium().num_params(), 354_823_168);
        assert_eq!(Gpt2Config::gpt2_large().num_params(), 774_030_080);
        assert_eq!(Gpt2Config::gpt2_xl().num_params(), 1_557_611_200);
        for name in Gpt2Config::PRESETS {
            Gpt2Config::preset(name).unwrap().validate().unwrap();
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = Gpt2Config::tiny();
        c.n_head = 3;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("n_head"), "{e}");
        assert!(Gpt2Config::preset("gpt5").is_err());
    }
}
