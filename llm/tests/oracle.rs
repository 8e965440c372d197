//! The models against Hugging Face transformers itself: `scripts/llm_cases.sh` writes tiny random
//! checkpoints of each family with transformers (float32 and bfloat16, the hub's config form and
//! transformers 5's, sharded and single-file) and what transformers computes on them; these tests
//! load each folder and compare token ids, chat renderings, every position's logits and greedy
//! generations, on the CPU backend and on every wgpu test adapter (`EGGROLL_TEST_WGPU_BACKEND`).
//! `EGGROLL_LLM_CASES` names the cases' folder; the tests fail without it.

use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::MatmulVariant;
use eggroll_backend::testing::{for_each_adapter, gpu};
use eggroll_backend::transformer::Transformer;
use eggroll_backend::DType;
use eggroll_llm::generate::greedy;
use eggroll_llm::{Layout, Logits, Message, Model, Step, TextTokenizer, WeightDtype, Weights};
use serde_json::Value;
use std::path::PathBuf;

/// The cases' folder and the names of its checkpoints.
fn cases() -> (PathBuf, Vec<String>) {
    let dir = PathBuf::from(
        std::env::var("EGGROLL_LLM_CASES")
            .expect("EGGROLL_LLM_CASES is not set: run `export EGGROLL_LLM_CASES=\"$(bash scripts/llm_cases.sh)\"` (scripts/test.sh does)"),
    );
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json")).expect("manifest JSON");
    let names = manifest.as_array().or_else(|| manifest.get("models").and_then(Value::as_array)).expect("a list of checkpoints");
    let names: Vec<String> = names.iter().map(|n| n.as_str().expect("a folder name").to_string()).collect();
    assert!(names.len() >= 4, "the oracle wrote {} checkpoints, expected one per family and form", names.len());
    (dir, names)
}

fn oracle(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("oracle.json")).expect("oracle.json")).expect("oracle JSON")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("ids").iter().map(|i| i.as_u64().expect("an id") as u32).collect()
}

