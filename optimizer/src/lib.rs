//! The EGGROLL optimiser.
