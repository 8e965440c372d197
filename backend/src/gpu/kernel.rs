//! What a WGSL kernel is to the backend: one typed unit that declares together its module and
//! entry point, its uniform parameter struct and its named storage bindings ([`Kernel`]), and the
//! dispatch that can only be built from matching parts ([`Dispatch::new`]).
//!
//! The kernels themselves are declared with `kernel!` in [`super::kernels`] (the f32 ones) and
//! [`super::int8_kernels`] (the integer ones); `backend/tests/kernels.rs` checks every
//! declaration against the WGSL that naga parses: the entry point exists, binding 0 holds the
//! declared parameter struct, and the named bindings are exactly the storage buffers the entry
//! point uses, with the names and numbers its WGSL gives them.

use super::config::GemmConfig;
use super::params::{Uniform, UniformBlock};
use crate::DType;

/// How the integer modules compute their packed int8 helpers `dot4i8(a, b)` (the dot product of
/// two words of four int8), `unpack_i8(w)` and `pack_i8(v)` (lane j = byte j).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntDot {
    /// WGSL's `dot4I8Packed`, `unpack4xI8` and `pack4xI8` (the `packed_4x8_integer_dot_product`
    /// language feature).
    Native,
    /// The same functions from core WGSL bit operations (`extractBits`, shifts and masks), for
    /// implementations without that language feature.
    Fallback,
}

/// Binding numbers of a kernel's bind group: 0 the uniform block, 1.. the storage buffers (6 the
/// noise cache entry of a cached variant).
pub(crate) const BINDINGS: usize = 7;

/// The storage buffers of one dispatch, by binding number.
#[derive(Clone, Copy)]
pub struct Storage<'a>(pub(crate) [Option<&'a wgpu::Buffer>; BINDINGS]);

impl<'a> Storage<'a> {
    /// The buffers at the given bindings (1 ..= 6).
    pub(crate) fn of<const N: usize>(buffers: [(u32, &'a wgpu::Buffer); N]) -> Self {
        let mut slots = [None; BINDINGS];
        for (binding, buffer) in buffers {
            slots[binding as usize] = Some(buffer);
        }
        Self(slots)
    }

    /// The bound buffers with their binding numbers.
    pub(crate) fn bound(&self) -> impl Iterator<Item = (u32, &'a wgpu::Buffer)> + '_ {
        self.0.iter().enumerate().filter_map(|(i, b)| b.map(|b| (i as u32, b)))
    }
}

/// The storage buffers of one kernel, by the names its WGSL gives them.
pub trait Bindings<'a> {
    /// The names and binding numbers, in binding order.
    const NAMES: &'static [(&'static str, u32)];
    /// The buffers at their binding numbers.
    fn storage(&self) -> Storage<'a>;
}

/// The storage types of a forward's input X and weights W that a module variant is compiled for
/// (outputs are f32): both f32, both f16, or f32 inputs with f16 or bf16 weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operands {
    /// The input X: f32 or f16.
    pub x: DType,
    /// The weights W: f32, f16 or bf16.
    pub w: DType,
}

impl Operands {
    /// Both f32: every module as written.
    pub const F32: Operands = Operands::same(DType::F32);

    /// Every pair a forward takes, in the order the modules of each are listed.
    pub const FORWARDS: [Operands; 4] =
        [Operands::F32, Operands::same(DType::F16), Operands { x: DType::F32, w: DType::F16 }, Operands { x: DType::F32, w: DType::Bf16 }];

    /// X and W both stored as `dtype`.
    pub const fn same(dtype: DType) -> Self {
        Self { x: dtype, w: dtype }
    }

    /// The suffix of a module compiled for them: none for f32, `-f16` for f16 inputs and weights,
    /// `-wf16` or `-wbf16` for f32 inputs with 16-bit weights.
    pub fn suffix(self) -> String {
        match (self.x, self.w) {
            (DType::F32, DType::F32) => String::new(),
            (x, w) if x == w => format!("-{x}"),
            (DType::F32, w) => format!("-w{w}"),
            (x, w) => format!("-x{x}-w{w}"),
        }
    }
}

