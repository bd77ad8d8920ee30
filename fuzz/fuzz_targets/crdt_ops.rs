//! Structured operation histories on 2-5 replicas of every type: the lattice
//! laws, delta/state equivalence, decomposition, summaries and convergence
//! hold on every input.
#![no_main]
libfuzzer_sys::fuzz_target!(|h: accordant_fuzz::AnyHistory| accordant_fuzz::check_any(&h));
