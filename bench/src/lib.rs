//! The EGGROLL benchmark runner.
