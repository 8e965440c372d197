//! The crash test hook of checkpointing and resumption.

/// Test hook: `EGGROLL_TEST_CRASH=<epoch>:<stage>` aborts the process (as `kill -9` would: no
/// destructors, no buffered output) when the run reaches `stage` of `epoch`. Stages: `epoch`
/// (after the epoch's metrics line), `metrics` (half-way through that line), `checkpoint` (half-way
/// through writing the checkpoint), `rename` (checkpoint in place, `LATEST` not yet updated).
pub fn crash_point(epoch: u32, stage: &str) {
    if let Ok(spec) = std::env::var("EGGROLL_TEST_CRASH") {
        if spec == format!("{epoch}:{stage}") {
            std::process::abort();
        }
    }
}
