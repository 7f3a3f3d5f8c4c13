//! LoRA adapters: a fresh adapter changes nothing, merging keeps the function, the merged
//! model exports as plain GPT-2, only the adapters train, and bad settings name their field.

mod common;

use burn::backend::Autodiff;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use causal_lm::{
    CausalLmError, Gpt2, Gpt2Config, LoraConfig, LoraGpt2, LoraProjection, hf, next_token_nll,
};
use common::{ids, max_abs_diff, values};

fn base<B: Backend>(device: &B::Device) -> Gpt2<B> {
    B::seed(device, 7);
    let mut config = Gpt2Config::new(50, 16, 16, 2, 2);
    config.eos_token_id = Some(3);
    config.init::<B>(device).unwrap()
}

fn batch<B: Backend>(device: &B::Device) -> burn::tensor::Tensor<B, 2, burn::tensor::Int> {
    ids::<B>(&[vec![1, 5, 7, 49, 2, 8], vec![4, 4, 9, 0, 11, 3]], device)
}

/// Gives every `B` non-zero values (a trained adapter), keeping parameter ids.
fn perturb<B: Backend>(mut model: LoraGpt2<B>, device: &B::Device) -> LoraGpt2<B> {
    B::seed(device, 11);
    for block in &mut model.adapters {
        for a in [
            &mut block.c_attn,
            &mut block.attn_c_proj,
            &mut block.c_fc,
            &mut block.mlp_c_proj,
        ]
        .into_iter()
        .flatten()
        {
            let id = a.b.weight.id;
            let shape = a.b.weight.dims();
            a.b.weight = Param::initialized(
                id,
                Tensor::random(shape, Distribution::Normal(0.0, 0.2), device).require_grad(),
            );
        }
    }
    model
}

fn fresh_adapters_change_nothing<B: Backend>() {
    let device = Default::default();
    let plain = base::<B>(&device);
    let expected = values(plain.forward(batch(&device)));
    let adapted = LoraConfig::new(4, 8.0).init(plain, &device).unwrap();
    let got = values(adapted.forward(batch(&device)));
    assert!(max_abs_diff(&expected, &got) <= 1e-6);
    // padded rows too
    let mask = ids::<B>(&[vec![1, 1, 1, 1, 1, 1], vec![0, 0, 1, 1, 1, 1]], &device);
    let a = adapted
        .base
        .forward_full(batch(&device), Some(mask.clone()), false);
    let b = adapted.forward_full(batch(&device), Some(mask), false);
    assert!(max_abs_diff(&values(a.logits), &values(b.logits)) <= 1e-6);
}

fn merging_keeps_the_function<B: Backend>() {
    let device = Default::default();
    let adapted = perturb(
        LoraConfig::new(3, 6.0)
            .with_seed(5)
            .init(base::<B>(&device), &device)
            .unwrap(),
        &device,
    );
    let before = values(adapted.base.forward(batch(&device)));
    let with = values(adapted.forward(batch(&device)));
    assert!(
        max_abs_diff(&before, &with) > 1e-3,
        "the perturbed adapters change the logits"
    );
    let merged = adapted.merge();
    let after = values(merged.forward(batch(&device)));
    assert!(max_abs_diff(&with, &after) <= 1e-5);
    // the KV-cached path of the adapted model agrees with its full pass
    let mut cache = adapted.base.new_cache();
    let tokens = batch::<B>(&device);
    adapted.forward_cached(tokens.clone().narrow(1, 0, 4), None, &mut cache);
    let last = adapted.forward_cached(tokens.narrow(1, 4, 2), None, &mut cache);
    let full: Vec<f32> = values(adapted.forward(batch(&device)).narrow(1, 4, 2));
    assert!(max_abs_diff(&values(last.logits), &full) <= 1e-5);
}

fn merged_model_exports_as_plain_gpt2<B: Backend>() {
    let device = Default::default();
    let adapted = perturb(
        LoraConfig::new(2, 4.0)
            .with_projections(&[LoraProjection::AttnQkv, LoraProjection::MlpOut])
            .init(base::<B>(&device), &device)
            .unwrap(),
        &device,
    );
    let merged = adapted.merge();
    let dir = tempfile::tempdir().unwrap();
    hf::save(&merged, dir.path()).unwrap();
    let loaded = hf::load::<B>(dir.path(), &device).unwrap();
    assert_eq!(loaded.config, merged.config);
    let a = values(merged.forward(batch(&device)));
    let b = values(loaded.forward(batch(&device)));
    assert!(max_abs_diff(&a, &b) <= 1e-6);
    let c = values(adapted.forward(batch(&device)));
    assert!(max_abs_diff(&b, &c) <= 1e-5);
}

/// Ids of the parameters that received a gradient.
struct WithGrad<'a> {
    grads: &'a GradientsParams,
    with: Vec<String>,
    path: Vec<String>,
}

