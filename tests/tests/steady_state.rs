//! Training on wgpu reaches a steady state after its first epoch: epochs 2..k create no buffer,
//! bind group or pipeline (uniform, scratch and readback buffers, bind groups and pipelines are
//! all reused). Through the public trainer API: the population forward and `tell` with
//! host-computed fitness, and the built-in tasks' epochs. Runs on every test adapter
//! (`EGGROLL_TEST_WGPU_BACKEND`).

use eggroll::config::{EsConfig, OptimizerKind};
use eggroll::int8::IntTrainer;
use eggroll::tasks::{CharLm, CharLmOptions, Constant, Egg, Regression, Task};
use eggroll::{train_epoch, FloatTrainer, Matrix, Mlp, ParamRegistry};
use eggroll_backend::gpu::{CreatedObjects, WgpuBackend, WgpuOptions};
use eggroll_backend::testing::{for_each_adapter, open};
use eggroll_backend::{Activation, InputLayout};

/// Epochs each run trains (the first creates what the others reuse).
const EPOCHS: usize = 6;

/// Runs `epoch` `EPOCHS` times and asserts that epochs 2.. create nothing, naming `what`.
fn assert_steady<M: eggroll::Model>(
    what: &str, es: &mut FloatTrainer<WgpuBackend, M>, epoch: impl FnMut(&mut FloatTrainer<WgpuBackend, M>),
) {
    assert_steady_on(what, es, |es| es.backend().created(), epoch);
}

/// [`assert_steady`] for any trainer whose backend's counts `created` reads.
fn assert_steady_on<T>(what: &str, es: &mut T, created: impl Fn(&T) -> CreatedObjects, mut epoch: impl FnMut(&mut T)) {
    epoch(es);
    let after_first = created(es);
    assert!(after_first.pipelines > 0 && after_first.bind_groups > 0, "{what}: the first epoch builds pipelines: {after_first:?}");
    for k in 2..=EPOCHS {
        epoch(es);
        let now = created(es);
        assert_eq!(
            now,
            after_first,
            "{what}: epoch {k} created {} buffers, {} bind groups, {} pipelines",
            now.buffers - after_first.buffers,
            now.bind_groups - after_first.bind_groups,
            now.pipelines - after_first.pipelines
        );
    }
}

/// Fitness of each member: minus the squared distance of its outputs from 0.5.
fn fitness(y: &[f32], population: usize) -> Vec<f32> {
    y.chunks(y.len() / population).map(|member| -member.iter().map(|v| (v - 0.5).powi(2)).sum::<f32>()).collect()
}

#[test]
fn ask_tell_epochs_create_no_device_objects_after_the_first() {
    for_each_adapter(|adapter| {
        for optimizer in [OptimizerKind::Adam, OptimizerKind::Sgd] {
            let model = Mlp::builder(5).linear(7).pqn().linear(6).activation(Activation::Tanh).linear_with(3, false).build().unwrap();
            let config =
                EsConfig { population: 8, rank: 2, sigma: 0.2, lr: 0.05, optimizer, epochs: EPOCHS as u32, seed: 3, ..EsConfig::default() };
            let mut es = FloatTrainer::new(open(adapter, &WgpuOptions::default()), model, config).unwrap();
            let (rows, population) = (3, 8);
            let mut step = 0;
            assert_steady(&format!("ask/tell with {optimizer:?}"), &mut es, |es| {
                step += 1;
                let shared: Vec<f32> = (0..rows * 5).map(|i| ((i * 7 + step) % 13) as f32 / 6.0 - 1.0).collect();
                let per_member: Vec<f32> = (0..population * rows * 5).map(|i| ((i * 5 + step) % 11) as f32 / 5.0 - 1.0).collect();
                let y = es.population_forward(&shared, InputLayout::Shared, rows).unwrap();
                let z = es.population_forward(&per_member, InputLayout::PerMember, rows).unwrap();
                let f: Vec<f32> = fitness(&y, population).iter().zip(fitness(&z, population)).map(|(a, b)| a + b).collect();
                es.tell(&f).unwrap();
                let mean = es.forward_mean(&shared, rows).unwrap();
                assert!(mean.iter().all(|v| v.is_finite()), "{mean:?}");
            });
        }
    });
}

