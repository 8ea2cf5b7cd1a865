//! Helpers shared by lbkit's fuzz targets (`fuzz_targets/`): a frame buffer fenced with
//! sentinel bytes, an independent checksum oracle built on etherparse, and the checks every
//! rewrite target applies to a rewriter's result.
//!
//! Nothing here calls the code under test to judge it: checksums are recomputed by etherparse,
//! one's-complement arithmetic is re-implemented below.

pub mod arena;
pub mod oracle;
pub mod rewrite;
