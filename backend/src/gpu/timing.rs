//! Timing of enqueued work for the benchmarks: GPU timestamps when the adapter has them.

use super::WgpuBackend;
use crate::Result;
use std::time::Duration;

impl WgpuBackend {
    /// Whether [`WgpuBackend::time_gpu`] measures with GPU timestamp queries.
    pub fn supports_timestamps(&self) -> bool {
        self.ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Runs `f` (which enqueues work) and returns how long the device took for it: between
    /// timestamps written before and after `f`'s submissions when the adapter supports timestamp
    /// queries, else wall time until the queue drains (native only: on wasm32 without timestamps
    /// this returns [`crate::Error::Limit`]). Never blocks on wasm32.
    pub async fn time_gpu<F: FnOnce(&Self) -> Result<()>>(&self, f: F) -> Result<Duration> {
        if !self.supports_timestamps() {
            return self.wall_time(f).await;
        }
        let ctx = &self.ctx;
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
        ctx.queue.submit([stamp(0).finish()]);
        f(self)?;
        let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps readback"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = stamp(1);
        encoder.resolve_query_set(&queries, 0..2, &resolve, 0);
        encoder.copy_buffer_to_buffer(&resolve, 0, &staging, 0, 16);
        ctx.queue.submit([encoder.finish()]);
        ctx.check_errors()?;
        let bytes = ctx.map_read(&staging).await?;
        let tick = |i: usize| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        let nanos = tick(1).saturating_sub(tick(0)) as f64 * f64::from(ctx.queue.get_timestamp_period());
        Ok(Duration::from_nanos(nanos as u64))
    }

    #[cfg(not(target_arch = "wasm32"))]
    async fn wall_time<F: FnOnce(&Self) -> Result<()>>(&self, f: F) -> Result<Duration> {
        crate::Backend::synchronize(self).await?;
        let start = std::time::Instant::now();
        f(self)?;
        crate::Backend::synchronize(self).await?;
        Ok(start.elapsed())
    }

    #[cfg(target_arch = "wasm32")]
    async fn wall_time<F: FnOnce(&Self) -> Result<()>>(&self, _f: F) -> Result<Duration> {
        Err(crate::Error::Limit("time_gpu needs TIMESTAMP_QUERY on wasm32 (no wall clock there)".into()))
    }
}
