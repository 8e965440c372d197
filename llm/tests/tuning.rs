//! Fine-tuning through the trainer core: a checkpoint's projections held by an
//! `eggroll::FloatTrainer` (`FineTuning`), its population generating with the trainer's noise and
//! updated by `tell`. On the CPU backend and every wgpu test adapter: the population's
//! generation is the plain model's under the same perturbation (the trainer holds the same
//! weights, in the same order, with the same noise ids), and one update moves every projection
//! by exactly `lr · (σ/√r)/√N Σ_i f_i s_i A_i B_iᵀ` (SGD), computed here in f64 from the
//! members' factors. Needs `EGGROLL_LLM_CASES` (scripts/llm_cases.sh).

use eggroll::config::{EsConfig, OptimizerKind};
use eggroll::session::Local;
use eggroll::shaping::shape_fitness;
use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::MatmulVariant;
use eggroll_backend::testing::{for_each_adapter, open, options};
use eggroll_backend::transformer::Transformer;
use eggroll_backend::{LowRank, LowRankNoise, NoiseStream};
use eggroll_llm::finetune::{epoch, Decoding};
use eggroll_llm::generate::{generate, Members, Sampling};
use eggroll_llm::model::{projection_shapes, PROJECTIONS};
use eggroll_llm::params::id_of;
use eggroll_llm::{FineTuning, LanguageModel, Logits, Model, ModelConfig, Noise, Problem, Step};
use std::path::PathBuf;

fn checkpoint() -> PathBuf {
    let root = std::env::var("EGGROLL_LLM_CASES")
        .expect("EGGROLL_LLM_CASES is not set: run `export EGGROLL_LLM_CASES=\"$(bash scripts/llm_cases.sh)\"` (scripts/test.sh does)");
    PathBuf::from(root).join("qwen2-f32")
}

fn es() -> EsConfig {
    EsConfig { population: 4, rank: 2, sigma: 0.05, lr: 0.5, optimizer: OptimizerKind::Sgd, seed: 11, epochs: 4, ..EsConfig::default() }
}

