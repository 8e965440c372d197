//! The trainer's forward over a range of members on the CPU backend: the two halves of the
//! population, each evaluated on its own, give bit for bit the rows of the whole population's
//! forward (outputs and log-likelihoods), for an Mlp and for the charlm model, before and after
//! an update; ranges that are not whole pairs within the population are refused.

use eggroll::config::EsConfig;
use eggroll::tasks::{CharLm, CharLmOptions, Task};
use eggroll::{EggrollError, FloatTrainer, Mlp, Model};
use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::{Activation, InputLayout};

/// `len` values from a fixed sequence in roughly [-1, 1].
fn values(len: usize, salt: usize) -> Vec<f32> {
    (0..len).map(|i| (((i * 37 + salt * 11) % 23) as f32 - 11.0) / 11.0).collect()
}

/// The member-major rows of `members` in `data` (`width` values per row, `rows` rows per member).
fn rows_of(data: &[f32], members: std::ops::Range<usize>, rows: usize, width: usize) -> Vec<f32> {
    data[members.start * rows * width..members.end * rows * width].to_vec()
}

/// The forward of `0..N/2` and `N/2..N` (each pair whole: N/2 even) concatenated equals the
/// whole forward, for the outputs and, with `targets`, the log-likelihoods.
fn halves_equal_the_whole<M: Model>(es: &mut FloatTrainer<CpuBackend, M>, x: &[f32], layout: InputLayout, rows: usize, targets: &[u32]) {
    let (n, inputs, outputs) = (es.config().population, es.model().registry().inputs(), es.model().registry().outputs());
    let input = |members: std::ops::Range<usize>| match layout {
        InputLayout::Shared => x.to_vec(),
        InputLayout::PerMember => rows_of(x, members, rows, inputs),
    };
    let whole = es.population_forward(x, layout, rows).unwrap();
    let ll = es.population_log_likelihood(x, layout, rows, targets).unwrap();
    let (mut parts, mut ll_parts) = (Vec::new(), Vec::new());
    for members in [0..n / 2, n / 2..n] {
        let t = &targets[members.start * rows..members.end * rows];
        parts.extend(es.population_forward_members(members.clone(), &input(members.clone()), layout, rows).unwrap());
        ll_parts.extend(es.population_log_likelihood_members(members.clone(), &input(members), layout, rows, t).unwrap());
    }
    assert_eq!(parts.len(), n * rows * outputs);
    assert_eq!(parts, whole, "outputs of the two halves, {layout:?} input, epoch {}", es.epoch());
    assert_eq!(ll_parts, ll, "log-likelihoods of the two halves, {layout:?} input, epoch {}", es.epoch());
    // A slice in the middle, one pair, too.
    let mid = n / 2 - 2..n / 2;
    let got = es.population_forward_members(mid.clone(), &input(mid.clone()), layout, rows).unwrap();
    assert_eq!(got, rows_of(&whole, mid, rows, outputs), "members {}..{}", n / 2 - 2, n / 2);
}

/// Targets for `len` rows among `classes`.
fn targets(len: usize, classes: usize) -> Vec<u32> {
    (0..len).map(|i| ((i * 7 + 3) % classes) as u32).collect()
}

#[test]
fn halves_of_an_mlp_population_equal_the_whole() {
    let model = Mlp::builder(5).linear(7).pqn().linear(6).activation(Activation::Tanh).linear_with(3, false).build().unwrap();
    let cfg = EsConfig { population: 12, rank: 2, sigma: 0.3, seed: 5, ..EsConfig::default() };
    let mut es = FloatTrainer::new(CpuBackend::new(), model, cfg).unwrap();
    let rows = 3;
    for epoch in 0..2 {
        let shared = values(rows * 5, epoch);
        halves_equal_the_whole(&mut es, &shared, InputLayout::Shared, rows, &targets(12 * rows, 3));
        let each = values(12 * rows * 5, epoch + 1);
        halves_equal_the_whole(&mut es, &each, InputLayout::PerMember, rows, &targets(12 * rows, 3));
        es.tell(&values(12, epoch + 2)).unwrap();
    }
}

#[test]
fn halves_of_a_charlm_population_equal_the_whole() {
    let options = CharLmOptions { width: 8, depth: 1, window: 6, ..CharLm::default_options() };
    let task = CharLm::new(3, &options).unwrap();
    let cfg = EsConfig { population: 8, rank: 2, sigma: 0.05, seed: 9, group_size: 0, ..task.default_config() };
    let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), cfg).unwrap();
    let window = options.window;
    for epoch in 0..2 {
        // Two windows per member, each row one byte.
        let rows = 2 * window;
        let bytes: Vec<f32> = (0..8 * rows).map(|i| ((i * 53 + epoch * 7) % 256) as f32).collect();
        halves_equal_the_whole(&mut es, &bytes, InputLayout::PerMember, rows, &targets(8 * rows, 256));
        es.tell(&values(8, epoch)).unwrap();
    }
}

#[test]
fn member_ranges_must_be_whole_pairs_within_the_population() {
    let model = Mlp::builder(2).linear(3).relu().linear(1).build().unwrap();
    let cfg = EsConfig { population: 8, ..EsConfig::default() };
    let mut es = FloatTrainer::new(CpuBackend::new(), model, cfg).unwrap();
    let x = [0.5, -1.0];
    for bad in [1..4, 2..5, 4..4, 6..10, 8..10] {
        let err = es.population_forward_members(bad.clone(), &x, InputLayout::Shared, 1).unwrap_err();
        assert!(
            matches!(err, EggrollError::Data(_)) && err.to_string().contains(&format!("members {}..{}", bad.start, bad.end)),
            "{bad:?}: {err}"
        );
        let err = es.population_log_likelihood_members(bad.clone(), &x, InputLayout::Shared, 1, &[0; 8]).unwrap_err();
        assert!(matches!(err, EggrollError::Data(_)), "{bad:?}: {err}");
    }
    // The per-member input holds only the range's members' rows.
    let err = es.population_forward_members(2..4, &[0.0; 16], InputLayout::PerMember, 1).unwrap_err();
    assert!(matches!(err, EggrollError::Data(_)), "{err}");
    assert_eq!(es.population_forward_members(2..4, &[0.0; 4], InputLayout::PerMember, 1).unwrap().len(), 2);
}
