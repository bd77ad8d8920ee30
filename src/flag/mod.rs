//! Flags: booleans that merge, with enable-wins or disable-wins semantics
//! for concurrent writes (the two flags of AntidoteDB and riak_dt).

mod dw;
mod ew;

pub use dw::DwFlag;
pub use ew::EwFlag;
