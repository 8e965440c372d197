//! `eggroll_wgpu.Eggroll`: the library's f32 trainer of an [`Mlp`] on the backend a name picks,
//! with NumPy arrays in and out and its state saved to and loaded from a folder.

use crate::arrays::{read_floats, to_numpy};
use crate::errors::{backend_to_py, io_error, to_py, value_error};
use crate::json::to_python;
use crate::model::Mlp;
use eggroll::config::Method;
use eggroll::{
    BackendChoice, EsConfig, FloatTrainer, InputLayout, OptimizerKind, Schedule, SelectedBackend, Shaping, TrainerState, WgpuOptions,
};
use eggroll_backend::Kernels;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The most rows (members times rows per member) one backend call of a population forward
/// covers: a larger forward runs in slices of whole pairs, and Ctrl-C is seen between them.
const ROWS_PER_CALL: usize = 1 << 18;

/// The file of a saved trainer that describes it.
const MANIFEST: &str = "eggroll.json";
/// The file of a saved trainer that holds its tensors.
const STATE: &str = "state.safetensors";
/// The `format` field of [`MANIFEST`].
const FORMAT: &str = "eggroll-wgpu python trainer";

/// The model a saved trainer trains.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum ModelDescription {
    /// A multilayer perceptron.
    Mlp(Mlp),
}

/// [`MANIFEST`]: what the tensors of [`STATE`] belong to.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    /// Always [`FORMAT`].
    format: String,
    /// The model.
    model: ModelDescription,
    /// The hyperparameters.
    config: EsConfig,
    /// The backend asked for: "auto", "cpu" or "wgpu".
    backend: String,
    /// The epoch training resumes at.
    epoch: u32,
}

/// EGGROLL evolution strategies on a model: ask for the population's outputs, tell their fitness.
///
/// ``Eggroll(model, population, *, rank=1, sigma=0.1, lr=0.01, optimizer="adam", backend="auto",
/// seed=0, ...)`` initialises the model's parameters from ``seed`` on the backend ``backend``
/// names ("auto": a hardware GPU when there is one, else the CPU; "cpu"; "wgpu"). Each epoch,
/// ``population_forward(x)`` runs every member of the population (antithetic pairs of low-rank
/// perturbations of the mean parameters) and ``tell(fitness)`` updates the mean from the
/// members' fitness, higher being better.
///
/// Arrays may be float32 or float64; results are float32. A wrong shape, dtype or setting raises
/// ``ValueError`` naming it, a device failure ``RuntimeError``.
#[pyclass(module = "eggroll_wgpu")]
pub struct Eggroll {
    /// The library's trainer.
    trainer: FloatTrainer<SelectedBackend>,
    /// The model's description.
    model: Mlp,
    /// The backend asked for.
    backend: String,
}

/// A count argument as a `usize`; a negative one is a `ValueError` naming it.
fn count<T: TryInto<usize> + std::fmt::Display + Copy>(name: &str, value: T) -> PyResult<usize> {
    value.try_into().map_err(|_| value_error(format!("{name} must be >= 0, got {value}")))
}

/// A named setting parsed from its string, a `ValueError` naming it otherwise.
fn setting<T: FromStr<Err = eggroll::EggrollError>>(name: &str, value: &str) -> PyResult<T> {
    value.parse().map_err(|e| value_error(format!("{name}: {e}")))
}