/// Every check, on `backend` (a second one, `again`, opens the plain model beside it).
fn fine_tuning_runs_through_the_trainer<B: Transformer>(backend: B, again: &B, on: &str) {
    let dir = checkpoint();
    let config = es();
    let mut tuning = FineTuning::load(backend, &dir, config.clone()).unwrap();
    let plain = Model::load(again, &dir).unwrap();
    let prompts = vec![vec![5, 17, 42, 9], vec![3, 3, 100]];
    let perturbation = tuning.perturbation();
    let wanted = (Noise::LowRank { rank: config.rank }, config.sigma, config.seed, 0, config.population, 0);
    let got = (
        perturbation.noise,
        perturbation.sigma,
        perturbation.seed,
        perturbation.noise_epoch,
        perturbation.population,
        perturbation.first_member,
    );
    assert_eq!(got, wanted, "{on}: the generation's noise is the trainer's");
    let members = Members::Population(perturbation);
    let b = tuning.backend();
    let tuned = generate(b, &tuning, &prompts, members, 6, &[], Sampling::GREEDY).unwrap();
    let reference = generate(again, &plain, &prompts, members, 6, &[], Sampling::GREEDY).unwrap();
    assert_eq!(tuned.len(), config.population, "{on}: one answer list per member");
    for (member, (ours, theirs)) in tuned.iter().zip(&reference).enumerate() {
        for (a, b) in ours.iter().zip(theirs) {
            assert_eq!((&a.tokens, &a.log_probs), (&b.tokens, &b.log_probs), "{on}: member {member}");
        }
    }

    // One update, against its definition.
    let model_config = ModelConfig::load(&dir).unwrap();
    let before: Vec<Vec<f32>> = tuning.trainer().values().map(|(_, w)| b.read_blocking(w).unwrap()).collect();
    let logits_before = mean_logits(&tuning);
    let fitness = [0.3, -1.0, 2.0, 0.5];
    let shaped = shape_fitness(&fitness, 0, config.shaping).unwrap();
    let noise_epoch = tuning.perturbation().noise_epoch;
    tuning.tell(&fitness).unwrap();
    let b = tuning.backend();
    let after: Vec<Vec<f32>> = tuning.trainer().values().map(|(_, w)| b.read_blocking(w).unwrap()).collect();
    let n = config.population as f64;
    for (at, (spec, _)) in tuning.trainer().values().enumerate() {
        let (l, j) = (at / 7, at % 7);
        let name = format!("model.layers.{l}.{}", PROJECTIONS[j]);
        assert_eq!((&spec.name, Some(spec.id)), (&name, id_of(&model_config, &name)), "{on}: parameter {at}");
        let [m, k] = projection_shapes(&model_config)[j];
        let r = config.rank.min(m).min(k);
        let noise = LowRankNoise {
            stream: NoiseStream::new(config.seed, spec.id, noise_epoch),
            shape: LowRank { m, n: k, rank: r, sigma: config.sigma, piece: None },
        };
        let (mut a, mut bf) = (b.zeros(config.population * m * r).unwrap(), b.zeros(config.population * k * r).unwrap());
        b.noise_factors(noise, config.population, &mut a, &mut bf).unwrap();
        let (a, bf) = (b.read_blocking(&a).unwrap(), b.read_blocking(&bf).unwrap());
        let scale = f64::from(config.sigma) / (r as f64).sqrt() / n.sqrt() * f64::from(config.lr);
        let mut worst = 0.0f64;
        let mut largest = 0.0f64;
        for row in 0..m {
            for col in 0..k {
                let mut g = 0.0f64;
                for (i, f) in shaped.iter().enumerate() {
                    for c in 0..r {
                        g += f64::from(*f) * f64::from(a[(i * m + row) * r + c]) * f64::from(bf[(i * k + col) * r + c]);
                    }
                }
                let want = f64::from(before[at][row * k + col]) + scale * g;
                worst = worst.max((f64::from(after[at][row * k + col]) - want).abs());
                largest = largest.max((scale * g).abs());
            }
        }
        assert!(largest > 0.0 && worst <= 1e-3 * largest + 1e-6, "{on}: {name}: off by {worst} (largest step {largest})");
    }
    assert_eq!((tuning.trainer().epoch(), tuning.perturbation().noise_epoch), (1, 1), "{on}: the next epoch, new noise");
    assert_ne!(mean_logits(&tuning), logits_before, "{on}: the mean model reads the updated projections");

    // Bad input: the trainer's refusals, one error each.
    assert!(tuning.tell(&[1.0, 2.0]).unwrap_err().to_string().contains("fitness values for a population of 4"), "{on}");
    assert!(tuning.tell(&[1.0, f32::NAN, 0.0, 0.0]).is_err(), "{on}: NaN fitness");
}

/// The mean model's logits of one prompt.
fn mean_logits<B: Transformer>(tuning: &FineTuning<B>) -> Vec<f32> {
    let b = tuning.backend();
    let tokens = [5u32, 17, 42];
    let mut cache = tuning.model().cache(b, 1, tokens.len()).unwrap();
    let step = Step { perturbation: None, tokens: &tokens, slots: &[0], starts: &[0], new: tokens.len() };
    b.read_blocking(&tuning.forward(b, step, &mut cache, Logits::All).unwrap()).unwrap()
}

#[test]
fn a_checkpoint_fine_tunes_through_the_trainer_core() {
    fine_tuning_runs_through_the_trainer(CpuBackend::new(), &CpuBackend::new(), "cpu");
    for_each_adapter(|adapter| {
        let (ours, plain) = (open(adapter, &options(MatmulVariant::Direct)), open(adapter, &options(MatmulVariant::Direct)));
        fine_tuning_runs_through_the_trainer(ours, &plain, &format!("wgpu {adapter}"));
    });
}

