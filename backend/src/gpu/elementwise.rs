//! The kernels without noise: bias, gain, activations, layer norm and the optimizer steps
//! (elementwise.wgsl, layer_norm.wgsl).

use super::buffer::GpuBuffer;
use super::context::{word, Storage};
use super::params::{ElementParams, NormParams, UniformBlock};
use super::shaders::Kernel;
use super::wgpu_backend::WgpuBackend;
use crate::ops::{Activation, AdamParams};
use crate::Result;

impl ElementParams {
    /// The parameters of an elementwise kernel over `len` values, the rest zero (the bias
    /// corrections one).
    fn over(len: usize) -> Result<Self> {
        Ok(Self { len: word("buffer length", len)?, bc1: 1.0, bc2: 1.0, ..Self::default() })
    }
}

impl WgpuBackend {
    fn elementwise(&self, kernel: Kernel, p: ElementParams, storage: Storage<'_>) -> Result<()> {
        self.dispatch(kernel, p.len as usize, UniformBlock::of(&p), storage)
    }

    /// `y += bias` on every row.
    pub(crate) fn add_bias_kernel(&self, y: &mut GpuBuffer, bias: &GpuBuffer) -> Result<()> {
        let p = ElementParams { cols: word("bias length", bias.len)?, ..ElementParams::over(y.len)? };
        self.elementwise(Kernel::AddBias, p, Storage::of([(1, &y.buffer), (2, &bias.buffer)]))
    }

    /// `y *= 1 + gain` on every row.
    pub(crate) fn gain_kernel(&self, y: &mut GpuBuffer, gain: &GpuBuffer) -> Result<()> {
        let p = ElementParams { cols: word("gain length", gain.len)?, ..ElementParams::over(y.len)? };
        self.elementwise(Kernel::Gain, p, Storage::of([(1, &y.buffer), (2, &gain.buffer)]))
    }

    /// `x = act(x)`.
    pub(crate) fn activation_kernel(&self, x: &mut GpuBuffer, act: Activation) -> Result<()> {
        let mode = match act {
            Activation::Relu => 0,
            Activation::Silu => 1,
            Activation::Tanh => 2,
        };
        let p = ElementParams { mode, ..ElementParams::over(x.len)? };
        self.elementwise(Kernel::Activation, p, Storage::of([(1, &x.buffer)]))
    }

    /// Normalises each row of `cols` values.
    pub(crate) fn layer_norm_kernel(&self, x: &mut GpuBuffer, cols: usize, eps: f32) -> Result<()> {
        let rows = x.len / cols;
        let p = NormParams { rows: word("rows", rows)?, cols: word("columns", cols)?, eps, ..NormParams::default() };
        self.dispatch(Kernel::LayerNorm, rows, UniformBlock::of(&p), Storage::of([(1, &x.buffer)]))
    }

    /// `param += lr grad`.
    pub(crate) fn sgd_step_kernel(&self, param: &mut GpuBuffer, grad: &GpuBuffer, lr: f32) -> Result<()> {
        let p = ElementParams { lr, ..ElementParams::over(param.len)? };
        self.elementwise(Kernel::SgdStep, p, Storage::of([(1, &param.buffer), (2, &grad.buffer)]))
    }

    /// One Adam/AdamW step.
    pub(crate) fn adam_step_kernel(
        &self,
        param: &mut GpuBuffer,
        grad: &GpuBuffer,
        m: &mut GpuBuffer,
        v: &mut GpuBuffer,
        a: AdamParams,
    ) -> Result<()> {
        let p = ElementParams {
            lr: a.lr,
            beta1: a.beta1,
            beta2: a.beta2,
            eps: a.eps,
            weight_decay: a.weight_decay,
            bc1: 1.0 - a.beta1.powi(a.step as i32),
            bc2: 1.0 - a.beta2.powi(a.step as i32),
            ..ElementParams::over(param.len)?
        };
        self.elementwise(Kernel::AdamStep, p, Storage::of([(1, &param.buffer), (2, &grad.buffer), (3, &m.buffer), (4, &v.buffer)]))
    }
}
