//! The workspace's README, whose Rust examples use both crates, compiled
//! and run as doc-tests (this unpublished crate depends on both). The demo
//! itself is the `active-active` binary.

/// The README's examples.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