#[test]
fn a_bad_trainer_config_is_refused_by_name() {
    let odd = EsConfig { population: 3, ..es() };
    let e = FineTuning::load(CpuBackend::new(), &checkpoint(), odd).err().expect("an odd population is refused").to_string();
    assert!(e.contains("population"), "{e}");
}

#[test]
fn an_epoch_scores_every_answer_and_steps_the_trainer() {
    let dir = checkpoint();
    let tokenizer = eggroll_llm::TextTokenizer::load(&dir).unwrap();
    let mut tuning = FineTuning::load(CpuBackend::new(), &dir, es()).unwrap();
    let before: Vec<Vec<f32>> = tuning.trainer().values().map(|(_, w)| w.clone()).collect();
    let decoding = Decoding { tokenizer: &tokenizer, eos: &[], max_tokens: 3, chat: false };
    let problems: Vec<Problem> = ["In the", "And God"].iter().map(|p| Problem { prompt: p.to_string(), answer: String::new() }).collect();
    let mut seen = Vec::new();
    // A reward that differs between the members' answers: the length of the text.
    let outcome = epoch(
        &mut tuning,
        decoding,
        &problems,
        false,
        &mut |asked, completions| {
            assert_eq!(asked.len(), completions.len());
            seen.extend(completions.iter().cloned());
            Ok(completions.iter().map(|c| c.len() as f32).collect())
        },
        &mut Local,
    )
    .unwrap();
    assert_eq!(seen.len(), es().population * problems.len(), "every member's answer to every prompt is scored");
    let mean = seen.iter().map(|s| s.len() as f64).sum::<f64>() / seen.len() as f64;
    assert!((outcome.mean_reward - mean).abs() < 1e-9, "{outcome:?}");
    assert_eq!(outcome.mean_completion_tokens, 3.0);
    assert_eq!(tuning.trainer().epoch(), 1);
    let after: Vec<Vec<f32>> = tuning.trainer().values().map(|(_, w)| w.clone()).collect();
    let varied = seen.iter().any(|s| s.len() != seen[0].len());
    assert!(varied, "the members' answers differ: {seen:?}");
    assert_ne!(before, after, "different rewards move the projections");
    // A reward that is not a number ends the epoch with an error naming it.
    let e = epoch(&mut tuning, decoding, &problems, false, &mut |_, c| Ok(vec![f32::NAN; c.len()]), &mut Local).unwrap_err().to_string();
    assert!(e.contains("not a finite number"), "{e}");
    let e = epoch(&mut tuning, decoding, &problems, false, &mut |_, _| Ok(vec![1.0]), &mut Local).unwrap_err().to_string();
    assert!(e.contains("1 rewards"), "{e}");
}

