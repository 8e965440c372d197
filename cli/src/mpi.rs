//! `mpirun -np K eggroll train ...` (cargo feature `mpi`): one rank per process. Each rank builds
//! the same run on its own backend ([`eggroll::run::RunSpec`]), evaluates its share of the
//! population (whole antithetic pairs, [`share_pairs`]), an all-gather ([`RankExchange`]) gives
//! every rank the fitness of all N members in member order, and every rank applies the same
//! update: only fitness values travel, and the trajectory does not depend on K (on the CPU backend the parameters are bit-identical
//! to a run without MPI). Rank 0 drives [`drive::run`] (progress bar, metrics, checkpoints, plot,
//! summary); the other ranks only train. A plain launch (no `mpirun`) never initialises MPI.
//!
//! Before training every rank sends every other one its status (its configuration and task
//! settings with their FNV-1a hash, its adapter, or the error it met), so that a population that
//! cannot be shared out, a rank without its device, ranks started with different command lines
//! or on different adapters stop every rank with the same error. During training a watchdog on
//! each rank aborts the job when a collective has not completed within `--mpi-timeout` seconds.
//!
//! With `--backend wgpu` (or `auto` on a machine with a hardware GPU) rank r takes the hardware
//! adapter `local_rank % count` of `eggroll info`'s list, `local_rank` being its place among the
//! ranks of its node; `WGPU_ADAPTER_NAME` overrides that. Every rank must end up on the same kind
//! of adapter, so that they all compute the same update.

use crate::args::{FinetuneArgs, TrainArgs};
use crate::crash::crash_point;
use crate::drive;
use crate::error::{CliError, Result};
use crate::tuning::{Replicas, Setup};
use ::mpi::datatype::PartitionMut;
use ::mpi::environment::Universe;
use ::mpi::topology::{Communicator, SimpleCommunicator};
use ::mpi::traits::*;
use ::mpi::Threading;
use eggroll::checkpoint::fnv1a64;
use eggroll::run::{native_clock_ms, Driver, EpochRecord, Hooks};
use eggroll::session::{Exchange, Training};
use eggroll::shards::share_pairs;
use eggroll::TaskKind;
use eggroll_backend::gpu::{is_hardware, WgpuOptions};
use eggroll_backend::select::{list_adapters, select_backend, BackendChoice, SelectedBackend};
use eggroll_backend::Kernels;
use serde_json::{json, Value};
use std::io::Write;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Whether the process was started by an MPI launcher (`mpirun`, `mpiexec`, `srun`): OpenMPI,
/// PMIx and MPICH's Hydra set these variables in every rank.
pub fn launched() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"].iter().any(|v| std::env::var_os(v).is_some())
}

/// `eggroll train` as one rank of an MPI job. An error every rank knows of (the status exchange)
/// is printed by every rank, which then exits with status 1; an error one rank meets alone during
/// training is printed and aborts the job, since the other ranks would otherwise wait for it in the
/// next collective.
pub fn train(args: &TrainArgs) -> Result<()> {
    as_rank(args.mpi_timeout, |ranks| start(ranks, args))
}

/// `eggroll finetune` as one rank of an MPI job: each rank loads the model and generates for its
/// share of the population, an all-gather gives every rank every member's rewards, and every
/// rank takes the same step; rank 0 evaluates, writes the files and reports. Errors as
/// [`train`]'s.
pub fn finetune(args: &FinetuneArgs) -> Result<()> {
    as_rank(args.mpi_timeout, |ranks| start_finetune(ranks, args))
}

/// Runs `body` as this process's rank, and ends the job the way its failure asks for.
fn as_rank(timeout: u64, body: impl FnOnce(&Ranks) -> std::result::Result<(), Failure>) -> Result<()> {
    let (universe, threading) = ::mpi::initialize_with_threading(Threading::Multiple)
        .ok_or_else(|| CliError::new("cannot initialise MPI: it is initialised already"))?;
    let ranks = Ranks::new(&universe, threading, Duration::from_secs(timeout));
    match body(&ranks) {
        Ok(()) => Ok(()),
        // Printed before MPI_Finalize: once one rank has exited, mpirun may end the others.
        Err(Failure::Agreed(e)) => {
            say(&format!("error: {e}"));
            drop(ranks);
            drop(universe);
            std::process::exit(1)
        }
        Err(Failure::Local(e)) if ranks.size == 1 => Err(e),
        Err(Failure::Local(e)) => {
            say(&format!("error: rank {} of {}: {e}", ranks.rank, ranks.size));
            ranks.abort()
        }
    }
}

