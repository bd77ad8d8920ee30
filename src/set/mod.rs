//! Sets: add-wins and remove-wins.

mod or_set;
mod rw_set;

pub use or_set::OrSet;
pub use rw_set::RwSet;