/// The trainer's projections in pieces of rows (as a projection beyond an adapter's binding
/// limit is held) against the same checkpoint held whole, on backends `open` makes: the
/// population's generation, two updates of each method (SGD, and Adam with its moments) and the
/// mean model after them agree
/// within the backends' tolerance, the folder `save_pretrained` writes holds the same tensors,
/// and the checkpoints (each projection whole in the file) resume in either layout.
fn pieces_train_as_the_whole<B: Transformer>(open: impl Fn() -> B, on: &str) {
    use eggroll::config::Method;
    use eggroll_llm::{Included, Layout, Weights};
    let dir = checkpoint();
    let model_config = ModelConfig::load(&dir).unwrap();
    let weights = Weights::open(&dir).unwrap();
    let hidden = model_config.hidden as u64;
    let layout = Layout { projection_piece_bytes: Some(24 * hidden * 4), ..Layout::default() };
    let close = |ours: &[f32], theirs: &[f32], what: &str| {
        let largest = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(ours.len() == theirs.len() && worst <= 1e-4 * largest.max(1e-3), "{on}: {what}: off by {worst} (largest {largest})");
    };
    let adam = EsConfig { optimizer: OptimizerKind::Adam, lr: 1e-3, ..es() };
    for config in [es(), EsConfig { method: Method::OpenEs, ..es() }, adam] {
        let method = (config.method, config.optimizer);
        let mut whole = FineTuning::from_weights(open(), model_config.clone(), &weights, config.clone()).unwrap();
        let mut pieced =
            FineTuning::from_weights_with(open(), model_config.clone(), &weights, config.clone(), layout, Included::default()).unwrap();
        let (held_whole, held_pieced) = (whole.trainer().values().count(), pieced.trainer().values().count());
        assert!(held_pieced > held_whole, "{on}: {held_pieced} pieces for {held_whole} projections");
        assert!(pieced.trainer().values().any(|(spec, _)| spec.name.ends_with(']')), "{on}: pieces are named by their rows");
        let prompts = vec![vec![5, 17, 42, 9], vec![3, 3, 100]];
        for (epoch, fitness) in [[0.3f32, -1.0, 2.0, 0.5], [1.0, 0.0, -0.5, 0.25]].iter().enumerate() {
            let members = Members::Population(whole.perturbation());
            assert_eq!(members, Members::Population(pieced.perturbation()), "{on}: the same noise");
            let ours = generate(pieced.backend(), &pieced, &prompts, members, 6, &[], Sampling::GREEDY).unwrap();
            let theirs = generate(whole.backend(), &whole, &prompts, members, 6, &[], Sampling::GREEDY).unwrap();
            for (member, (ours, theirs)) in ours.iter().zip(&theirs).enumerate() {
                for (a, b) in ours.iter().zip(theirs) {
                    assert_eq!(a.tokens, b.tokens, "{on}: {method:?}, epoch {epoch}, member {member}: tokens");
                    close(&a.log_probs, &b.log_probs, &format!("{method:?}, epoch {epoch}, member {member}: log-probabilities"));
                }
            }
            whole.tell(fitness).unwrap();
            pieced.tell(fitness).unwrap();
        }
        close(&mean_logits(&pieced), &mean_logits(&whole), &format!("{method:?}: the mean model after two updates"));

        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        whole.save_pretrained(&dir, a.path(), eggroll_llm::config::StoredDtype::F32).unwrap();
        pieced.save_pretrained(&dir, b.path(), eggroll_llm::config::StoredDtype::F32).unwrap();
        let (saved_whole, saved_pieced) = (Weights::open(a.path()).unwrap(), Weights::open(b.path()).unwrap());
        for (name, shape) in eggroll_llm::weights::tensor_shapes(&model_config) {
            close(&saved_pieced.f32(&name, &shape).unwrap(), &saved_whole.f32(&name, &shape).unwrap(), &format!("saved {name}"));
        }

        let state = pieced.save_state().unwrap();
        let mut restored =
            FineTuning::from_weights_with(open(), model_config.clone(), &weights, config.clone(), layout, Included::default()).unwrap();
        restored.load_state(&state, 2).unwrap();
        assert_eq!(mean_logits(&restored), mean_logits(&pieced), "{on}: {method:?}: the pieced state restores exactly");
        // The checkpoint holds each projection whole: one made whole resumes in pieces, and back.
        restored.load_state(&whole.save_state().unwrap(), 2).unwrap();
        close(&mean_logits(&restored), &mean_logits(&whole), &format!("{method:?}: the whole state resumed in pieces"));
        let mut whole_again = FineTuning::from_weights(open(), model_config.clone(), &weights, config.clone()).unwrap();
        whole_again.load_state(&state, 2).unwrap();
        close(&mean_logits(&whole_again), &mean_logits(&pieced), &format!("{method:?}: the pieced state resumed whole"));
    }
}

#[test]
fn projections_in_pieces_train_as_whole_ones() {
    pieces_train_as_the_whole(CpuBackend::new, "cpu");
    for_each_adapter(|adapter| pieces_train_as_the_whole(|| open(adapter, &options(MatmulVariant::Direct)), &format!("wgpu {adapter}")));
}
