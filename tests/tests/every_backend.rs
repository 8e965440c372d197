//! The trainer's contract, one test body per property run on every backend (`<name>::cpu`,
//! `<name>::wgpu` on each test adapter): the fused population forward against a host oracle built from the ask handles,
//! ask/tell with host-computed fitness, exact state round trips, frozen parameters, bad input,
//! forwards over a range of members against the whole population's.

use eggroll::config::{EsConfig, Method, OptimizerKind, Schedule};
use eggroll::shaping::shape_fitness;
use eggroll::tasks::{CharLm, CharLmOptions, Constant, Task};
use eggroll::{train_epoch, EggrollError, FloatTrainer, Linear, Matrix, Mlp, ParamRegistry, ParamValues, Vector};
use eggroll_backend::int8::IntBackend;
use eggroll_backend::testing::{assert_close, test_device};
use eggroll_backend::{Activation, Backend, Error, InputLayout, NoiseStream};
use eggroll_tests::host_forward;

test_device!(
    population_forward_matches_the_ask_handles,
    per_member_inputs_reach_their_member,
    ask_tell_on_the_host_follows_the_batched_trajectory,
    state_round_trip_continues_exactly,
    frozen_parameters_stay_put,
    bad_fitness_and_inputs_are_refused,
    async_api_matches_the_blocking_one,
    an_apps_own_model_runs_batched_and_matches_its_ask_handles,
    a_recurrent_model_runs_batched_and_matches_its_ask_handles,
    an_embedding_model_runs_batched_and_matches_its_ask_handles,
    an_affine_layer_norm_runs_batched_and_matches_its_ask_handles,
    an_affine_layer_norm_refuses_the_shared_input_and_bad_parameters,
    member_ranges_give_the_rows_of_the_whole_population,
    openes_population_forward_is_full_rank,
    openes_update_is_the_full_rank_estimate,
);

fn small_config() -> EsConfig {
    EsConfig { population: 16, rank: 2, sigma: 0.3, lr: 0.05, epochs: 50, seed: 7, ..EsConfig::default() }
}

fn tanh_mlp() -> Mlp {
    Mlp::builder(5).linear(7).pqn().linear(6).activation(Activation::Tanh).linear_with(3, false).build().unwrap()
}

/// Parameter values in registration order, as the host oracle takes them.
fn values(params: &ParamValues) -> Vec<Vec<f32>> {
    params.iter().map(|(_, v)| v.to_vec()).collect()
}

/// Every member of the batched population forward equals the host forward of `W + E_i` that its
/// [`eggroll::Perturbation`] handle describes (the ask/tell path an app evaluates elsewhere).
async fn population_forward_matches_the_ask_handles<B: Backend>(backend: B) {
    let model = tanh_mlp();
    let mut es = FloatTrainer::new(backend, model.clone(), small_config()).unwrap();
    let mean_values = es.params().unwrap();
    let mean = values(&mean_values);
    let rows = 3;
    let x: Vec<f32> = (0..rows * 5).map(|i| ((i * 37 % 11) as f32 - 5.0) / 4.0).collect();
    let y = es.population_forward(&x, InputLayout::Shared, rows).unwrap();
    for handle in es.ask() {
        let params = values(&handle.apply_all(&mean_values));
        for row in 0..rows {
            let want = host_forward(&model, &params, &x[row * 5..(row + 1) * 5]);
            let at = (handle.member * rows + row) * 3;
            assert_close(&y[at..at + 3], &want, 1e-4, 1e-4, &format!("member {} row {row}", handle.member));
        }
    }
    // The members of a pair differ: the noise is there.
    assert!(y[..9] != y[9..18]);
    let mean_y = es.forward_mean(&x, rows).unwrap();
    for row in 0..rows {
        let want = host_forward(&model, &mean, &x[row * 5..(row + 1) * 5]);
        assert_close(&mean_y[row * 3..(row + 1) * 3], &want, 1e-4, 1e-4, &format!("mean model row {row}"));
    }
}

/// The per-member input layout gives member i its own rows.
async fn per_member_inputs_reach_their_member<B: Backend>(backend: B) {
    let model = Mlp::builder(2).linear(3).relu().linear(1).build().unwrap();
    let cfg = EsConfig { population: 4, ..small_config() };
    let mut es = FloatTrainer::new(backend, model.clone(), cfg).unwrap();
    let mean = es.params().unwrap();
    let x = [0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 3.0, -2.0];
    let y = es.population_forward(&x, InputLayout::PerMember, 1).unwrap();
    for handle in es.ask() {
        let params = values(&handle.apply_all(&mean));
        let want = host_forward(&model, &params, &x[handle.member * 2..handle.member * 2 + 2]);
        assert_close(&y[handle.member..handle.member + 1], &want, 1e-5, 1e-5, "per-member output");
    }
}