/// Prints `line` on stderr in one write, so that mpirun, which merges the ranks' output, does
/// not interleave it with another rank's.
fn say(line: &str) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// Why a rank stops.
enum Failure {
    /// An error of the status exchange: every rank returns the same one.
    Agreed(CliError),
    /// An error this rank met alone, after the exchange.
    Local(CliError),
}

impl<E: Into<CliError>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Local(e.into())
    }
}

/// The world communicator, this rank's place in it, and its watchdog.
struct Ranks {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    /// This rank's place among the ranks of its node.
    local_rank: usize,
    /// Whether MPI lets the watchdog thread call `MPI_Abort`.
    threads: bool,
    watchdog: Arc<Watchdog>,
}

impl Ranks {
    fn new(universe: &Universe, threading: Threading, timeout: Duration) -> Self {
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let local_rank = world.split_shared(rank as i32).rank() as usize;
        let threads = threading == Threading::Multiple;
        let watchdog = Watchdog::start(rank, size, timeout, threads);
        Self { world, rank, size, local_rank, threads, watchdog }
    }

    /// Ends every rank of the job with exit status 1.
    fn abort(&self) -> ! {
        abort_job(self.threads)
    }

    /// The exchange of statuses every rank makes exactly once before training: with this rank's
    /// `status` (or the error it met while preparing), every rank checks that all are ready and
    /// agree. `Err(Failure::Agreed)` on every rank otherwise.
    fn agree(&self, status: std::result::Result<Status, CliError>) -> std::result::Result<(), Failure> {
        let mine = match &status {
            Ok(s) => json!({ "ok": { "run": s.run, "hash": fnv1a64(s.run.to_string().as_bytes()), "adapter": s.adapter } }),
            Err(e) => json!({ "error": e.to_string() }),
        };
        let all = {
            let _armed = self.watchdog.arm("the exchange of the ranks' configurations");
            self.all_gather_bytes(mine.to_string().as_bytes())
        };
        let all: Vec<Value> = all.iter().map(|b| serde_json::from_slice(b).unwrap_or(Value::Null)).collect();
        verdict(&all).map_err(|e| Failure::Agreed(CliError::new(e)))
    }

    /// Every rank's `bytes`, by rank.
    fn all_gather_bytes(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut lengths = vec![0i32; self.size];
        self.world.all_gather_into(&(bytes.len() as i32), &mut lengths[..]);
        let displs = offsets(&lengths);
        let mut all = vec![0u8; lengths.iter().map(|&l| l as usize).sum()];
        self.world.all_gather_varcount_into(bytes, &mut PartitionMut::new(&mut all[..], &lengths[..], &displs[..]));
        lengths.iter().zip(&displs).map(|(&l, &d)| all[d as usize..(d + l) as usize].to_vec()).collect()
    }

    /// The backend `--backend` names, on this rank's adapter.
    fn select_backend(&self, choice: BackendChoice) -> Result<SelectedBackend> {
        let mut opts = WgpuOptions::default();
        let named = std::env::var("WGPU_ADAPTER_NAME").is_ok_and(|n| !n.is_empty());
        if choice != BackendChoice::Cpu && !named {
            let hardware: Vec<usize> = list_adapters().iter().enumerate().filter(|(_, a)| is_hardware(a)).map(|(i, _)| i).collect();
            if !hardware.is_empty() {
                opts.adapter_index = Some(hardware[self.local_rank % hardware.len()]);
            }
        }
        select_backend(choice, &opts).map_err(|e| CliError::new(format!("no device: {e}")))
    }
}

