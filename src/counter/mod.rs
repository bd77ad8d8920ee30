//! Counters: grow-only, positive-negative, and the causal counter that lives
//! inside maps.

pub(crate) mod causal_counter;
mod gcounter;
mod pncounter;

pub use causal_counter::CausalCounter;
pub use gcounter::GCounter;
pub use pncounter::PNCounter;