/// ask/tell with the fitness computed on the host from the handles follows the batched path.
async fn ask_tell_on_the_host_follows_the_batched_trajectory<B: Backend>(backend: B) {
    let task = Constant::new(3);
    // SGD: Adam's normalisation would turn rounding-level differences of near-zero gradient
    // components into full steps.
    let cfg = EsConfig { epochs: 5, seed: 3, optimizer: OptimizerKind::Sgd, ..task.default_config() };
    let mut es = FloatTrainer::new(backend, task.model(), cfg.clone()).unwrap();
    let mut batched_params = Vec::new();
    let x: Vec<f32> = (0..3).map(|i| i as f32 * 0.3 - 0.2).collect();
    let fitness_of = |y: f32| -(y - 2.0).powi(2);
    // The batched run first, then the same epochs again from the start with host fitness.
    let start = es.state().unwrap();
    for _ in 0..5 {
        let y = es.population_forward(&x, InputLayout::Shared, 1).unwrap();
        es.tell(&y.iter().map(|&v| fitness_of(v)).collect::<Vec<_>>()).unwrap();
    }
    batched_params.extend(es.state().unwrap().tensors);
    es.restore(&start).unwrap();
    for _ in 0..5 {
        let mean = es.params().unwrap();
        let fitness: Vec<f32> =
            es.ask().iter().map(|h| fitness_of(host_forward(&task.model(), &values(&h.apply_all(&mean)), &x)[0])).collect();
        es.tell(&fitness).unwrap();
    }
    for ((name, batched), (_, host)) in batched_params.iter().zip(&es.state().unwrap().tensors) {
        assert_close(host, batched, 1e-4, 1e-3, name);
    }
}

/// Saving the state and restoring it later (over a trainer that has since moved on) continues
/// bit for bit: parameters, optimiser moments and the epoch (its noise and schedules) come back.
async fn state_round_trip_continues_exactly<B: IntBackend>(backend: B) {
    let mut task = Constant::new(5);
    let defaults = task.default_config();
    let cfg = |optimizer| EsConfig { optimizer, epochs: 12, seed: 5, lr_schedule: Schedule::Cosine, noise_reuse: 3, ..defaults.clone() };
    let mut es = FloatTrainer::new(backend, task.model(), cfg(OptimizerKind::Sgd)).unwrap();
    for optimizer in [OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::AdamW] {
        es = FloatTrainer::new(es.into_backend(), task.model(), cfg(optimizer)).unwrap();
        let start = es.state().unwrap();
        for _ in 0..12 {
            train_epoch(&mut task, &mut es).unwrap();
        }
        let straight = es.state().unwrap();
        es.restore(&start).unwrap();
        for _ in 0..7 {
            train_epoch(&mut task, &mut es).unwrap();
        }
        let saved = es.state().unwrap();
        for _ in 0..2 {
            train_epoch(&mut task, &mut es).unwrap();
        }
        es.restore(&saved).unwrap();
        assert_eq!(es.epoch(), 7);
        for _ in 7..12 {
            train_epoch(&mut task, &mut es).unwrap();
        }
        assert_eq!(straight, es.state().unwrap(), "{optimizer:?}");
    }
}

/// A frozen parameter never moves; the others do.
async fn frozen_parameters_stay_put<B: IntBackend>(backend: B) {
    let mut task = Constant::new(1);
    let mut es = FloatTrainer::new(backend, task.model(), task.default_config()).unwrap();
    let frozen = es.specs()[0].name.clone();
    es.set_frozen(&frozen, true).unwrap();
    assert!(es.set_frozen("no.such.param", true).is_err());
    let before = es.state().unwrap();
    for _ in 0..5 {
        train_epoch(&mut task, &mut es).unwrap();
    }
    let after = es.state().unwrap();
    assert_eq!(before.get(&frozen), after.get(&frozen));
    let moved = &es.specs()[1].name;
    assert_ne!(before.get(moved), after.get(moved));
}

/// NaN/Inf fitness, a wrong number of fitness values and inputs of the wrong width are refused
/// with errors that name them, before anything reaches the device.
async fn bad_fitness_and_inputs_are_refused<B: Backend>(backend: B) {
    let mut es = FloatTrainer::new(backend, tanh_mlp(), small_config()).unwrap();
    let before = es.state().unwrap();
    let mut fitness = vec![0.5; 16];
    fitness[9] = f32::NAN;
    let err = es.tell(&fitness).unwrap_err();
    assert!(matches!(err, EggrollError::Backend(Error::NonFiniteFitness { member: 9, raw: true, .. })), "{err}");
    assert!(err.to_string().contains("member 9 has raw fitness NaN"), "{err}");
    fitness[9] = f32::INFINITY;
    assert!(es.tell(&fitness).is_err());
    assert!(es.tell(&[0.0; 15]).unwrap_err().to_string().contains("15 fitness values"));
    assert_eq!(es.epoch(), 0, "a refused tell does not advance the epoch");
    assert_eq!(es.state().unwrap(), before, "a refused tell leaves the parameters alone");
    let err = es.population_forward(&[0.0; 4], InputLayout::Shared, 1).unwrap_err();
    assert!(err.to_string().contains("expected 5"), "{err}");
    assert!(es.forward_mean(&[], 0).is_err());
}

/// The `_async` methods (what a browser app awaits) return what the blocking ones do.
async fn async_api_matches_the_blocking_one<B: Backend>(backend: B) {
    let mut es = FloatTrainer::new(backend, tanh_mlp(), EsConfig { optimizer: OptimizerKind::Adam, ..small_config() }).unwrap();
    let x: Vec<f32> = (0..2 * 5).map(|i| (i as f32 - 4.0) / 3.0).collect();
    for _ in 0..2 {
        let y = es.population_forward(&x, InputLayout::Shared, 2).unwrap();
        assert_eq!(es.population_forward_async(&x, InputLayout::Shared, 2).await.unwrap(), y);
        assert_eq!(es.forward_mean_async(&x, 2).await.unwrap(), es.forward_mean(&x, 2).unwrap());
        let state = es.state().unwrap();
        assert_eq!(es.state_async().await.unwrap(), state);
        assert_eq!(state.tensors.len(), 3 * es.specs().len(), "parameters and both Adam moments");
        es.tell(&y.chunks(2 * 3).map(|member| -member.iter().map(|v| v * v).sum::<f32>()).collect::<Vec<_>>()).unwrap();
    }
}