#[pymethods]
impl Eggroll {
    /// Validates the settings, opens the backend and initialises the parameters from ``seed``.
    #[new]
    #[pyo3(signature = (
        model, population, *, rank = 1, sigma = 0.1, lr = 0.01, optimizer = "adam", backend = "auto", seed = 0,
        shaping = "zscore", group_size = 0, noise_reuse = 1, weight_decay = 0.0, beta1 = 0.9, beta2 = 0.999,
        eps = 1e-8, lr_schedule = "constant", sigma_schedule = "constant", epochs = 100, method = "eggroll",
        noise_cache_mb = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        py: Python<'_>, model: Mlp, population: i64, rank: i64, sigma: f32, lr: f32, optimizer: &str, backend: &str, seed: u64,
        shaping: &str, group_size: i64, noise_reuse: i64, weight_decay: f32, beta1: f32, beta2: f32, eps: f32, lr_schedule: &str,
        sigma_schedule: &str, epochs: i64, method: &str, noise_cache_mb: Option<u64>,
    ) -> PyResult<Self> {
        let config = EsConfig {
            population: count("population", population)?,
            rank: count("rank", rank)?,
            sigma,
            lr,
            optimizer: setting::<OptimizerKind>("optimizer", optimizer)?,
            weight_decay,
            beta1,
            beta2,
            eps,
            lr_schedule: setting::<Schedule>("lr_schedule", lr_schedule)?,
            sigma_schedule: setting::<Schedule>("sigma_schedule", sigma_schedule)?,
            epochs: u32::try_from(epochs).map_err(|_| value_error(format!("epochs must be in 0..2^32, got {epochs}")))?,
            seed,
            group_size: count("group_size", group_size)?,
            noise_reuse: u32::try_from(noise_reuse)
                .map_err(|_| value_error(format!("noise_reuse must be in 0..2^32, got {noise_reuse}")))?,
            shaping: setting::<Shaping>("shaping", shaping)?,
            method: setting::<Method>("method", method)?,
            noise_cache_mb,
        };
        Self::open(py, model, config, backend)
    }

    /// The outputs of every member of the population at the current epoch, float32, shaped
    /// ``(population, rows, outputs)``. ``x`` is ``(rows, inputs)``, the same rows for every
    /// member, or ``(population, rows, inputs)``, each member its own rows.
    fn population_forward<'py>(&mut self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let x = read_floats(x, "x")?;
        let (n, inputs, outputs) = (self.trainer.config().population, self.model.inputs(), self.model.outputs());
        let (layout, rows) = match *x.shape.as_slice() {
            [rows, i] if i == inputs => (InputLayout::Shared, rows),
            [m, rows, i] if m == n && i == inputs => (InputLayout::PerMember, rows),
            _ => {
                return Err(value_error(format!(
                    "x must have shape (rows, {inputs}), shared by every member, or ({n}, rows, {inputs}), one per member; got {:?}",
                    x.shape
                )))
            }
        };
        if rows == 0 {
            return Err(value_error("x has no rows"));
        }
        // Whole pairs per call, as many as fit in ROWS_PER_CALL rows.
        let per_call = (ROWS_PER_CALL / rows / 2 * 2).clamp(2, n);
        let mut out = Vec::with_capacity(n * rows * outputs);
        let trainer = &mut self.trainer;
        for start in (0..n).step_by(per_call) {
            let members = start..(start + per_call).min(n);
            let input = match layout {
                InputLayout::PerMember => &x.data[members.start * rows * inputs..members.end * rows * inputs],
                _ => &x.data[..],
            };
            let part = py.detach(|| trainer.population_forward_members(members, input, layout, rows)).map_err(to_py)?;
            out.extend_from_slice(&part);
            py.check_signals()?;
        }
        to_numpy(py, out, &[n, rows, outputs])
    }

    /// The outputs of the mean (unperturbed) parameters, float32, shaped ``(rows, outputs)``;
    /// ``x`` is ``(rows, inputs)``.
    fn forward_mean<'py>(&mut self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let x = read_floats(x, "x")?;
        let (inputs, outputs) = (self.model.inputs(), self.model.outputs());
        let rows = match *x.shape.as_slice() {
            [rows, i] if i == inputs && rows > 0 => rows,
            _ => return Err(value_error(format!("x must have shape (rows, {inputs}) with rows >= 1; got {:?}", x.shape))),
        };
        let trainer = &mut self.trainer;
        let out = py.detach(|| trainer.forward_mean(&x.data, rows)).map_err(to_py)?;
        to_numpy(py, out, &[rows, outputs])
    }

    /// Updates the mean parameters from ``fitness``, shaped ``(population,)``, the raw fitness
    /// of each member (higher is better), shaped as configured, and advances the epoch. Returns
    /// the step's statistics: ``epoch`` (the one the fitness belonged to), ``mean_fitness``,
    /// ``max_fitness``, ``min_fitness``, ``fitness_std``, ``lr`` and ``sigma``.
    fn tell<'py>(&mut self, py: Python<'py>, fitness: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let fitness = read_floats(fitness, "fitness")?;
        let n = self.trainer.config().population;
        if fitness.shape != [n] {
            return Err(value_error(format!("fitness must have shape ({n},), one value per member; got {:?}", fitness.shape)));
        }
        if let Some((member, value)) = fitness.data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(value_error(format!("fitness must be finite: member {member} has {value}")));
        }
        let trainer = &mut self.trainer;
        let stats = py.detach(|| trainer.tell(&fitness.data)).map_err(to_py)?;
        to_python(py, &stats)
    }

    /// The mean parameters, ``{name: float32 array}``: ``layers.<i>.weight`` shaped
    /// ``(outputs, inputs)`` and ``layers.<i>.bias`` shaped ``(outputs,)``.
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let trainer = &self.trainer;
        let values = py.detach(|| trainer.params()).map_err(to_py)?;
        let specs = self.trainer.specs();
        let dict = PyDict::new(py);
        for (spec, data) in values.iter() {
            let shape = eggroll::checkpoint::tensor_shape(&specs, &spec.name).unwrap_or_else(|| vec![data.len()]);
            dict.set_item(&spec.name, to_numpy(py, data.to_vec(), &shape)?)?;
        }
        Ok(dict)
    }

    /// Writes the trainer to the folder ``path`` (created when missing): ``eggroll.json`` (the
    /// model, the settings, the backend asked for and the epoch) and ``state.safetensors`` (the
    /// parameters and optimiser moments). ``Eggroll.load(path)`` resumes exactly where this
    /// trainer is.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let trainer = &self.trainer;
        let state = py.detach(|| trainer.state()).map_err(to_py)?;
        let bytes = state.to_safetensors(&self.trainer.specs()).map_err(to_py)?;
        let manifest = Manifest {
            format: FORMAT.into(),
            model: ModelDescription::Mlp(self.model.clone()),
            config: self.trainer.config().clone(),
            backend: self.backend.clone(),
            epoch: state.epoch,
        };
        let json = serde_json::to_string_pretty(&manifest).map_err(|e| value_error(format!("cannot describe the trainer: {e}")))?;
        std::fs::create_dir_all(&path).map_err(|e| io_error(&path, e))?;
        let (state_file, manifest_file) = (path.join(STATE), path.join(MANIFEST));
        std::fs::write(&state_file, bytes).map_err(|e| io_error(&state_file, e))?;
        std::fs::write(&manifest_file, json + "\n").map_err(|e| io_error(&manifest_file, e))?;
        Ok(())
    }

    /// The trainer saved in the folder ``path`` by ``save``, on the backend it asked for or on
    /// ``backend`` when given. A folder that holds no saved trainer raises ``FileNotFoundError``;
    /// one whose files disagree with each other, ``ValueError``.
    #[staticmethod]
    #[pyo3(signature = (path, backend = None))]
    fn load(py: Python<'_>, path: PathBuf, backend: Option<&str>) -> PyResult<Self> {
        let manifest = read_manifest(&path)?;
        let state_file = path.join(STATE);
        let bytes = std::fs::read(&state_file).map_err(|e| io_error(&state_file, e))?;
        let ModelDescription::Mlp(model) = manifest.model;
        let mut es = Self::open(py, model, manifest.config, backend.unwrap_or(&manifest.backend))?;
        let state = TrainerState::from_safetensors(&bytes, manifest.epoch, &es.trainer.specs())
            .map_err(|e| value_error(format!("{}: {e}", state_file.display())))?;
        let trainer = &mut es.trainer;
        py.detach(|| trainer.restore(&state)).map_err(to_py)?;
        Ok(es)
    }

    /// The epoch the next ``population_forward`` and ``tell`` belong to.
    #[getter]
    fn epoch(&self) -> u32 {
        self.trainer.epoch()
    }

    /// The population size.
    #[getter]
    fn population(&self) -> usize {
        self.trainer.config().population
    }

    /// The model's description.
    #[getter]
    fn model(&self) -> Mlp {
        self.model.clone()
    }

    /// Every setting, as a dict (``population``, ``rank``, ``sigma``, ``lr``, ``optimizer``, ...).
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, self.trainer.config())
    }

    /// The backend in use: "cpu" or "wgpu".
    #[getter]
    fn backend(&self) -> &'static str {
        self.trainer.backend().kind()
    }

    /// The device in use, as a dict like the entries of ``adapters()``.
    #[getter]
    fn device<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &crate::adapters::Entry::of(self.trainer.backend().describe(), None, false))
    }

    /// ``Eggroll(<model>, population=..., epoch=..., backend=...)``.
    fn __repr__(&self) -> String {
        format!(
            "Eggroll({}, population={}, epoch={}, backend={:?})",
            self.model.__repr__(),
            self.population(),
            self.epoch(),
            self.backend()
        )
    }
}

impl Eggroll {
    /// Opens the backend `backend` names and makes the trainer of `model` with `config`.
    fn open(py: Python<'_>, model: Mlp, config: EsConfig, backend: &str) -> PyResult<Self> {
        let mlp = model.build()?;
        config.validate().map_err(to_py)?;
        let choice: BackendChoice = backend.parse().map_err(backend_to_py)?;
        let trainer = py.detach(|| -> eggroll::Result<FloatTrainer<SelectedBackend>> {
            let selected = eggroll::select_backend(choice, &WgpuOptions::default())?;
            FloatTrainer::new(selected, mlp, config)
        });
        Ok(Self { trainer: trainer.map_err(to_py)?, model, backend: choice.to_string() })
    }
}

/// The manifest of the trainer saved in `dir`.
fn read_manifest(dir: &Path) -> PyResult<Manifest> {
    let file = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&file).map_err(|e| io_error(&file, e))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| value_error(format!("{}: {e}", file.display())))?;
    if manifest.format != FORMAT {
        return Err(value_error(format!("{}: format {:?} is not {FORMAT:?}", file.display(), manifest.format)));
    }
    Ok(manifest)
}