#[test]
fn task_epochs_create_no_device_objects_after_the_first() {
    for_each_adapter(|adapter| {
        let mut constant = Constant::new(5);
        let config = EsConfig { population: 8, group_size: 0, epochs: EPOCHS as u32, ..constant.default_config() };
        let mut es = FloatTrainer::new(open(adapter, &WgpuOptions::default()), constant.model(), config).unwrap();
        assert_steady("constant", &mut es, |es| {
            train_epoch(&mut constant, es).unwrap();
        });

        let mut regression = Regression::new(5);
        let config = EsConfig { population: 8, group_size: 0, epochs: EPOCHS as u32, ..regression.default_config() };
        let mut es = FloatTrainer::new(open(adapter, &WgpuOptions::default()), regression.model(), config).unwrap();
        assert_steady("regression", &mut es, |es| {
            train_epoch(&mut regression, es).unwrap();
        });

        // The language model: affine layer norms, minGRU, MLP and residuals, its fitness scored by
        // the log-softmax on the device, and the mean model's evaluation every epoch.
        let mut charlm = CharLm::new(5, &CharLmOptions { width: 8, depth: 1, window: 6, ..CharLmOptions::default() }).unwrap();
        let config = EsConfig { population: 16, group_size: 4, epochs: EPOCHS as u32, ..charlm.default_config() };
        let mut es = FloatTrainer::new(open(adapter, &WgpuOptions::default()), charlm.model(), config).unwrap();
        assert_steady("charlm", &mut es, |es| {
            train_epoch(&mut charlm, es).unwrap();
            charlm.evaluate(es).unwrap();
        });

        // The integer language model: int8 products, integer norms, recurrence and
        // log-likelihood, the ±1 update, and the mean model's evaluation every epoch.
        let mut egg = Egg::new(5, &CharLmOptions { width: 8, depth: 1, window: 6, ..Egg::default_options() }).unwrap();
        let config = EsConfig { population: 16, group_size: 4, epochs: EPOCHS as u32, ..egg.default_config() };
        let mut es = IntTrainer::new(open(adapter, &WgpuOptions::default()), egg.model(), config).unwrap();
        assert_steady_on(
            "egg",
            &mut es,
            |es| es.backend().created(),
            |es| {
                train_epoch(&mut egg, es).unwrap();
                egg.evaluate(es).unwrap();
            },
        );
    });
}

/// `created` counts what is created: the parameters' buffers, then what an epoch's first run
/// builds (scratch and uniform buffers, bind groups, pipelines).
#[test]
fn created_counts_what_a_first_call_creates() {
    for_each_adapter(|adapter| {
        let backend = open(adapter, &WgpuOptions::default());
        let start: CreatedObjects = backend.created();
        let mut constant = Constant::new(1);
        let config = EsConfig { population: 4, group_size: 0, epochs: 1, ..constant.default_config() };
        let mut es = FloatTrainer::new(backend, constant.model(), config).unwrap();
        let uploaded = es.backend().created();
        assert!(uploaded.buffers > start.buffers, "the parameters' buffers are counted: {start:?} -> {uploaded:?}");
        train_epoch(&mut constant, &mut es).unwrap();
        let trained = es.backend().created();
        assert!(
            trained.buffers > uploaded.buffers && trained.bind_groups > uploaded.bind_groups && trained.pipelines > uploaded.pipelines,
            "an epoch's first run creates scratch and uniform buffers, bind groups and pipelines: {uploaded:?} -> {trained:?}"
        );
    });
}

/// A small sequence model of the layers a language model is built from: a byte embedding, a
/// minGRU over sequences of 4 steps, layer norm, a residual sum and a read-out.
struct Sequence {
    registry: ParamRegistry,
    embed: Matrix,
    gate: Matrix,
    candidate: Matrix,
    head: Matrix,
}

impl Sequence {
    fn new() -> Self {
        let mut r = ParamRegistry::new(1, 3);
        let embed = r.matrix("embed", 16, 6).unwrap();
        let (gate, candidate) = (r.matrix("gru.gate", 6, 6).unwrap(), r.matrix("gru.candidate", 6, 6).unwrap());
        let head = r.matrix("head", 3, 6).unwrap();
        Self { registry: r, embed, gate, candidate, head }
    }
}

impl eggroll::Model for Sequence {
    fn registry(&self) -> &ParamRegistry {
        &self.registry
    }

    fn forward<B: eggroll::Backend>(&self, f: &mut eggroll::Forward<'_, B>, x: eggroll::Values) -> eggroll::Result<eggroll::Values> {
        let e = f.embedding(x, self.embed)?;
        let h = f.min_gru(e, self.gate, self.candidate, 4)?;
        f.layer_norm(h)?;
        f.add(h, e)?;
        f.linear(h, self.head, None)
    }
}

#[test]
fn sequence_model_epochs_create_no_device_objects_after_the_first() {
    for_each_adapter(|adapter| {
        let config = EsConfig { population: 8, rank: 2, sigma: 0.1, lr: 0.05, epochs: EPOCHS as u32, seed: 9, ..EsConfig::default() };
        let mut es = FloatTrainer::new(open(adapter, &WgpuOptions::default()), Sequence::new(), config).unwrap();
        let mut step = 0;
        assert_steady("embedding + minGRU", &mut es, |es| {
            step += 1;
            // Two sequences of 4 byte ids per member, other ids every epoch.
            let tokens: Vec<f32> = (0..8).map(|i| ((i * 5 + step) % 16) as f32).collect();
            let y = es.population_forward(&tokens, InputLayout::Shared, 8).unwrap();
            es.tell(&fitness(&y, 8)).unwrap();
            let mean = es.forward_mean(&tokens, 8).unwrap();
            assert!(mean.iter().all(|v| v.is_finite()), "{mean:?}");
        });
    });
}
