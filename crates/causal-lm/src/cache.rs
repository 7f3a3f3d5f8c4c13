//! The key/value cache for incremental decoding.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::lm::LmCache;

/// Keys and values of one layer, `[batch, heads, cached, head_dim]` each.
#[derive(Debug, Clone)]
pub struct LayerCache<B: Backend> {
    kv: Option<(Tensor<B, 4>, Tensor<B, 4>)>,
}

impl<B: Backend> LayerCache<B> {
    /// Appends new keys and values on the sequence axis and returns the whole cached sequence.
    pub(crate) fn append(
        &mut self,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let (k, v) = match self.kv.take() {
            Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
            None => (k, v),
        };
        self.kv = Some((k.clone(), v.clone()));
        (k, v)
    }
}

/// Everything a model needs to continue a batch of sequences one chunk at a time: per-layer
/// keys and values, and the attention mask of every cached position (so left-padded prompts
/// keep their padding masked and their positions counted from their first real token).
///
/// Made by [`crate::Gpt2::new_cache`]; filled by [`crate::Gpt2::forward_cached`].
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<LayerCache<B>>,
    mask: Option<Tensor<B, 2, Int>>,
    len: usize,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for a model of `n_layer` blocks.
    pub fn new(n_layer: usize) -> Self {
        Self {
            layers: (0..n_layer).map(|_| LayerCache { kv: None }).collect(),
            mask: None,
            len: 0,
        }
    }

    /// Number of cached positions (padding included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mask of the cached positions, `[batch, len]` (1 real, 0 padding).
    pub fn mask(&self) -> Option<&Tensor<B, 2, Int>> {
        self.mask.as_ref()
    }

    /// Keeps only the given rows of the batch (e.g. to drop finished sequences).
    pub fn select_rows(&mut self, rows: Tensor<B, 1, Int>) {
        for layer in &mut self.layers {
            if let Some((k, v)) = layer.kv.take() {
                layer.kv = Some((k.select(0, rows.clone()), v.select(0, rows.clone())));
            }
        }
        self.mask = self.mask.take().map(|m| m.select(0, rows));
    }

    /// Real tokens cached so far per row, `[batch, 1]`.
    pub(crate) fn real_tokens(&self, batch: usize, device: &B::Device) -> Tensor<B, 2, Int> {
        match &self.mask {
            Some(m) => m.clone().sum_dim(1),
            None => Tensor::zeros([batch, 1], device),
        }
    }

    /// Appends the new chunk's mask and returns the mask of every position.
    pub(crate) fn push_mask(&mut self, new: Tensor<B, 2, Int>) -> Tensor<B, 2, Int> {
        self.len += new.dims()[1];
        let full = match self.mask.take() {
            Some(m) => Tensor::cat(vec![m, new], 1),
            None => new,
        };
        self.mask = Some(full.clone());
        full
    }

    pub(crate) fn ensure_layers(&mut self, n_layer: usize) {
        while self.layers.len() < n_layer {
            self.layers.push(LayerCache { kv: None });
        }
    }

    pub(crate) fn layer_mut(&mut self, i: usize) -> &mut LayerCache<B> {
        &mut self.layers[i]
    }
}

impl<B: Backend> LmCache<B> for KvCache<B> {
    fn len(&self) -> usize {
        KvCache::len(self)
    }
    fn select_rows(&mut self, rows: Tensor<B, 1, Int>) {
        KvCache::select_rows(self, rows)
    }
}