/// What a rank reports in the status exchange.
struct Status {
    /// The task, its configuration and settings, and where training starts: what every rank must
    /// agree on.
    run: Value,
    /// The adapter it trains on.
    adapter: String,
}

impl Status {
    fn of<S: Training>(session: &S, args: &TrainArgs) -> Self {
        let run = json!({ "task": session.name(), "config": session.config(), "settings": session.settings(), "resume": args.resume });
        let adapter = session.adapter();
        Self { run, adapter: format!("{} [{}]", adapter.name, adapter.backend) }
    }
}

/// The displacements of consecutive blocks of `counts` elements.
fn offsets(counts: &[i32]) -> Vec<i32> {
    counts.iter().scan(0, |at, &c| Some(std::mem::replace(at, *at + c))).collect()
}

/// The outcome of the status exchange, the same on every rank: the first error a rank met (as is
/// when every failing rank met the same one), else the first rank whose configuration hash differs
/// from rank 0's (naming the first differing field), else the first rank on another adapter.
fn verdict(all: &[Value]) -> std::result::Result<(), String> {
    let errors: Vec<(usize, &str)> = all.iter().enumerate().filter_map(|(r, s)| s["error"].as_str().map(|e| (r, e))).collect();
    if let Some(&(rank, first)) = errors.first() {
        let same = errors.len() == all.len() && errors.iter().all(|&(_, e)| e == first);
        return Err(if same { first.to_string() } else { format!("rank {rank}: {first}") });
    }
    let ok: Vec<&Value> = all.iter().map(|s| &s["ok"]).collect();
    if let Some((rank, other)) = ok.iter().enumerate().find(|(_, s)| s["hash"] != ok[0]["hash"]) {
        let field = differing_field(&ok[0]["run"], &other["run"]).unwrap_or_default();
        let value = |s: &Value| s["run"].pointer(&format!("/{}", field.replace('.', "/"))).cloned().unwrap_or(Value::Null);
        return Err(format!(
            "rank {rank} was started with another configuration than rank 0 (hash {} against rank 0's {}): {field} is {} there, \
             {} on rank 0; give every rank the same command line",
            other["hash"].as_str().unwrap_or_default(),
            ok[0]["hash"].as_str().unwrap_or_default(),
            value(other),
            value(ok[0]),
        ));
    }
    if let Some((rank, other)) = ok.iter().enumerate().find(|(_, s)| s["adapter"] != ok[0]["adapter"]) {
        return Err(format!(
            "rank {rank} trains on {} but rank 0 on {}: every rank needs the same kind of adapter to compute the same update",
            other["adapter"].as_str().unwrap_or_default(),
            ok[0]["adapter"].as_str().unwrap_or_default(),
        ));
    }
    Ok(())
}

/// The dotted path of the first field where `a` and `b` differ (`config.seed`).
fn differing_field(a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys = x.keys().chain(y.keys().filter(|k| !x.contains_key(*k)));
            keys.filter(|k| x.get(*k) != y.get(*k))
                .map(|k| {
                    let (u, v) = (x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null));
                    differing_field(u, v).map_or_else(|| k.clone(), |inner| format!("{k}.{inner}"))
                })
                .next()
        }
        _ => None,
    }
}

/// Builds this rank's session, exchanges statuses, then trains: rank 0 with [`drive::run`], the
/// others with [`follow`].
fn start(ranks: &Ranks, args: &TrainArgs) -> std::result::Result<(), Failure> {
    // Any error before the exchange is this rank's status in it.
    let refuse = |e: CliError| match ranks.agree(Err(e)) {
        Ok(()) => unreachable!("an exchange with an error agrees on it"),
        Err(f) => f,
    };
    let spec = args.spec().map_err(refuse)?;
    if args.devices.is_some() {
        let why = "--devices shares the population over adapters within one process; under mpirun each rank takes its own adapter";
        return Err(refuse(CliError::new(why)));
    }
    if spec.task == TaskKind::Egg && ranks.size > 1 {
        let why = format!("the integer egg task trains in one process: run it without mpirun or with -np 1, not {}", ranks.size);
        return Err(refuse(CliError::new(why)));
    }
    let config = spec.config(|defaults| args.config.overlay(defaults)).map_err(refuse)?;
    let backend = ranks.select_backend(args.backend()).map_err(refuse)?;
    let session = RankExchange::new(ranks, config.population)
        .and_then(|exchange| {
            let workers = crate::workers::workers(backend, &spec, &config, exchange);
            Ok(spec.build(config, workers)?)
        })
        .map_err(refuse)?;
    ranks.agree(Ok(Status::of(&session, args)))?;
    if ranks.rank == 0 {
        drive::report(&drive::run(session, args, &mut |_| Ok(()))?, args.json);
    } else {
        follow(session, args)?;
    }
    Ok(())
}

