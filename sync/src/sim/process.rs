//! What runs in the simulator: processes, their ids, and the context a
//! handler acts through.

use core::fmt;

use super::network::{chance, Net};
use super::time::SimTime;

/// The identity of a simulated node: its index in order of
/// [`Simulator::add_node`](super::Simulator::add_node), from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProcessId(pub u32);

impl ProcessId {
    pub(super) fn index(self) -> usize {
        // u32 always fits in usize on the targets this crate supports.
        self.0 as usize
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// Protocol code driven by the simulator.
///
/// Handlers run one at a time, at the virtual time of their event, and act
/// only through the [`Ctx`] they are given.
pub trait Process {
    /// Called once, at the time the node was added (before any message).
    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx;
    }

    /// A message from `from` arrived.
    fn on_message(&mut self, ctx: &mut Ctx<'_>, from: ProcessId, msg: Vec<u8>);

    /// A timer this node set with `token` fired.
    fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
        let _ = (ctx, token);
    }
}

impl<N: Process + ?Sized> Process for Box<N> {
    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        (**self).on_start(ctx);
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_>, from: ProcessId, msg: Vec<u8>) {
        (**self).on_message(ctx, from, msg);
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
        (**self).on_timer(ctx, token);
    }
}

/// What a node may do while handling an event.
pub struct Ctx<'a> {
    pub(super) id: ProcessId,
    pub(super) net: &'a mut Net,
}

impl Ctx<'_> {
    /// The current virtual time (the time of the event being handled).
    pub fn now(&self) -> SimTime {
        self.net.now
    }

    /// This node's id.
    pub fn id(&self) -> ProcessId {
        self.id
    }

    /// How many nodes exist; their ids are `0..node_count()`.
    pub fn node_count(&self) -> u32 {
        self.net.node_count
    }

    /// Every other node, in id order.
    pub fn peers(&self) -> Peers {
        Peers {
            next: 0,
            end: self.net.node_count,
            skip: Some(self.id.0),
        }
    }

    /// Sends `msg` to `to` over the link `(self.id(), to)`.
    pub fn send(&mut self, to: ProcessId, msg: Vec<u8>) {
        self.net.send(self.id, to, msg);
    }

    /// Calls [`Process::on_timer`] with `token` after `after` (zero means "at
    /// this instant, after the events already due").
    pub fn set_timer(&mut self, after: SimTime, token: u64) {
        self.net.set_timer(self.id, after, token);
    }

    /// A deterministic random 64-bit value for the processes' own choices
    /// (peer selection, jitter, seeds of their state machines). It comes
    /// from a different stream than the one that draws network faults, so
    /// changing a link's loss rate does not change the processes' draws.
    pub fn random_u64(&mut self) -> u64 {
        self.net.node_rng.next_u64()
    }

    /// A uniform value in `0..n` from the processes' stream (`0` if `n` is
    /// 0).
    pub fn random_below(&mut self, n: u64) -> u64 {
        self.net.node_rng.below(n)
    }

    /// `true` with probability `p` from the processes' stream.
    pub fn random_chance(&mut self, p: f64) -> bool {
        chance(&mut self.net.node_rng, p)
    }
}

impl fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("id", &self.id)
            .field("now", &self.net.now)
            .finish_non_exhaustive()
    }
}

/// Iterator over node ids, skipping at most one; see [`Ctx::peers`].
#[derive(Clone, Debug)]
pub struct Peers {
    pub(super) next: u32,
    pub(super) end: u32,
    pub(super) skip: Option<u32>,
}

impl Iterator for Peers {
    type Item = ProcessId;

    fn next(&mut self) -> Option<ProcessId> {
        while self.next < self.end {
            let id = self.next;
            self.next += 1;
            if Some(id) != self.skip {
                return Some(ProcessId(id));
            }
        }
        None
    }
}