/// How a kernel's module is compiled: as written, for the storage types of its inputs and
/// weights, for a path of the packed int8 helpers, as one GEMM configuration, or as the variant
/// of a cacheable module that reads its draws from a noise cache entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The module as written (its inputs and weights f32).
    Plain,
    /// Inputs and weights stored as these types.
    Stored(Operands),
    /// An integer module on this path of the packed int8 helpers.
    Int(IntDot),
    /// matmul.wgsl with this configuration, inputs and weights stored as these types.
    Gemm(GemmConfig, Operands),
    /// A cacheable float module reading its draws from a noise cache entry, inputs and weights
    /// stored as these types.
    Cached(Operands),
    /// A cacheable integer module reading its draws from a noise cache entry, on this path of
    /// the packed int8 helpers.
    IntCached(IntDot),
}

/// The variant of a cacheable float module that reads its draws from a noise cache entry
/// (binding 6 `cached`) instead of drawing them, its inputs stored as the type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cached(pub DType);

impl Cached {
    /// The cached variant with f32 inputs (the kernels that read f32 only).
    pub const F32: Cached = Cached(DType::F32);
}

/// The variant of a cacheable integer module that reads its draws from a noise cache entry
/// (binding 6 `cached`), on this path of the packed int8 helpers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IntCached(pub IntDot);

/// A module whose inputs (and weights, where it reads any) are stored as the type.
impl From<DType> for Variant {
    fn from(dtype: DType) -> Self {
        Variant::Stored(Operands::same(dtype))
    }
}

impl From<Operands> for Variant {
    fn from(operands: Operands) -> Self {
        Variant::Stored(operands)
    }
}

impl From<IntDot> for Variant {
    fn from(dot: IntDot) -> Self {
        Variant::Int(dot)
    }
}

impl From<Cached> for Variant {
    fn from(c: Cached) -> Self {
        Variant::Cached(Operands::same(c.0))
    }
}

impl From<IntCached> for Variant {
    fn from(c: IntCached) -> Self {
        Variant::IntCached(c.0)
    }
}

/// Which pipeline a dispatch runs: a module, an entry point of it, the module's variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelKey {
    /// The WGSL file of `shaders/` without its extension.
    pub module: &'static str,
    /// The entry point.
    pub entry: &'static str,
    /// How the module is compiled.
    pub variant: Variant,
}

/// A compute entry point with its uniform parameter struct (binding 0) and its named storage
/// buffers. A [`Dispatch`] takes exactly these types, so a wrong parameter struct or a binding
/// the kernel does not have does not compile.
pub trait Kernel: Copy {
    /// The uniform parameter struct at binding 0.
    type Params: Uniform;
    /// The storage buffers, by name.
    type Buffers<'a>: Bindings<'a>;
    /// The pipeline it runs.
    fn key(self) -> KernelKey;
}

/// One compute dispatch: a kernel, its parameters, its storage buffers, its grid.
pub struct Dispatch<'a> {
    pub(crate) kernel: KernelKey,
    pub(crate) params: UniformBlock,
    pub(crate) storage: Storage<'a>,
    pub(crate) groups: [u32; 3],
}

impl<'a> Dispatch<'a> {
    /// A dispatch of `kernel` over `groups` workgroups, with its own parameter struct and
    /// buffers: any other type does not compile. Here `add_bias` (elementwise.wgsl) gets the
    /// output `dst` and the bias `src`:
    ///
    /// ```
    /// use eggroll_backend::gpu::kernel::Dispatch;
    /// use eggroll_backend::gpu::kernels::{AddBias, AddBiasBuffers};
    /// use eggroll_backend::gpu::params::ElementParams;
    /// use eggroll_backend::gpu::wgpu::Buffer;
    ///
    /// fn add_bias<'a>(y: &'a Buffer, bias: &'a Buffer, params: &ElementParams) -> Dispatch<'a> {
    ///     Dispatch::new(AddBias, params, AddBiasBuffers { dst: y, src: bias }, [1, 1, 1])
    /// }
    /// ```
    ///
    /// The parameters of another kernel are refused at compile time:
    ///
    /// ```compile_fail
    /// use eggroll_backend::gpu::kernel::Dispatch;
    /// use eggroll_backend::gpu::kernels::{AddBias, AddBiasBuffers};
    /// use eggroll_backend::gpu::params::NormParams;
    /// use eggroll_backend::gpu::wgpu::Buffer;
    ///
    /// fn add_bias<'a>(y: &'a Buffer, bias: &'a Buffer, params: &NormParams) -> Dispatch<'a> {
    ///     Dispatch::new(AddBias, params, AddBiasBuffers { dst: y, src: bias }, [1, 1, 1])
    /// }
    /// ```
    ///
    /// and so is a binding the kernel does not have:
    ///
    /// ```compile_fail
    /// use eggroll_backend::gpu::kernel::Dispatch;
    /// use eggroll_backend::gpu::kernels::{AddBias, AddBiasBuffers};
    /// use eggroll_backend::gpu::params::ElementParams;
    /// use eggroll_backend::gpu::wgpu::Buffer;
    ///
    /// fn add_bias<'a>(y: &'a Buffer, bias: &'a Buffer, params: &ElementParams) -> Dispatch<'a> {
    ///     Dispatch::new(AddBias, params, AddBiasBuffers { dst: y, m: bias }, [1, 1, 1])
    /// }
    /// ```
    pub fn new<K: Kernel>(kernel: K, params: &K::Params, buffers: K::Buffers<'a>, groups: [u32; 3]) -> Self {
        Self { kernel: kernel.key(), params: UniformBlock::of(params), storage: buffers.storage(), groups }
    }
}

