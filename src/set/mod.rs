//! Sets: add-wins and remove-wins.

mod or_set;
mod rw_set;
mod store;

pub use or_set::OrSet;
pub use rw_set::RwSet;
pub use store::{ElementDots, Elements, SetStore, SetWire};