#[test]
fn prompt_ids_and_chat_templates_are_transformers() {
    let (root, names) = cases();
    for name in names {
        let dir = root.join(&name);
        let expected = oracle(&dir);
        let tokenizer = TextTokenizer::load(&dir).unwrap();
        for prompt in expected["prompts"].as_array().unwrap() {
            let text = prompt["text"].as_str().unwrap();
            assert_eq!(tokenizer.encode(text).unwrap(), ids(&prompt["input_ids"]), "{name}: ids of {text:?}");
        }
        let chat = &expected["chat"];
        let messages: Vec<Message> = chat["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| Message { role: m["role"].as_str().unwrap().into(), content: m["content"].as_str().unwrap().into() })
            .collect();
        assert_eq!(tokenizer.render_chat(&messages).unwrap(), chat["rendered"].as_str().unwrap(), "{name}: chat rendering");
        assert_eq!(tokenizer.encode_chat(&messages).unwrap(), ids(&chat["input_ids"]), "{name}: chat ids");
    }
}

/// The layouts every model is checked in: whole, and with its embedding and head split into
/// pieces of 100 rows and its projections into pieces of 24 rows of the hidden width (fewer of
/// the wider down projection; the last piece of each shorter), as a vocabulary or a projection
/// beyond an adapter's binding limit is.
/// The split layout's matrices are held as `weights`: the checkpoint's own 16-bit type where the
/// backend stores it (`WeightDtype::Auto`), so that the oracle also checks 16-bit storage.
fn layouts(hidden: usize, weights: DType) -> [(Layout, &'static str); 2] {
    let split = Layout { table_piece_bytes: Some(100 * hidden as u64 * 4), projection_piece_bytes: Some(24 * hidden as u64 * 4), weights };
    [(Layout::default(), "whole"), (split, "split")]
}

/// The model of `dir` in each layout, with the layout's name.
fn models<B: Transformer>(backend: &B, dir: &std::path::Path) -> Vec<(Model<B>, &'static str)> {
    let hidden = eggroll_llm::ModelConfig::load(dir).unwrap().hidden;
    let stored = WeightDtype::Auto.resolve(backend, Weights::open(dir).unwrap().dtype()).unwrap();
    layouts(hidden, stored)
        .into_iter()
        .map(|(layout, what)| {
            let model = Model::load_with(backend, dir, layout).unwrap();
            assert_eq!(model.weight_dtype(), layout.weights, "{}: {what} layout's storage", dir.display());
            assert_eq!(model.embedding_pieces() > 1, what == "split", "{}: {what} layout", dir.display());
            assert_eq!(model.projection_pieces() > 1, what == "split", "{}: {what} layout's projections", dir.display());
            (model, what)
        })
        .collect()
}

/// Every position's logits of each prompt agree with transformers' to 1e-4 of the largest.
fn logits_match<B: Transformer>(backend: &B, on: &str) {
    let (root, names) = cases();
    for name in names {
        let dir = root.join(&name);
        let expected = oracle(&dir);
        for (model, layout) in models(backend, &dir) {
            let name = format!("{name} ({layout})");
            let vocab = model.config.vocab;
            for prompt in expected["prompts"].as_array().unwrap() {
                let tokens = ids(&prompt["input_ids"]);
                let mut cache = model.cache(backend, 1, tokens.len()).unwrap();
                let step = Step { perturbation: None, tokens: &tokens, slots: &[0], starts: &[0], new: tokens.len() };
                let logits = backend.read_blocking(&model.forward(backend, step, &mut cache, Logits::All).unwrap()).unwrap();
                let reference: Vec<f32> = prompt["logits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
                    .collect();
                assert_eq!(logits.len(), reference.len(), "{on}, {name}: logits of {} positions x {vocab}", tokens.len());
                for (position, (ours, theirs)) in logits.chunks_exact(vocab).zip(reference.chunks_exact(vocab)).enumerate() {
                    let largest = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let worst = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                    assert!(
                        largest > 0.0 && worst <= 1e-4 * largest,
                        "{on}, {name}: position {position}: logits differ by {worst} (largest {largest})"
                    );
                }
            }
        }
    }
}

/// Greedy decoding of every prompt, all decoded together, gives transformers' 32 ids.
fn greedy_matches<B: Transformer>(backend: &B, on: &str) {
    let (root, names) = cases();
    for name in names {
        let dir = root.join(&name);
        let expected = oracle(&dir);
        let prompts: Vec<Vec<u32>> = expected["prompts"].as_array().unwrap().iter().map(|p| ids(&p["input_ids"])).collect();
        let wanted: Vec<Vec<u32>> = expected["prompts"].as_array().unwrap().iter().map(|p| ids(&p["greedy_ids"])).collect();
        let max_new = wanted.iter().map(Vec::len).max().unwrap();
        assert!(max_new >= 32, "{name}: the oracle generated {max_new} tokens");
        for (model, layout) in models(backend, &dir) {
            let got = greedy(backend, &model, &prompts, max_new, &[]).unwrap();
            assert_eq!(got, wanted, "{on}, {name} ({layout}): greedy ids of all prompts decoded together");
        }
    }
}

#[test]
fn logits_of_every_position_match_transformers() {
    logits_match(&CpuBackend::new(), "cpu");
    for_each_adapter(|adapter| logits_match(gpu(adapter, MatmulVariant::Direct), &format!("wgpu {adapter}")));
}

#[test]
fn greedy_generations_are_transformers_ids() {
    greedy_matches(&CpuBackend::new(), "cpu");
    for_each_adapter(|adapter| greedy_matches(gpu(adapter, MatmulVariant::Direct), &format!("wgpu {adapter}")));
}

/// The logits of every position of `tokens` for member `member` of a population forward of
/// `model` (a model, or a fine-tuning's) in which every member reads `tokens`.
fn member_logits<B: Transformer>(
    backend: &B, model: &impl eggroll_llm::LanguageModel<B>, tokens: &[u32], perturbation: eggroll_llm::Perturbation, member: usize,
) -> Vec<f32> {
    let population = perturbation.population;
    let all: Vec<u32> = tokens.iter().copied().cycle().take(population * tokens.len()).collect();
    let slots: Vec<u32> = (0..population as u32).collect();
    let starts = vec![0; population];
    let mut cache = model.model().cache(backend, population, tokens.len()).unwrap();
    let step = Step { perturbation: Some(perturbation), tokens: &all, slots: &slots, starts: &starts, new: tokens.len() };
    let logits = backend.read_blocking(&model.forward(backend, step, &mut cache, Logits::All).unwrap()).unwrap();
    let per_member = tokens.len() * model.model().config.vocab;
    logits[member * per_member..(member + 1) * per_member].to_vec()
}

/// Runs the oracle's `logits` subcommand (transformers in float32) on `dir` for `tokens`.
fn transformers_logits(root: &std::path::Path, dir: &std::path::Path, tokens: &[u32]) -> Vec<f32> {
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(root.join("manifest.json")).unwrap()).unwrap();
    let ids = dir.join("ids.json");
    std::fs::write(&ids, serde_json::to_string(&vec![tokens.to_vec()]).unwrap()).unwrap();
    let output = std::process::Command::new(manifest["python"].as_str().unwrap())
        .args([manifest["oracle"].as_str().unwrap(), "logits", dir.to_str().unwrap(), ids.to_str().unwrap()])
        .output()
        .expect("the oracle's python runs");
    assert!(output.status.success(), "the oracle failed: {}", String::from_utf8_lossy(&output.stderr));
    let v: Value = serde_json::from_slice(&output.stdout).expect("the oracle prints JSON");
    v["logits"][0].as_array().unwrap().iter().flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32)).collect()
}

