//! Timing of enqueued work (the autotuner's and the benchmarks'): GPU timestamps when the adapter
//! has them, else wall time until the queue drains.

use super::context::Context;
use crate::{Error, Result};
use std::time::Duration;

/// Whether [`time`] measures with GPU timestamp queries.
pub(crate) fn has_timestamps(ctx: &Context) -> bool {
    ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY)
}

/// Runs `f` (which enqueues work) and returns how long the device took for it: between
/// timestamps written before and after `f`'s submissions when the adapter supports timestamp
/// queries, else wall time until the queue drains (native only: on wasm32 without timestamps
/// this returns [`Error::Unsupported`]). Never blocks on wasm32.
pub(crate) async fn time<F: FnOnce() -> Result<()>>(ctx: &Context, f: F) -> Result<Duration> {
    if !has_timestamps(ctx) {
        return wall_time(ctx, f).await;
    }
    let queries =
        ctx.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("time_gpu"), ty: wgpu::QueryType::Timestamp, count: 2 });
    let stamp = |index: u32| {
        let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("timestamp") });
        let writes = wgpu::ComputePassTimestampWrites {
            query_set: &queries,
            beginning_of_pass_write_index: (index == 0).then_some(0),
            end_of_pass_write_index: (index == 1).then_some(1),
        };
        drop(encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("timestamp"), timestamp_writes: Some(writes) }));
        encoder
    };
    ctx.submit(stamp(0));
    f()?;
    let resolve = ctx.create_buffer("timestamps", 16, wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
    let staging = ctx.create_buffer("timestamps readback", 16, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
    let mut encoder = stamp(1);
    encoder.resolve_query_set(&queries, 0..2, &resolve, 0);
    encoder.copy_buffer_to_buffer(&resolve, 0, &staging, 0, 16);
    ctx.submit(encoder);
    ctx.check_errors()?;
    let bytes = ctx.map_read(&staging).await?;
    let tick = |i: usize| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    let nanos = tick(1).saturating_sub(tick(0)) as f64 * f64::from(ctx.queue.get_timestamp_period());
    Ok(Duration::from_nanos(nanos as u64))
}

/// Waits until all submitted work has run.
pub(crate) async fn drain(ctx: &Context) -> Result<()> {
    ctx.flush()?;
    let (tx, rx) = futures_channel::oneshot::channel();
    ctx.queue.on_submitted_work_done(move || {
        let _ = tx.send(());
    });
    ctx.poll()?;
    rx.await.map_err(|_| Error::Device("the device was lost before the queue drained".into()))?;
    ctx.check_errors()
}

#[cfg(not(target_arch = "wasm32"))]
async fn wall_time<F: FnOnce() -> Result<()>>(ctx: &Context, f: F) -> Result<Duration> {
    drain(ctx).await?;
    let start = std::time::Instant::now();
    f()?;
    drain(ctx).await?;
    Ok(start.elapsed())
}

#[cfg(target_arch = "wasm32")]
async fn wall_time<F: FnOnce() -> Result<()>>(_ctx: &Context, _f: F) -> Result<Duration> {
    Err(Error::Unsupported("time_gpu needs TIMESTAMP_QUERY on wasm32 (no wall clock there)".into()))
}
