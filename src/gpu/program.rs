//! Lists of dispatches built once and recorded into command buffers many times.

use super::context::{Gpu, GpuError};
use super::tensor::{create_staging, read_buffer};

/// One compute dispatch with everything bound, ready to record.
pub struct Dispatch {
    /// Kernel name, used to group timings.
    pub kernel: &'static str,
    pub pipeline: wgpu::ComputePipeline,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
    /// Floating-point operations it performs (a multiply-add counts as two).
    pub flops: f64,
}

/// An ordered list of dispatches, such as one forward and backward pass.
#[derive(Default)]
pub struct Program {
    pub dispatches: Vec<Dispatch>,
}

/// Total GPU time of one kernel over a timed run.
#[derive(Debug, Clone)]
pub struct KernelTiming {
    pub kernel: &'static str,
    pub dispatches: usize,
    pub milliseconds: f64,
    pub flops: f64,
}

impl Dispatch {
    /// Records this dispatch into `pass`.
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

impl From<Dispatch> for Program {
    fn from(dispatch: Dispatch) -> Program {
        Program {
            dispatches: vec![dispatch],
        }
    }
}

impl Program {
    pub fn push(&mut self, dispatch: Dispatch) {
        self.dispatches.push(dispatch);
    }

    pub fn extend(&mut self, other: Program) {
        self.dispatches.extend(other.dispatches);
    }

    /// Floating-point operations of one run of the program.
    pub fn flops(&self) -> f64 {
        self.dispatches.iter().map(|d| d.flops).sum()
    }

    /// Records every dispatch into one compute pass. wgpu orders the dispatches
    /// and inserts the barriers between a write and a later read.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder, label: &str) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(label),
            timestamp_writes: None,
        });
        for dispatch in &self.dispatches {
            dispatch.record(&mut pass);
        }
    }

    /// Runs the program once on its own and submits it.
    pub fn run(&self, gpu: &Gpu, label: &str) {
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        self.record(&mut encoder, label);
        gpu.queue.submit([encoder.finish()]);
    }

    /// Runs the program once with a timestamp before and after every dispatch
    /// and returns the GPU time per kernel, in the order kernels first appear.
    /// Needs `Features::TIMESTAMP_QUERY`.
    pub fn run_timed(&self, gpu: &Gpu) -> Result<Vec<KernelTiming>, GpuError> {
        let count = self.dispatches.len() as u32 * 2;
        let query_set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("per-dispatch timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let bytes = u64::from(count) * 8;
        let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamp resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("timed program"),
            });
        for (index, dispatch) in self.dispatches.iter().enumerate() {
            // One pass per dispatch: pass-level timestamps need no extra feature.
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(dispatch.kernel),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &query_set,
                    beginning_of_pass_write_index: Some(2 * index as u32),
                    end_of_pass_write_index: Some(2 * index as u32 + 1),
                }),
            });
            dispatch.record(&mut pass);
        }
        encoder.resolve_query_set(&query_set, 0..count, &resolve, 0);
        gpu.queue.submit([encoder.finish()]);
        let staging = create_staging(gpu, "timestamp staging", bytes);
        let ticks: Vec<u64> = read_buffer(gpu, &resolve, bytes, Some(&staging))?;
        let period_ns = f64::from(gpu.queue.get_timestamp_period());
        let milliseconds = (0..self.dispatches.len()).map(|index| {
            let elapsed = ticks[2 * index + 1].saturating_sub(ticks[2 * index]);
            elapsed as f64 * period_ns * 1e-6
        });
        Ok(self.per_kernel(milliseconds))
    }

    /// Runs the program once, submitting and waiting for each dispatch on its
    /// own, and returns the host's wall-clock time per kernel. A CPU adapter
    /// executes the work on the host, so there this is the kernel time. Its
    /// timestamp queries are no use because they do not wait for the dispatches
    /// they surround.
    pub fn run_host_timed(&self, gpu: &Gpu) -> Vec<KernelTiming> {
        let mut milliseconds = Vec::with_capacity(self.dispatches.len());
        for dispatch in &self.dispatches {
            let label = Some(dispatch.kernel);
            let start = std::time::Instant::now();
            let mut encoder = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label,
                    timestamp_writes: None,
                });
                dispatch.record(&mut pass);
            }
            gpu.queue.submit([encoder.finish()]);
            gpu.wait_idle();
            milliseconds.push(start.elapsed().as_secs_f64() * 1e3);
        }
        self.per_kernel(milliseconds.into_iter())
    }

    /// Sums per-dispatch times by kernel, in the order kernels first appear.
    fn per_kernel(&self, milliseconds: impl Iterator<Item = f64>) -> Vec<KernelTiming> {
        let mut timings: Vec<KernelTiming> = Vec::new();
        for (dispatch, milliseconds) in self.dispatches.iter().zip(milliseconds) {
            match timings.iter_mut().find(|t| t.kernel == dispatch.kernel) {
                Some(timing) => {
                    timing.dispatches += 1;
                    timing.milliseconds += milliseconds;
                    timing.flops += dispatch.flops;
                }
                None => timings.push(KernelTiming {
                    kernel: dispatch.kernel,
                    dispatches: 1,
                    milliseconds,
                    flops: dispatch.flops,
                }),
            }
        }
        timings
    }
}