/// Writes a float32 checkpoint of the model of `dir` into `out` with member `member`'s noise of
/// `perturbation` written into every tensor `perturbed` selects: `W + s σ/√r A Bᵀ` (EGGROLL) or
/// `W + s σ E` (OpenES) for a matrix, `w + s σ ε` for a vector; the rest as it was.
fn write_member(
    dir: &std::path::Path, out: &std::path::Path, perturbation: eggroll_llm::Perturbation, member: usize,
    perturbed: impl Fn(&eggroll_llm::params::Param) -> bool,
) {
    use eggroll_backend::{Backend, Kernels, LowRank, LowRankNoise, NoiseStream};
    use eggroll_llm::params::registry;
    use eggroll_llm::Noise;
    use safetensors::tensor::TensorView;

    let backend = CpuBackend::new();
    let config = eggroll_llm::ModelConfig::load(dir).unwrap();
    let weights = Weights::open(dir).unwrap();
    let eggroll_llm::Perturbation { noise, sigma, seed, noise_epoch: epoch, population, .. } = perturbation;
    for file in ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        std::fs::copy(dir.join(file), out.join(file)).unwrap();
    }
    let (pair, sign) = ((member / 2) as u32, if member.is_multiple_of(2) { 1.0f64 } else { -1.0 });
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for param in registry(&config) {
        let mut w = weights.f32(&param.name, &param.shape).unwrap();
        if perturbed(&param) {
            let stream = NoiseStream::new(seed, param.id, epoch);
            match (noise, &param.shape[..]) {
                (Noise::LowRank { rank }, &[m, n]) => {
                    let rank = rank.min(m).min(n);
                    let shape = LowRank { m, n, rank, sigma, piece: None };
                    let (mut a, mut b) = (backend.zeros(population * m * rank).unwrap(), backend.zeros(population * n * rank).unwrap());
                    backend.noise_factors(LowRankNoise { stream, shape }, population, &mut a, &mut b).unwrap();
                    let (a, b) = (&a[member * m * rank..], &b[member * n * rank..]);
                    for j in 0..m {
                        for k in 0..n {
                            let ab: f64 = (0..rank).map(|t| f64::from(a[j * rank + t]) * f64::from(b[k * rank + t])).sum();
                            w[j * n + k] = (f64::from(w[j * n + k]) + f64::from(shape.scale()) * ab) as f32;
                        }
                    }
                }
                // OpenES's matrices, and every vector, take full-rank noise: draw `j` of the pair.
                _ => {
                    let mut e = vec![0.0f32; w.len()];
                    stream.fill_normals(pair, 0, &mut e);
                    for (w, e) in w.iter_mut().zip(&e) {
                        *w = (f64::from(*w) + sign * f64::from(sigma) * f64::from(*e)) as f32;
                    }
                }
            }
        }
        let bytes = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((param.name, param.shape, bytes));
    }
    let views: Vec<(String, TensorView)> =
        tensors.iter().map(|(n, s, b)| (n.clone(), TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())).collect();
    std::fs::write(out.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Checks each run's logits (`on`, logits) against transformers' (`theirs`) to 1e-4 of the
/// largest, and that the noise moved transformers' well beyond that (`unperturbed`: the
/// unperturbed model's).
fn assert_member_logits(runs: Vec<(String, Vec<f32>)>, theirs: &[f32], unperturbed: &[f32], vocab: usize, what: &str) {
    for (on, ours) in runs {
        assert_eq!(theirs.len(), ours.len());
        for (position, ((o, t), u)) in
            ours.chunks_exact(vocab).zip(theirs.chunks_exact(vocab)).zip(unperturbed.chunks_exact(vocab)).enumerate()
        {
            let largest = t.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = o.iter().zip(t).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            let moved = t.iter().zip(u).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-4 * largest, "{on}, {what}: position {position}: logits differ by {worst} (largest {largest})");
            assert!(moved > 100.0 * worst.max(1e-4 * largest), "{on}, {what}: the noise moved the logits by only {moved}");
        }
    }
}