/// Declares kernels: for each, a unit struct (with the variant its module is compiled for, if
/// any), the struct of its named storage buffers, and its [`Kernel`] implementation.
///
/// ```text
/// kernel! {
///     /// `add_bias` of elementwise.wgsl: `dst += src` on every row.
///     AddBias => "elementwise"::"add_bias" (ElementParams) AddBiasBuffers { dst: 1, src: 2 }
/// }
/// ```
macro_rules! kernel {
    ($(
        $(#[$doc:meta])*
        $name:ident $(($variant:ident))? => $module:literal :: $entry:literal ($params:ty)
            $buffers:ident { $($binding:ident : $slot:literal),* $(,)? }
    )*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name $((pub $variant))?;

        #[doc = concat!("The storage buffers of [`", stringify!($name), "`], named as its WGSL names them.")]
        #[derive(Clone, Copy)]
        pub struct $buffers<'a> {
            $(
                #[doc = concat!("Binding ", stringify!($slot), ".")]
                pub $binding: &'a wgpu::Buffer,
            )*
        }

        impl<'a> $crate::gpu::kernel::Bindings<'a> for $buffers<'a> {
            const NAMES: &'static [(&'static str, u32)] = &[$((stringify!($binding), $slot)),*];
            fn storage(&self) -> $crate::gpu::kernel::Storage<'a> {
                $crate::gpu::kernel::Storage::of([$(($slot, self.$binding)),*])
            }
        }

        impl $crate::gpu::kernel::Kernel for $name {
            type Params = $params;
            type Buffers<'a> = $buffers<'a>;
            fn key(self) -> $crate::gpu::kernel::KernelKey {
                $crate::gpu::kernel::KernelKey {
                    module: $module,
                    entry: $entry,
                    variant: kernel!(@variant self $($variant)?),
                }
            }
        }
    )*

        /// Every kernel declared here, as the checks against the WGSL see them: module, entry
        /// point, WGSL name of the parameter struct, named bindings.
        pub fn declared() -> Vec<$crate::gpu::kernel::Declared> {
            vec![$($crate::gpu::kernel::Declared {
                module: $module,
                entry: $entry,
                params: <$params as $crate::gpu::params::Uniform>::WGSL_STRUCT,
                bindings: <$buffers<'static> as $crate::gpu::kernel::Bindings<'static>>::NAMES,
                cached: kernel!(@cached $($variant)?),
            }),*]
        }
    };
    (@variant $self:ident $variant:ty) => { $crate::gpu::kernel::Variant::from($self.0) };
    (@variant $self:ident) => { $crate::gpu::kernel::Variant::Plain };
    (@cached Cached) => { true };
    (@cached IntCached) => { true };
    (@cached $($variant:ident)?) => { false };
}
pub(crate) use kernel;

/// A kernel as declared: what `backend/tests/kernels.rs` checks against its WGSL.
#[derive(Clone, Copy, Debug)]
pub struct Declared {
    /// The WGSL file of `shaders/` without its extension.
    pub module: &'static str,
    /// The entry point.
    pub entry: &'static str,
    /// The WGSL struct at binding 0.
    pub params: &'static str,
    /// The storage buffers' names and binding numbers.
    pub bindings: &'static [(&'static str, u32)],
    /// Whether it runs its module's variant that reads a noise cache entry.
    pub cached: bool,
}
