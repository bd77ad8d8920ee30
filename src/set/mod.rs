//! Sets.

mod or_set;
mod store;

pub use or_set::OrSet;
pub use store::{ElementDots, Elements, SetStore, SetWire};