impl<B: burn::tensor::backend::AutodiffBackend> ModuleVisitor<B> for WithGrad<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.into());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self
            .grads
            .get::<B::InnerBackend, D>(param.id)
            .is_some_and(|g| g.abs().sum().into_scalar().elem::<f32>() > 0.0)
        {
            self.with.push(self.path.join("."));
        }
    }
}

use burn::tensor::ElementConversion;

fn only_the_adapters_train<B: Backend>() {
    type A<B> = Autodiff<B>;
    let device = Default::default();
    let adapted = perturb(
        LoraConfig::new(2, 2.0)
            .init(base::<A<B>>(&device), &device)
            .unwrap(),
        &device,
    );
    let tokens = batch::<A<B>>(&device);
    let logits = adapted.forward(tokens.clone());
    let loss = next_token_nll(logits, tokens, None).sum();
    let grads = GradientsParams::from_grads(loss.backward(), &adapted);
    let mut seen = WithGrad {
        grads: &grads,
        with: Vec::new(),
        path: Vec::new(),
    };
    adapted.visit(&mut seen);
    assert_eq!(
        seen.with.len(),
        2 * 2 * 4,
        "A and B of 4 projections in 2 blocks"
    );
    assert!(
        seen.with.iter().all(|p| p.starts_with("adapters")),
        "{:?}",
        seen.with
    );
    assert_eq!(
        adapted.adapter_parameters(),
        adapted
            .adapters
            .iter()
            .map(|a| a.num_params())
            .sum::<usize>()
    );
    // the merged model is trainable as a whole again
    let merged = adapted.merge();
    let tokens = batch::<A<B>>(&device);
    let loss = next_token_nll(merged.forward(tokens.clone()), tokens, None).sum();
    let grads = GradientsParams::from_grads(loss.backward(), &merged);
    let mut seen = WithGrad {
        grads: &grads,
        with: Vec::new(),
        path: Vec::new(),
    };
    merged.visit(&mut seen);
    assert!(seen.with.iter().any(|p| p.starts_with("wte")));
    assert!(seen.with.iter().any(|p| p.contains("c_attn")));
}

fn initialisation_is_seeded<B: Backend>() {
    let device = Default::default();
    let a = LoraConfig::new(2, 2.0)
        .with_seed(1)
        .init(base::<B>(&device), &device)
        .unwrap();
    let b = LoraConfig::new(2, 2.0)
        .with_seed(1)
        .init(base::<B>(&device), &device)
        .unwrap();
    let c = LoraConfig::new(2, 2.0)
        .with_seed(2)
        .init(base::<B>(&device), &device)
        .unwrap();
    let first = |m: &LoraGpt2<B>| values(m.adapters[1].c_fc.as_ref().unwrap().a.weight.val());
    assert_eq!(first(&a), first(&b));
    assert_ne!(first(&a), first(&c));
    let zeros = values(a.adapters[0].c_attn.as_ref().unwrap().b.weight.val());
    assert!(zeros.iter().all(|&v| v == 0.0));
    let only = LoraConfig::new(2, 2.0)
        .with_projections(&[LoraProjection::MlpIn])
        .init(base::<B>(&device), &device)
        .unwrap();
    assert!(
        only.adapters
            .iter()
            .all(|a| a.c_fc.is_some() && a.c_attn.is_none())
    );
}

#[test]
fn bad_settings_name_their_field() {
    type B = burn::backend::NdArray;
    let device = Default::default();
    let field = |config: LoraConfig| match config.init(base::<B>(&device), &device) {
        Err(CausalLmError::InvalidParameter { field, .. }) => field,
        other => panic!("expected an error, got {other:?}"),
    };
    assert_eq!(field(LoraConfig::new(0, 1.0)), "lora.rank");
    assert_eq!(field(LoraConfig::new(17, 1.0)), "lora.rank");
    assert_eq!(field(LoraConfig::new(2, 0.0)), "lora.alpha");
    assert_eq!(field(LoraConfig::new(2, f64::NAN)), "lora.alpha");
    assert_eq!(
        field(LoraConfig::new(2, 1.0).with_projections(&[])),
        "lora.projections"
    );
    let twice = [LoraProjection::MlpIn, LoraProjection::MlpIn];
    assert_eq!(
        field(LoraConfig::new(2, 1.0).with_projections(&twice)),
        "lora.projections"
    );
    let message = LoraConfig::new(0, 1.0).validate().unwrap_err().to_string();
    assert!(
        message.contains("lora.rank") && message.contains(">= 1"),
        "{message}"
    );
    // the TOML/JSON names of the projections
    let config: LoraConfig = serde_json::from_str(
        r#"{"rank": 4, "alpha": 8.0, "projections": ["attn.c_attn", "mlp.c_proj"]}"#,
    )
    .unwrap();
    assert_eq!(
        config.projections,
        vec![LoraProjection::AttnQkv, LoraProjection::MlpOut]
    );
}

backend_tests!(
    fresh_adapters_change_nothing,
    merging_keeps_the_function,
    merged_model_exports_as_plain_gpt2,
    only_the_adapters_train,
    initialisation_is_seeded,
);