/// Loads this rank's replica of the model and its share of the population, exchanges statuses,
/// then fine-tunes ([`Setup::train`], rank 0 leading).
fn start_finetune(ranks: &Ranks, args: &FinetuneArgs) -> std::result::Result<(), Failure> {
    let refuse = |e: CliError| match ranks.agree(Err(e)) {
        Ok(()) => unreachable!("an exchange with an error agrees on it"),
        Err(f) => f,
    };
    if args.devices.is_some() {
        let why = "--devices shares the population over adapters within one process; under mpirun each rank takes its own adapter";
        return Err(refuse(CliError::new(why)));
    }
    let setup = Setup::load(args, None).map_err(refuse)?;
    let backend = ranks.select_backend(args.backend()).map_err(refuse)?;
    let mut exchange = RankExchange::new(ranks, setup.config.population).map_err(refuse)?;
    let share = Exchange::<f32>::members(&exchange, setup.config.population).map_err(|e| refuse(e.into()))?;
    let tuning = setup.replica(backend, share.len()).map_err(refuse)?;
    let adapter = tuning.backend().describe();
    let run = json!({ "task": "finetune", "config": setup.config, "settings": setup.settings, "resume": args.resume });
    ranks.agree(Ok(Status { run, adapter: format!("{} [{}]", adapter.name, adapter.backend) }))?;
    if let Some(summary) = setup.train(args, Replicas::One(Box::new(tuning), &mut exchange), ranks.rank == 0, &mut |_| Ok(()))? {
        crate::tuning::report(args, &summary);
    }
    Ok(())
}

/// What a rank other than 0 does around each epoch: no evaluation (rank 0 evaluates, reports
/// and writes the files; evaluations change no state), the crash hook of the tests.
struct Follower;

impl<S> Hooks<S> for Follower {
    type Error = CliError;
    fn evaluate_after(&mut self, _done: u32, _epochs: u32, _train_ms: f64) -> bool {
        false
    }
    fn after_epoch(&mut self, _session: &S, record: &EpochRecord) -> Result<()> {
        crash_point(record.epoch, "epoch");
        Ok(())
    }
}

/// A rank other than 0: resumes like rank 0 and trains the same epochs, with no output.
fn follow<S: Training>(session: S, args: &TrainArgs) -> Result<()> {
    let mut driver = Driver::new(session, native_clock_ms);
    if let Some(dir) = &args.resume {
        drive::resume(&mut driver, dir)?;
    }
    while !driver.finished(&mut Follower) {
        driver.step(&mut Follower)?;
    }
    Ok(())
}

/// The fitness exchange of one rank: it evaluates its share of the population and gathers the
/// others' before every update.
pub struct RankExchange<'r> {
    ranks: &'r Ranks,
    /// Every rank's count of members and the first one, for the all-gather.
    counts: Vec<i32>,
    displs: Vec<i32>,
    /// Time spent in the all-gathers, and how many epochs it covers.
    gather_ms: f64,
    gathers: u32,
}

impl<'r> RankExchange<'r> {
    /// The exchange of a population of `population` over the ranks.
    fn new(ranks: &'r Ranks, population: usize) -> Result<Self> {
        let shares = share_pairs(population, ranks.size).map_err(|e| CliError::new(format!("{e} (MPI ranks)")))?;
        let counts: Vec<i32> = shares.iter().map(|s| s.len() as i32).collect();
        Ok(Self { displs: offsets(&counts), counts, ranks, gather_ms: 0.0, gathers: 0 })
    }
}

