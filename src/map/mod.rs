//! Maps: the observed-remove map of nested CRDTs, and the shopping cart.

mod cart;
mod or_map;

pub use cart::ShoppingCart;
pub use or_map::OrMap;