/// The logits transformers' oracle computed for prompt `prompt` of the checkpoint, row by row.
fn oracle_logits(expected: &Value, prompt: usize) -> Vec<f32> {
    expected["prompts"][prompt]["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
        .collect()
}

/// A member of a population of 4 (member 3: pair 1, sign -1) against transformers loaded with
/// that member's weights written into the checkpoint: every projection `W + s σ/√r A Bᵀ` (EGGROLL,
/// rank 2) or `W + s σ E` (OpenES), the rest as it was; the projections held whole and in
/// pieces of rows.
#[test]
fn a_perturbed_member_is_transformers_with_its_noise_written_into_the_weights() {
    use eggroll_llm::params::Role;
    use eggroll_llm::{Noise, Perturbation};

    let (root, names) = cases();
    let backend = CpuBackend::new();
    let (population, member, sigma, seed, epoch) = (4usize, 3usize, 0.05f32, 9u64, 2u32);
    for name in names.iter().filter(|n| n.ends_with("f32")) {
        let dir = root.join(name);
        let expected = oracle(&dir);
        let tokens = ids(&expected["prompts"][1]["input_ids"]);
        let model = Model::load(&backend, &dir).unwrap();
        for noise in [Noise::LowRank { rank: 2 }, Noise::FullRank] {
            let perturbation = Perturbation { noise, sigma, seed, noise_epoch: epoch, population, first_member: 0 };
            let out = tempfile::tempdir().unwrap();
            write_member(&dir, out.path(), perturbation, member, |param| param.role == Role::Projection);
            let theirs = transformers_logits(&root, out.path(), &tokens);

            // Every layout: the projections whole and in pieces of rows, each piece with its rows
            // of the whole's noise.
            let mut runs = Vec::new();
            for (layout, what) in layouts(model.config.hidden, DType::F32) {
                runs.push((
                    format!("cpu, {what}"),
                    member_logits(&backend, &Model::load_with(&backend, &dir, layout).unwrap(), &tokens, perturbation, member),
                ));
                for_each_adapter(|adapter| {
                    let backend = gpu(adapter, MatmulVariant::Direct);
                    let logits = member_logits(backend, &Model::load_with(backend, &dir, layout).unwrap(), &tokens, perturbation, member);
                    runs.push((format!("wgpu {adapter}, {what}"), logits));
                });
            }
            assert_member_logits(runs, &theirs, &oracle_logits(&expected, 1), model.config.vocab, &format!("{name}, {noise:?}"));
        }
    }
}

/// The tensors beyond the projections, trained (`--include`): a member of a fine-tuning's
/// population perturbs the embedding and head (low-rank, or OpenES's full rank), every norm and
/// bias (vector noise) as well as the projections, and its logits are transformers' with all of
/// that member's noise written into the checkpoint: on every family (Qwen2's biases, Qwen3's q
/// and k norms, tied and untied heads), with the trainer's matrices whole and in pieces of rows
/// (the embedding's lookup and the head in pieces too).
#[test]
fn an_included_tensor_is_perturbed_as_transformers_sees_it() {
    use eggroll::EsConfig;
    use eggroll_llm::tuning::FineTuning;
    use eggroll_llm::{Included, Noise, Perturbation};

    let (root, names) = cases();
    let (population, member, sigma, seed, epoch) = (4usize, 3usize, 0.05f32, 9u64, 2u32);
    for name in &names {
        let dir = root.join(name);
        let expected = oracle(&dir);
        let tokens = ids(&expected["prompts"][1]["input_ids"]);
        let config = eggroll_llm::ModelConfig::load(&dir).unwrap();
        let weights = Weights::open(&dir).unwrap();
        let [(whole, _), (split, _)] = layouts(config.hidden, DType::F32);
        for noise in [Noise::LowRank { rank: 2 }, Noise::FullRank] {
            let perturbation = Perturbation { noise, sigma, seed, noise_epoch: epoch, population, first_member: 0 };
            let es = EsConfig { population, seed, ..EsConfig::default() };
            let out = tempfile::tempdir().unwrap();
            write_member(&dir, out.path(), perturbation, member, |param| Included::ALL.trains(&config, param));
            let theirs = transformers_logits(&root, out.path(), &tokens);
            let mut runs = Vec::new();
            for (layout, on) in [(whole, "whole"), (split, "split")] {
                let cpu =
                    FineTuning::from_weights_with(CpuBackend::new(), config.clone(), &weights, es.clone(), layout, Included::ALL).unwrap();
                let pieces = cpu.trainer().specs().iter().filter(|s| s.name.starts_with("model.embed_tokens.weight")).count();
                assert_eq!(pieces > 1, on == "split", "{name}: the trained embedding's pieces in the {on} layout");
                runs.push((format!("cpu, {on}"), member_logits(cpu.backend(), &cpu, &tokens, perturbation, member)));
                for_each_adapter(|adapter| {
                    let backend = eggroll_backend::testing::open(adapter, &eggroll_backend::testing::options(MatmulVariant::Direct));
                    let tuning =
                        FineTuning::from_weights_with(backend, config.clone(), &weights, es.clone(), layout, Included::ALL).unwrap();
                    runs.push((format!("wgpu {adapter}, {on}"), member_logits(tuning.backend(), &tuning, &tokens, perturbation, member)));
                });
            }
            assert_member_logits(runs, &theirs, &oracle_logits(&expected, 1), config.vocab, &format!("{name}, {noise:?}"));
        }
    }
}

/// A population's generation: with σ = 0 every member answers as transformers' greedy decoding,
/// with the log-probabilities of its logits; with noise, a slice of the population (one pair
/// generated alone) answers as those members do in the whole population, and the two members of
/// a pair answer differently.
#[test]
fn every_member_answers_every_prompt() {
    use eggroll_llm::generate::{generate, Members, Sampling};
    use eggroll_llm::{Noise, Perturbation};

    let (root, names) = cases();
    let backend = CpuBackend::new();
    for name in &names {
        let dir = root.join(name);
        let expected = oracle(&dir);
        let model = Model::load(&backend, &dir).unwrap();
        let prompts: Vec<Vec<u32>> = expected["prompts"].as_array().unwrap().iter().map(|p| ids(&p["input_ids"])).collect();
        let wanted: Vec<Vec<u32>> = expected["prompts"].as_array().unwrap().iter().map(|p| ids(&p["greedy_ids"])[..12].to_vec()).collect();
        let population = |sigma: f32, population: usize, first_member: usize| {
            Members::Population(Perturbation {
                noise: Noise::LowRank { rank: 1 },
                sigma,
                seed: 4,
                noise_epoch: 0,
                population,
                first_member,
            })
        };
        let quiet = generate(&backend, &model, &prompts, population(0.0, 4, 0), 12, &[], Sampling::GREEDY).unwrap();
        assert_eq!(quiet.len(), 4);
        for answers in &quiet {
            assert_eq!(answers.iter().map(|c| c.tokens.clone()).collect::<Vec<_>>(), wanted, "{name}: σ = 0");
            for (answer, prompt) in answers.iter().zip(expected["prompts"].as_array().unwrap()) {
                let last = prompt["logits"].as_array().unwrap().last().unwrap().as_array().unwrap();
                let last: Vec<f64> = last.iter().map(|v| v.as_f64().unwrap()).collect();
                let max = last.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let log_sum = last.iter().map(|l| (l - max).exp()).sum::<f64>().ln() + max;
                let want = last[answer.tokens[0] as usize] - log_sum;
                assert!(
                    (f64::from(answer.log_probs[0]) - want).abs() < 1e-4,
                    "{name}: log-probability {} against {want}",
                    answer.log_probs[0]
                );
            }
        }
        let noisy = generate(&backend, &model, &prompts, population(0.5, 4, 0), 12, &[], Sampling::GREEDY).unwrap();
        let pair = generate(&backend, &model, &prompts, population(0.5, 2, 2), 12, &[], Sampling::GREEDY).unwrap();
        let tokens = |answers: &Vec<eggroll_llm::generate::Completion>| answers.iter().map(|c| c.tokens.clone()).collect::<Vec<_>>();
        assert_eq!(tokens(&pair[0]), tokens(&noisy[2]), "{name}: member 2 alone and in the population");
        assert_eq!(tokens(&pair[1]), tokens(&noisy[3]), "{name}: member 3 alone and in the population");
        assert_ne!(tokens(&noisy[2]), tokens(&noisy[3]), "{name}: the two members of a pair answer alike");
    }
}

/// Sampling draws on the device: every wgpu adapter samples the tokens the CPU backend samples
/// from the same seed (their logits differ only by rounding, their draws only by `exp`), for the
/// mean model and a population's members.
#[test]
fn sampling_on_each_adapter_draws_the_cpu_backends_tokens() {
    use eggroll_llm::generate::{generate, Members, Sampling};
    use eggroll_llm::{Noise, Perturbation};

    let (root, names) = cases();
    let dir = root.join(&names[0]);
    let expected = oracle(&dir);
    let prompts: Vec<Vec<u32>> = expected["prompts"].as_array().unwrap().iter().map(|p| ids(&p["input_ids"])).collect();
    let hot = Sampling { temperature: 1.2, top_p: 0.95, seed: 21 };
    let population = |sigma: f32, population: usize, first_member: usize| {
        Members::Population(Perturbation { noise: Noise::LowRank { rank: 1 }, sigma, seed: 4, noise_epoch: 0, population, first_member })
    };
    let answers = |mean: Vec<Vec<eggroll_llm::generate::Completion>>| -> Vec<Vec<Vec<u32>>> {
        mean.into_iter().map(|m| m.into_iter().map(|c| c.tokens).collect()).collect()
    };
    let cpu = CpuBackend::new();
    let model = Model::load(&cpu, &dir).unwrap();
    let want_mean = answers(generate(&cpu, &model, &prompts, Members::Mean, 12, &[], hot).unwrap());
    let want_population = answers(generate(&cpu, &model, &prompts, population(0.5, 4, 0), 12, &[], hot).unwrap());
    for_each_adapter(|adapter| {
        let backend = gpu(adapter, MatmulVariant::Direct);
        let model = Model::load(backend, &dir).unwrap();
        let mean = answers(generate(backend, &model, &prompts, Members::Mean, 12, &[], hot).unwrap());
        assert_eq!(mean, want_mean, "wgpu {adapter}: the mean model's sampled tokens");
        let members = answers(generate(backend, &model, &prompts, population(0.5, 4, 0), 12, &[], hot).unwrap());
        assert_eq!(members, want_population, "wgpu {adapter}: the members' sampled tokens");
    });
}

/// Sampling is reproducible from its seed, stops at an end-of-sequence id (which it keeps), and
/// a temperature near 0 is greedy.
#[test]
fn sampling_is_reproducible_and_stops_at_end_of_sequence() {
    use eggroll_llm::generate::{generate, Members, Sampling};

    let (root, names) = cases();
    let backend = CpuBackend::new();
    let dir = root.join(&names[0]);
    let expected = oracle(&dir);
    let model = Model::load(&backend, &dir).unwrap();
    let prompts: Vec<Vec<u32>> = expected["prompts"].as_array().unwrap().iter().map(|p| ids(&p["input_ids"])).collect();
    let hot = Sampling { temperature: 1.5, top_p: 0.9, seed: 11 };
    let a = generate(&backend, &model, &prompts, Members::Mean, 16, &[], hot).unwrap();
    let b = generate(&backend, &model, &prompts, Members::Mean, 16, &[], hot).unwrap();
    assert_eq!(a, b, "the same seed samples the same tokens");
    let c = generate(&backend, &model, &prompts, Members::Mean, 16, &[], Sampling { seed: 12, ..hot }).unwrap();
    assert_ne!(a, c, "another seed samples other tokens");
    let cold = generate(&backend, &model, &prompts, Members::Mean, 16, &[], Sampling { temperature: 1e-4, top_p: 1.0, seed: 1 }).unwrap();
    let greedy: Vec<Vec<u32>> = expected["prompts"].as_array().unwrap().iter().map(|p| ids(&p["greedy_ids"])[..16].to_vec()).collect();
    assert_eq!(cold[0].iter().map(|c| c.tokens.clone()).collect::<Vec<_>>(), greedy);
    // Stop at the fifth greedy token of the first prompt: that answer ends there, the others go on.
    let stop = greedy[0][4];
    let stopped = generate(&backend, &model, &prompts, Members::Mean, 16, &[stop], Sampling::GREEDY).unwrap();
    let first = greedy[0].iter().position(|&t| t == stop).unwrap();
    assert_eq!(stopped[0][0].tokens, greedy[0][..=first].to_vec());
    assert_eq!(stopped[0][0].log_probs.len(), first + 1);
}
