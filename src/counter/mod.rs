//! Counters: grow-only, positive-negative, the causal counter that lives
//! inside maps, and the bounded counter that never goes below zero.

mod bounded;
pub(crate) mod causal_counter;
mod gcounter;
mod pncounter;
mod rights;

pub use bounded::BoundedCounter;
pub use causal_counter::CausalCounter;
pub use gcounter::GCounter;
pub use pncounter::PNCounter;
pub use rights::RightsPolicy;
