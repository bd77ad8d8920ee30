//! Registers: last-writer-wins and multi-value.

mod lww;
mod mv;

pub use lww::LwwRegister;
pub use mv::MvRegister;