impl<V: Equivalence + Default + Clone> Exchange<V> for RankExchange<'_> {
    /// This rank's share of whole pairs.
    fn members(&self, population: usize) -> eggroll::Result<Range<usize>> {
        Ok(share_pairs(population, self.ranks.size)?.swap_remove(self.ranks.rank))
    }
    /// The all-gather of everyone's fitness in member order, under the watchdog.
    fn all_gather(&mut self, mine: Vec<V>, population: usize, epoch: u32) -> eggroll::Result<Vec<V>> {
        stall_point(epoch + 1);
        let mut all = vec![V::default(); population];
        let t = Instant::now();
        {
            let _armed = self.ranks.watchdog.arm("the exchange of fitness");
            let mut parts = PartitionMut::new(&mut all[..], &self.counts[..], &self.displs[..]);
            self.ranks.world.all_gather_varcount_into(&mine[..], &mut parts);
        }
        self.gather_ms += t.elapsed().as_secs_f64() * 1e3;
        self.gathers += 1;
        Ok(all)
    }
    /// `allgather_ms_per_epoch`: the mean time this rank spent in the exchange of fitness
    /// (waiting for the slowest rank included).
    fn timings(&self) -> Vec<(&'static str, f64)> {
        if self.gathers == 0 {
            return Vec::new();
        }
        vec![("allgather_ms_per_epoch", self.gather_ms / f64::from(self.gathers))]
    }
}

/// Test hook: `EGGROLL_TEST_MPI_STALL=<epoch>` makes this rank hang for good before the exchange
/// of fitness of that epoch, as a rank stuck in a driver would.
fn stall_point(epoch: u32) {
    if std::env::var("EGGROLL_TEST_MPI_STALL").is_ok_and(|e| e == epoch.to_string()) {
        loop {
            std::thread::park();
        }
    }
}

/// Ends every rank of the job with exit status 1: `MPI_Abort` where MPI allows calls from any
/// thread, else this process alone aborts, which makes `mpirun` end the others.
fn abort_job(threads: bool) -> ! {
    if threads {
        // SAFETY: MPI is initialised with MPI_THREAD_MULTIPLE, so any thread may call MPI_Abort.
        unsafe {
            ::mpi::ffi::MPI_Abort(::mpi::ffi::RSMPI_COMM_WORLD, 1);
        }
    }
    std::process::abort()
}

/// A thread that aborts the job when a collective has been under way for longer than `timeout`.
struct Watchdog {
    /// What is under way and since when.
    armed: Mutex<Option<(&'static str, Instant)>>,
    changed: Condvar,
}

/// Disarms the watchdog when dropped.
struct Armed<'w>(&'w Watchdog);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        *self.0.armed.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.0.changed.notify_all();
    }
}

impl Watchdog {
    fn start(rank: usize, size: usize, timeout: Duration, threads: bool) -> Arc<Self> {
        let dog = Arc::new(Self { armed: Mutex::new(None), changed: Condvar::new() });
        let watcher = Arc::clone(&dog);
        std::thread::spawn(move || {
            let mut armed = watcher.armed.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                armed = match *armed {
                    None => watcher.changed.wait(armed).unwrap_or_else(|p| p.into_inner()),
                    Some((what, since)) if since.elapsed() >= timeout => {
                        say(&format!(
                            "error: rank {rank} of {size}: {what} did not complete within {} s (--mpi-timeout): another rank \
                             died or hangs; stopping the job",
                            timeout.as_secs()
                        ));
                        abort_job(threads)
                    }
                    Some((_, since)) => watcher.changed.wait_timeout(armed, timeout - since.elapsed()).unwrap_or_else(|p| p.into_inner()).0,
                };
            }
        });
        dog
    }

    /// Starts the clock on `what` until the guard is dropped.
    fn arm(&self, what: &'static str) -> Armed<'_> {
        *self.armed.lock().unwrap_or_else(|p| p.into_inner()) = Some((what, Instant::now()));
        self.changed.notify_all();
        Armed(self)
    }
}