/// An app's own model: its parameters `P`, registered on its registry, and their forward.
struct TestModel<P> {
    registry: ParamRegistry,
    layers: P,
}

/// The forward of an app's own model through [`eggroll::Forward`]'s layers.
trait Layers {
    /// The model's output for the input `x`.
    fn forward<B: Backend>(&self, f: &mut eggroll::Forward<'_, B>, x: eggroll::Values) -> eggroll::Result<eggroll::Values>;
}

impl<P: Layers> eggroll::Model for TestModel<P> {
    fn registry(&self) -> &ParamRegistry {
        &self.registry
    }

    fn forward<B: Backend>(&self, f: &mut eggroll::Forward<'_, B>, x: eggroll::Values) -> eggroll::Result<eggroll::Values> {
        self.layers.forward(f, x)
    }
}

/// A model of `inputs` inputs and `outputs` outputs, its parameters registered by `register`.
fn model<P>(inputs: usize, outputs: usize, register: impl FnOnce(&mut ParamRegistry) -> P) -> TestModel<P> {
    let mut registry = ParamRegistry::new(inputs, outputs);
    let layers = register(&mut registry);
    TestModel { registry, layers }
}

/// A model the crate does not ship (an app's residual block: `h = tanh(W_in x)`, then
/// `h + tanh(layer_norm(W_1 h + b_1))`, then `W_out h`), built from [`eggroll::Forward`]'s layers.
struct Residual {
    input: Matrix,
    block: Linear,
    output: Matrix,
}

impl Residual {
    fn new() -> TestModel<Self> {
        model(4, 2, |r| Self {
            input: r.matrix("in.weight", 6, 4).unwrap(),
            block: r.linear("block", 6, 6, true).unwrap(),
            output: r.matrix("out.weight", 2, 6).unwrap(),
        })
    }
}

impl Layers for Residual {
    fn forward<B: Backend>(&self, f: &mut eggroll::Forward<'_, B>, x: eggroll::Values) -> eggroll::Result<eggroll::Values> {
        let h = f.linear(x, self.input, None)?;
        f.activation(h, Activation::Tanh)?;
        let y = f.linear(h, self.block.weight, self.block.bias)?;
        f.layer_norm(y)?;
        f.activation(y, Activation::Tanh)?;
        f.add(y, h)?;
        f.linear(y, self.output, None)
    }
}

/// The residual model on the host, one row, from parameters by name.
fn residual_on_host(p: &ParamValues, x: &[f32]) -> Vec<f32> {
    let linear = |w: &[f32], b: Option<&[f32]>, x: &[f32], m: usize| -> Vec<f32> {
        (0..m).map(|j| (0..x.len()).map(|l| w[j * x.len() + l] * x[l]).sum::<f32>() + b.map_or(0.0, |b| b[j])).collect()
    };
    let h: Vec<f32> = linear(p.get("in.weight").unwrap(), None, x, 6).iter().map(|v| v.tanh()).collect();
    let mut y = linear(p.get("block.weight").unwrap(), p.get("block.bias"), &h, 6);
    let mean = y.iter().sum::<f32>() / 6.0;
    let var = y.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 6.0;
    y.iter_mut().zip(&h).for_each(|(v, h)| *v = ((*v - mean) / (var + eggroll::model::LAYER_NORM_EPS).sqrt()).tanh() + h);
    linear(p.get("out.weight").unwrap(), None, &y, 2)
}

/// An app's own model trains through the same batched population forward as the built-in MLP:
/// every member's output equals the host forward of the parameters its ask handle describes, with
/// the input shared or per member, and the mean model equals the host forward of the mean.
async fn an_apps_own_model_runs_batched_and_matches_its_ask_handles<B: Backend>(backend: B) {
    let mut es = FloatTrainer::new(backend, Residual::new(), EsConfig { population: 6, ..small_config() }).unwrap();
    es.tell(&[1.0, -1.0, 0.5, 2.0, 0.0, -0.5]).unwrap();
    let mean = es.params().unwrap();
    let rows = 2;
    let shared: Vec<f32> = (0..rows * 4).map(|i| ((i * 5 % 7) as f32 - 3.0) / 2.0).collect();
    let per_member: Vec<f32> = (0..6 * rows * 4).map(|i| ((i * 3 % 11) as f32 - 5.0) / 4.0).collect();
    for (x, layout) in [(&shared, InputLayout::Shared), (&per_member, InputLayout::PerMember)] {
        let y = es.population_forward(x, layout, rows).unwrap();
        for handle in es.ask() {
            let params = handle.apply_all(&mean);
            for row in 0..rows {
                let at = match layout {
                    InputLayout::Shared => row * 4,
                    InputLayout::PerMember => (handle.member * rows + row) * 4,
                };
                let want = residual_on_host(&params, &x[at..at + 4]);
                let got = (handle.member * rows + row) * 2;
                assert_close(&y[got..got + 2], &want, 1e-4, 1e-4, &format!("{layout:?} member {} row {row}", handle.member));
            }
        }
    }
    let mean_y = es.forward_mean(&shared, rows).unwrap();
    for row in 0..rows {
        assert_close(&mean_y[row * 2..row * 2 + 2], &residual_on_host(&mean, &shared[row * 4..row * 4 + 4]), 1e-4, 1e-4, "mean model");
    }
}

/// Steps per sequence of [`Recurrent`].
const STEPS: usize = 3;

/// A recurrent model: a minGRU of width 4 over sequences of [`STEPS`] steps of 3 inputs, then a
/// linear read-out of 2 features at every step.
struct Recurrent {
    gate: Matrix,
    candidate: Matrix,
    out: Linear,
}

impl Recurrent {
    fn new() -> TestModel<Self> {
        model(3, 2, |r| Self {
            gate: r.matrix("gru.gate", 4, 3).unwrap(),
            candidate: r.matrix("gru.candidate", 4, 3).unwrap(),
            out: r.linear("out", 2, 4, true).unwrap(),
        })
    }
}

impl Layers for Recurrent {
    fn forward<B: Backend>(&self, f: &mut eggroll::Forward<'_, B>, x: eggroll::Values) -> eggroll::Result<eggroll::Values> {
        let h = f.min_gru(x, self.gate, self.candidate, STEPS)?;
        f.linear(h, self.out.weight, self.out.bias)
    }
}

/// [`Recurrent`] on the host: one sequence of [`STEPS`] rows of 3 inputs to its [`STEPS`] rows of
/// 2 outputs, in f64.
fn recurrent_on_host(p: &ParamValues, xs: &[f32]) -> Vec<f32> {
    let matvec = |w: &[f32], x: &[f64], m: usize| -> Vec<f64> {
        (0..m).map(|j| (0..x.len()).map(|l| f64::from(w[j * x.len() + l]) * x[l]).sum()).collect()
    };
    let mut h = vec![0.0f64; 4];
    let mut out = Vec::new();
    for x in xs.chunks(3) {
        let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let z = matvec(p.get("gru.gate").unwrap(), &x, 4);
        let c = matvec(p.get("gru.candidate").unwrap(), &x, 4);
        for k in 0..4 {
            let z = 1.0 / (1.0 + (-z[k]).exp());
            h[k] = (1.0 - z) * h[k] + z * c[k];
        }
        let y = matvec(p.get("out.weight").unwrap(), &h, 2);
        out.extend(y.iter().zip(p.get("out.bias").unwrap()).map(|(y, b)| (y + f64::from(*b)) as f32));
    }
    out
}

/// A recurrent model (minGRU) runs as a batched population forward over sequences: every member's
/// outputs equal the host recurrence of the parameters its ask handle describes, each sequence
/// starting from a zero state, with the input shared or per member; a row count that is not
/// whole sequences is refused.
async fn a_recurrent_model_runs_batched_and_matches_its_ask_handles<B: Backend>(backend: B) {
    let mut es = FloatTrainer::new(backend, Recurrent::new(), EsConfig { population: 4, ..small_config() }).unwrap();
    es.tell(&[0.5, -1.0, 1.5, 0.0]).unwrap();
    let mean = es.params().unwrap();
    let rows = 2 * STEPS;
    let shared: Vec<f32> = (0..rows * 3).map(|i| ((i * 7 % 9) as f32 - 4.0) / 2.0).collect();
    let per_member: Vec<f32> = (0..4 * rows * 3).map(|i| ((i * 5 % 13) as f32 - 6.0) / 3.0).collect();
    for (x, layout) in [(&shared, InputLayout::Shared), (&per_member, InputLayout::PerMember)] {
        let y = es.population_forward(x, layout, rows).unwrap();
        for handle in es.ask() {
            let params = handle.apply_all(&mean);
            for seq in 0..2 {
                let first = match layout {
                    InputLayout::Shared => seq * STEPS,
                    InputLayout::PerMember => handle.member * rows + seq * STEPS,
                };
                let want = recurrent_on_host(&params, &x[first * 3..(first + STEPS) * 3]);
                let at = (handle.member * rows + seq * STEPS) * 2;
                assert_close(&y[at..at + STEPS * 2], &want, 1e-4, 1e-4, &format!("{layout:?} member {} sequence {seq}", handle.member));
            }
        }
    }
    let err = es.population_forward(&shared[..(rows - 1) * 3], InputLayout::Shared, rows - 1).unwrap_err();
    assert!(matches!(err, EggrollError::Data(_)) && err.to_string().contains("sequences of 3 steps"), "{err}");
}

/// Vocabulary and width of [`Embed`]'s table.
const VOCAB: usize = 11;
const DIM: usize = 5;

/// A byte-level language model's first layers: a token's row of an 11 x 5 embedding table, tanh,
/// then a linear read-out of 3 features.
struct Embed {
    table: Matrix,
    out: Matrix,
}

impl Embed {
    fn new() -> TestModel<Self> {
        model(1, 3, |r| Self { table: r.matrix("embed", VOCAB, DIM).unwrap(), out: r.matrix("out.weight", 3, DIM).unwrap() })
    }
}

impl Layers for Embed {
    fn forward<B: Backend>(&self, f: &mut eggroll::Forward<'_, B>, x: eggroll::Values) -> eggroll::Result<eggroll::Values> {
        let h = f.embedding(x, self.table)?;
        f.activation(h, Activation::Tanh)?;
        f.linear(h, self.out, None)
    }
}

/// [`Embed`] on the host for one token: the row of the (perturbed) table, tanh, the read-out.
fn embed_on_host(p: &ParamValues, token: f32) -> Vec<f32> {
    let (table, w) = (p.get("embed").unwrap(), p.get("out.weight").unwrap());
    let v = token as usize;
    let h: Vec<f64> = table[v * DIM..(v + 1) * DIM].iter().map(|&e| f64::from(e).tanh()).collect();
    (0..3).map(|j| (0..DIM).map(|l| f64::from(w[j * DIM + l]) * h[l]).sum::<f64>() as f32).collect()
}

/// An embedding model runs as a batched population forward: every member's outputs equal the
/// host forward of the table and weights its ask handle describes (the rows of its own perturbed
/// table), with the tokens shared or per member, the mean model those of the mean parameters;
/// a token id outside the vocabulary, negative or not an integer is refused naming its row.
async fn an_embedding_model_runs_batched_and_matches_its_ask_handles<B: Backend>(backend: B) {
    let mut es = FloatTrainer::new(backend, Embed::new(), EsConfig { population: 6, ..small_config() }).unwrap();
    es.tell(&[1.0, -0.5, 0.0, 2.0, -1.0, 0.5]).unwrap();
    let mean = es.params().unwrap();
    let rows = 4;
    let shared: Vec<f32> = [3, 10, 0, 3].map(|t| t as f32).to_vec();
    let per_member: Vec<f32> = (0..6 * rows).map(|i| (i * 7 % VOCAB) as f32).collect();
    for (x, layout) in [(&shared, InputLayout::Shared), (&per_member, InputLayout::PerMember)] {
        let y = es.population_forward(x, layout, rows).unwrap();
        for handle in es.ask() {
            let params = handle.apply_all(&mean);
            for row in 0..rows {
                let at = match layout {
                    InputLayout::Shared => row,
                    InputLayout::PerMember => handle.member * rows + row,
                };
                let got = (handle.member * rows + row) * 3;
                let what = format!("{layout:?} member {} row {row}", handle.member);
                assert_close(&y[got..got + 3], &embed_on_host(&params, x[at]), 1e-4, 1e-4, &what);
            }
        }
        // The members of a pair differ: the table's noise is there.
        assert!(y[..rows * 3] != y[rows * 3..2 * rows * 3]);
    }
    let mean_y = es.forward_mean(&shared, rows).unwrap();
    for row in 0..rows {
        assert_close(&mean_y[row * 3..row * 3 + 3], &embed_on_host(&mean, shared[row]), 1e-5, 1e-5, "mean model");
    }
    for bad in [VOCAB as f32, -1.0, 2.5, f32::NAN] {
        let mut x = shared.clone();
        x[2] = bad;
        let err = es.population_forward(&x, InputLayout::Shared, rows).unwrap_err();
        assert!(matches!(err, EggrollError::Data(_)) && err.to_string().contains("row 2"), "token {bad}: {err}");
        let err = es.forward_mean(&x, rows).unwrap_err();
        assert!(matches!(err, EggrollError::Data(_)) && err.to_string().contains("row 2"), "mean model, token {bad}: {err}");
    }
}

/// A model with an affine layer norm: `h = W_in x + b_in` (5 features of 4 inputs), then
/// `layer_norm(h) * (1 + g) + b` with the gain offset `g` and bias `b` of the norm, then a linear
/// read-out of 2 features.
struct AffineNorm {
    input: Linear,
    gain: Vector,
    bias: Vector,
    out: Matrix,
}

impl AffineNorm {
    fn new() -> TestModel<Self> {
        model(4, 2, |r| Self {
            input: r.linear("in", 5, 4, true).unwrap(),
            gain: r.vector("norm.gain", 5).unwrap(),
            bias: r.vector("norm.bias", 5).unwrap(),
            out: r.matrix("out.weight", 2, 5).unwrap(),
        })
    }
}

impl Layers for AffineNorm {
    fn forward<B: Backend>(&self, f: &mut eggroll::Forward<'_, B>, x: eggroll::Values) -> eggroll::Result<eggroll::Values> {
        let h = f.linear(x, self.input.weight, self.input.bias)?;
        f.layer_norm_affine(h, self.gain, self.bias)?;
        f.linear(h, self.out, None)
    }
}

/// `layer_norm(h) * (1 + gain) + bias` of one row in f64, the gain and bias `name.gain` and
/// `name.bias` of `p`.
fn affine_norm_on_host(p: &ParamValues, name: &str, h: &[f64]) -> Vec<f64> {
    let (gain, bias) = (p.get(&format!("{name}.gain")).unwrap(), p.get(&format!("{name}.bias")).unwrap());
    let cols = h.len() as f64;
    let mean = h.iter().sum::<f64>() / cols;
    let var = h.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / cols;
    let inv = 1.0 / (var + f64::from(eggroll::model::LAYER_NORM_EPS)).sqrt();
    h.iter().zip(gain).zip(bias).map(|((v, g), b)| (v - mean) * inv * (1.0 + f64::from(*g)) + f64::from(*b)).collect()
}

/// `W x (+ b)` of one row in f64, `W` m x len(x).
fn linear_on_host(w: &[f32], b: Option<&[f32]>, x: &[f64], m: usize) -> Vec<f64> {
    (0..m).map(|j| (0..x.len()).map(|l| f64::from(w[j * x.len() + l]) * x[l]).sum::<f64>() + b.map_or(0.0, |b| f64::from(b[j]))).collect()
}

/// [`AffineNorm`] on the host, one row.
fn affine_norm_model_on_host(p: &ParamValues, x: &[f32]) -> Vec<f32> {
    let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let h = linear_on_host(p.get("in.weight").unwrap(), p.get("in.bias"), &x, 5);
    let y = affine_norm_on_host(p, "norm", &h);
    linear_on_host(p.get("out.weight").unwrap(), None, &y, 2).iter().map(|&v| v as f32).collect()
}

/// `state` with the tensor `name` replaced by `values`.
fn with_tensor(mut state: eggroll::TrainerState, name: &str, values: &[f32]) -> eggroll::TrainerState {
    let tensor = state.tensors.iter_mut().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no tensor `{name}`"));
    tensor.1 = values.to_vec();
    state
}

/// The affine layer norm runs as a batched population forward: with non-zero gain offsets and
/// biases (restored into the trainer) every member's outputs equal the host forward of the
/// parameters its ask handle describes (its gain and bias each with their own full-rank noise),
/// with the input shared or per member, and the mean model those of the mean parameters; after
/// a training step the same holds, and a frozen gain gets no noise.
async fn an_affine_layer_norm_runs_batched_and_matches_its_ask_handles<B: Backend>(backend: B) {
    let mut es = FloatTrainer::new(backend, AffineNorm::new(), EsConfig { population: 6, ..small_config() }).unwrap();
    let state = with_tensor(es.state().unwrap(), "norm.gain", &[0.5, -0.8, 1.2, -0.3, 0.9]);
    es.restore(&with_tensor(state, "norm.bias", &[-0.4, 0.7, 0.1, -1.1, 0.6])).unwrap();
    let rows = 3;
    let shared: Vec<f32> = (0..rows * 4).map(|i| ((i * 5 % 7) as f32 - 3.0) / 2.0).collect();
    let per_member: Vec<f32> = (0..6 * rows * 4).map(|i| ((i * 3 % 11) as f32 - 5.0) / 4.0).collect();
    let check = |es: &mut FloatTrainer<B, TestModel<AffineNorm>>, what: &str| {
        let mean = es.params().unwrap();
        for (x, layout) in [(&shared, InputLayout::Shared), (&per_member, InputLayout::PerMember)] {
            let y = es.population_forward(x, layout, rows).unwrap();
            for handle in es.ask() {
                let params = handle.apply_all(&mean);
                for row in 0..rows {
                    let at = match layout {
                        InputLayout::Shared => row * 4,
                        InputLayout::PerMember => (handle.member * rows + row) * 4,
                    };
                    let got = (handle.member * rows + row) * 2;
                    let want = affine_norm_model_on_host(&params, &x[at..at + 4]);
                    assert_close(&y[got..got + 2], &want, 1e-4, 1e-4, &format!("{what}, {layout:?} member {} row {row}", handle.member));
                }
            }
        }
        let mean_y = es.forward_mean(&shared, rows).unwrap();
        for row in 0..rows {
            let want = affine_norm_model_on_host(&mean, &shared[row * 4..row * 4 + 4]);
            assert_close(&mean_y[row * 2..row * 2 + 2], &want, 1e-5, 1e-5, &format!("{what}, mean model row {row}"));
        }
    };
    check(&mut es, "restored gain and bias");
    es.tell(&[1.0, -0.5, 0.0, 2.0, -1.0, 0.5]).unwrap();
    check(&mut es, "after a step");
    es.set_frozen("norm.gain", true).unwrap();
    check(&mut es, "frozen gain");
}

/// Which gain [`NormOnInput`] gives its layer norm.
#[derive(Clone, Copy, Debug)]
enum Gain {
    /// `norm.gain`, 3 values.
    Norm,
    /// `short.gain`, 2 values.
    Short,
    /// The handle with this id of another model's vectors of 3 values.
    Foreign(u32),
}

/// The affine layer norm of the model input, with the bias `norm.bias` and the gain it is given.
struct NormOnInput {
    gain: Vector,
    bias: Vector,
    out: Matrix,
}

impl NormOnInput {
    /// Parameters `norm.gain`, `norm.bias` (3 values), `short.gain` (2), `out.weight` (2 x 3).
    fn new(gain: Gain) -> TestModel<Self> {
        model(3, 2, |r| {
            let (norm, bias, short) =
                (r.vector("norm.gain", 3).unwrap(), r.vector("norm.bias", 3).unwrap(), r.vector("short.gain", 2).unwrap());
            let out = r.matrix("out.weight", 2, 3).unwrap();
            let gain = match gain {
                Gain::Norm => norm,
                Gain::Short => short,
                Gain::Foreign(id) => {
                    let mut other = ParamRegistry::new(3, 2);
                    (0..=id).map(|i| other.vector(format!("v{i}"), 3).unwrap()).last().unwrap()
                }
            };
            Self { gain, bias, out }
        })
    }
}

impl Layers for NormOnInput {
    fn forward<B: Backend>(&self, f: &mut eggroll::Forward<'_, B>, x: eggroll::Values) -> eggroll::Result<eggroll::Values> {
        f.layer_norm_affine(x, self.gain, self.bias)?;
        f.linear(x, self.out, None)
    }
}

/// The shared model input of a population forward cannot take each member's gain in place: it is
/// refused with an error naming the layer's parameters, while per-member input and the mean
/// model (whose input is its own) run and match the host; a gain handle of another model (one past
/// this model's parameters, or where this model has a matrix) or of the wrong length is refused
/// naming the parameter.
async fn an_affine_layer_norm_refuses_the_shared_input_and_bad_parameters<B: Backend>(backend: B) {
    let mut es = FloatTrainer::new(backend, NormOnInput::new(Gain::Norm), EsConfig { population: 4, ..small_config() }).unwrap();
    es.restore(&with_tensor(es.state().unwrap(), "norm.gain", &[0.3, -0.6, 1.5])).unwrap();
    let x = [0.5, -1.0, 2.0, 1.5, 0.25, -0.75];
    let err = es.population_forward(&x, InputLayout::Shared, 2).unwrap_err();
    assert!(matches!(err, EggrollError::Config(_)) && err.to_string().contains("`norm.gain`, `norm.bias`"), "{err}");
    assert!(err.to_string().contains("shared model input"), "{err}");
    let on_host = |p: &ParamValues, x: &[f32]| -> Vec<f32> {
        let y = affine_norm_on_host(p, "norm", &x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
        linear_on_host(p.get("out.weight").unwrap(), None, &y, 2).iter().map(|&v| v as f32).collect()
    };
    let mean = es.params().unwrap();
    let per_member: Vec<f32> = (0..4 * 3).map(|i| ((i * 7 % 5) as f32 - 2.0) / 2.0).collect();
    let y = es.population_forward(&per_member, InputLayout::PerMember, 1).unwrap();
    for handle in es.ask() {
        let m = handle.member;
        let want = on_host(&handle.apply_all(&mean), &per_member[m * 3..m * 3 + 3]);
        assert_close(&y[m * 2..m * 2 + 2], &want, 1e-4, 1e-4, &format!("per-member input, member {m}"));
    }
    let mean_y = es.forward_mean(&x, 2).unwrap();
    for row in 0..2 {
        assert_close(&mean_y[row * 2..row * 2 + 2], &on_host(&mean, &x[row * 3..row * 3 + 3]), 1e-5, 1e-5, "mean model");
    }
    let mut backend = es.into_backend();
    for (gain, needle) in [
        (Gain::Foreign(5), "no parameter 5 (4 in all)"),
        (Gain::Foreign(3), "`out.weight` is Matrix { m: 2, n: 3 }, not the Vector { len: 3 } of the handle"),
        (Gain::Short, "`short.gain` is Vector { len: 2 }, not a vector of the 3 features"),
    ] {
        let mut es = FloatTrainer::new(backend, NormOnInput::new(gain), small_config()).unwrap();
        let err = es.forward_mean(&x, 2).unwrap_err();
        assert!(matches!(err, EggrollError::Config(_)) && err.to_string().contains(needle), "mean model, gain {gain:?}: {err}");
        let err = es.population_forward(&per_member[..3], InputLayout::Shared, 1).unwrap_err();
        assert!(matches!(err, EggrollError::Config(_)) && err.to_string().contains(needle), "population, gain {gain:?}: {err}");
        backend = es.into_backend();
    }
}

/// The forwards of `0..N/2` and `N/2..N`, each run on its own, concatenated against the whole
/// population's forward (outputs, and log-likelihoods of `targets`): bit for bit on the CPU
/// backend, within f32 tolerance on wgpu, where the two may tile their products differently.
async fn assert_halves_give_the_whole<B: Backend, M: eggroll::Model>(
    es: &mut FloatTrainer<B, M>, x: &[f32], layout: InputLayout, rows: usize, targets: &[u32],
) {
    let (n, inputs) = (es.config().population, es.model().registry().inputs());
    let exact = es.backend().describe().backend == "cpu";
    let whole = es.population_forward_async(x, layout, rows).await.unwrap();
    let ll = es.population_log_likelihood_async(x, layout, rows, targets).await.unwrap();
    let (mut parts, mut ll_parts) = (Vec::new(), Vec::new());
    for members in [0..n / 2, n / 2..n] {
        let input = match layout {
            InputLayout::Shared => x.to_vec(),
            InputLayout::PerMember => x[members.start * rows * inputs..members.end * rows * inputs].to_vec(),
        };
        let t = &targets[members.start * rows..members.end * rows];
        parts.extend(es.population_forward_members_async(members.clone(), &input, layout, rows).await.unwrap());
        ll_parts.extend(es.population_log_likelihood_members_async(members, &input, layout, rows, t).await.unwrap());
    }
    for (got, want, what) in [(&parts, &whole, "outputs"), (&ll_parts, &ll, "log-likelihoods")] {
        let what = format!("{what} of the two halves, {layout:?} input");
        if exact {
            assert_eq!(got, want, "{what}");
        } else {
            assert_close(got, want, 1e-4, 1e-4, &what);
        }
    }
}

/// A trainer's forward over a range of members gives the rows the whole population's forward
/// gives those members, for an Mlp (shared and per-member input) and the charlm model.
async fn member_ranges_give_the_rows_of_the_whole_population<B: Backend>(backend: B) {
    let mut es = FloatTrainer::new(backend, tanh_mlp(), EsConfig { population: 12, ..small_config() }).unwrap();
    let rows = 3;
    let targets: Vec<u32> = (0..12 * rows).map(|i| (i % 3) as u32).collect();
    let shared: Vec<f32> = (0..rows * 5).map(|i| ((i * 37 % 11) as f32 - 5.0) / 4.0).collect();
    assert_halves_give_the_whole(&mut es, &shared, InputLayout::Shared, rows, &targets).await;
    let each: Vec<f32> = (0..12 * rows * 5).map(|i| ((i * 29 % 13) as f32 - 6.0) / 5.0).collect();
    assert_halves_give_the_whole(&mut es, &each, InputLayout::PerMember, rows, &targets).await;

    let options = CharLmOptions { width: 8, depth: 1, window: 6, ..CharLm::default_options() };
    let task = CharLm::new(3, &options).unwrap();
    let cfg = EsConfig { population: 8, rank: 2, sigma: 0.05, seed: 9, group_size: 0, ..task.default_config() };
    let mut lm = FloatTrainer::new(es.into_backend(), task.model(), cfg).unwrap();
    let rows = 2 * options.window;
    let bytes: Vec<f32> = (0..8 * rows).map(|i| ((i * 53) % 256) as f32).collect();
    let targets: Vec<u32> = (0..8 * rows).map(|i| ((i * 7 + 3) % 256) as u32).collect();
    assert_halves_give_the_whole(&mut lm, &bytes, InputLayout::PerMember, rows, &targets).await;
}

/// Member `member`'s parameters under OpenES, from the definitions: every parameter, matrix or
/// vector, plus `s σ E` with `E` the first values of its stream for the member's pair, row-major.
fn openes_member(mean: &ParamValues, config: &EsConfig, member: usize) -> Vec<Vec<f32>> {
    let sign = if member.is_multiple_of(2) { 1.0 } else { -1.0 };
    let noise_epoch = eggroll_backend::rng::noise_epoch(0, config.noise_reuse);
    mean.iter()
        .map(|(spec, values)| {
            let mut e = vec![0.0; values.len()];
            NoiseStream::new(config.seed, spec.id, noise_epoch).fill_normals((member / 2) as u32, 0, &mut e);
            values.iter().zip(&e).map(|(w, e)| w + sign * config.sigma * e).collect()
        })
        .collect()
}

/// OpenES: every member of the batched population forward is the host forward of
/// `x (W + s_i σ E_i)ᵀ` with a full-rank `E_i` from the parameter's stream (vectors alike); the
/// ask handles describe the same parameters; a range of members gives the whole population's
/// rows; EGGROLL's low-rank forward gives others.
async fn openes_population_forward_is_full_rank<B: Backend>(backend: B) {
    let model = tanh_mlp();
    let config = EsConfig { method: Method::OpenEs, ..small_config() };
    let mut es = FloatTrainer::new(backend, model.clone(), config.clone()).unwrap();
    let mean = es.params().unwrap();
    let rows = 3;
    let x: Vec<f32> = (0..rows * 5).map(|i| ((i * 37 % 11) as f32 - 5.0) / 4.0).collect();
    let y = es.population_forward(&x, InputLayout::Shared, rows).unwrap();
    for member in 0..config.population {
        let params = openes_member(&mean, &config, member);
        for row in 0..rows {
            let want = host_forward(&model, &params, &x[row * 5..(row + 1) * 5]);
            let at = (member * rows + row) * 3;
            assert_close(&y[at..at + 3], &want, 1e-4, 1e-4, &format!("member {member} row {row}"));
        }
    }
    for handle in es.ask() {
        let want = openes_member(&mean, &config, handle.member);
        for ((spec, got), want) in handle.apply_all(&mean).iter().zip(&want) {
            assert_close(got, want, 1e-6, 1e-6, &format!("handle {} {}", handle.member, spec.name));
        }
    }
    let part = es.population_forward_members(4..8, &x, InputLayout::Shared, rows).unwrap();
    assert_close(&part, &y[4 * rows * 3..8 * rows * 3], 1e-5, 1e-5, "members 4..8");
    let mut eggroll = FloatTrainer::new(es.into_backend(), model, small_config()).unwrap();
    let lowrank = eggroll.population_forward(&x, InputLayout::Shared, rows).unwrap();
    assert!(lowrank != y, "OpenES and EGGROLL perturb alike");
}

/// OpenES's update of every parameter, matrix or vector, is the full-rank estimate: after one
/// SGD tell, `θ' = θ + lr σ/√N Σ_i f_i s_i E_i` with `f` the shaped fitness and `E_i` the draws
/// of its forward.
async fn openes_update_is_the_full_rank_estimate<B: Backend>(backend: B) {
    let config = EsConfig { method: Method::OpenEs, optimizer: OptimizerKind::Sgd, population: 6, ..small_config() };
    let mut es = FloatTrainer::new(backend, tanh_mlp(), config.clone()).unwrap();
    let before = es.params().unwrap();
    let raw = [0.5, -1.0, 2.0, 0.0, 1.0, 3.0];
    let shaped = shape_fitness(&raw, config.group_size, config.shaping).unwrap();
    es.tell(&raw).unwrap();
    let after = es.params().unwrap();
    let coef = f64::from(config.lr) * f64::from(config.sigma) / (raw.len() as f64).sqrt();
    for ((spec, old), (_, new)) in before.iter().zip(after.iter()) {
        let mut want: Vec<f64> = old.iter().map(|&v| f64::from(v)).collect();
        let mut e = vec![0.0; old.len()];
        for (member, f) in shaped.iter().enumerate() {
            NoiseStream::new(config.seed, spec.id, 0).fill_normals((member / 2) as u32, 0, &mut e);
            let sign = if member.is_multiple_of(2) { 1.0 } else { -1.0 };
            want.iter_mut().zip(&e).for_each(|(w, &e)| *w += coef * f64::from(*f) * sign * f64::from(e));
        }
        assert_close(new, &want, 1e-5, 1e-4, &spec.name);
        assert!(new != old, "{} moved", spec.name);
    }
}
