//! A [`Replicator`] as a node of the [simulator](crate::sim).
//!
//! A [`DeltaNode`] holds one replica's state and replicator. Every
//! `interval` (from a first tick at `offset`, by default a seeded random
//! point of the first interval, so nodes do not tick in lock step) it runs
//! one event of its workload, if any is left, then one sync step; messages
//! are handed to [`Replicator::receive`] as they arrive. Errors from peers
//! are counted, never panicked on.
//!
//! ```
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::delta::{Config, Replicator, Strategy};
//! use accordant_sync::sim::{DeltaNode, LinkConfig, ProcessId, RunOutcome, SimTime, Simulator};
//!
//! let mut sim = Simulator::new(1);
//! sim.set_default_link(LinkConfig::lan().with_loss(0.2).with_duplicate(0.1));
//! let config = Config::new(Strategy::Delta { bp: true, rr: true });
//! for i in 0..3u32 {
//!     let state = GCounter::new();
//!     let mut rep = Replicator::new(config, i + 1, &state);
//!     for j in (0..3).filter(|&j| j != i) {
//!         rep.add_neighbour(ProcessId(j));
//!     }
//!     let r = ReplicaId::from_u128(u128::from(i));
//!     let node = DeltaNode::new(state, rep, SimTime::from_millis(100))
//!         .with_workload(10, move |c: &mut GCounter, _n| c.increment(r, 1).unwrap());
//!     sim.add_node(node);
//! }
//! let outcome = sim.run_until(SimTime::from_secs(60), |s| {
//!     s.nodes().all(|(_, n)| n.state().value() == 30)
//! });
//! assert_eq!(outcome, RunOutcome::Condition);
//! ```

use core::convert::Infallible;
use core::fmt;

use super::{Ctx, Process, ProcessId, SimTime};
use crate::delta::{ReplicaState, Replicator};
use crate::error::SyncError;

/// One event of a node's workload: mutates the state (event numbers count
/// from 0) and returns the delta.
pub type Workload<S> = Box<dyn FnMut(&mut S, u64) -> <S as ReplicaState>::Delta>;

/// Timer token of the periodic tick.
const TICK: u64 = 0;

/// A replica in the simulator; see the [module docs](self).
pub struct DeltaNode<S: ReplicaState> {
    state: S,
    replicator: Replicator<S, ProcessId>,
    interval: SimTime,
    offset: Option<SimTime>,
    workload: Option<Workload<S>>,
    events: u64,
    max_events: u64,
    errors: u64,
    last_error: Option<SyncError>,
}

impl<S: ReplicaState> fmt::Debug for DeltaNode<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeltaNode")
            .field("replicator", &self.replicator)
            .field("events", &self.events)
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl<S: ReplicaState> DeltaNode<S> {
    /// A node holding `state`, replicated by `replicator` (whose neighbours
    /// are node ids), ticking every `interval`.
    pub fn new(state: S, replicator: Replicator<S, ProcessId>, interval: SimTime) -> Self {
        DeltaNode {
            state,
            replicator,
            interval: interval.max(SimTime::from_micros(1)),
            offset: None,
            workload: None,
            events: 0,
            max_events: 0,
            errors: 0,
            last_error: None,
        }
    }

    /// Sets the time of the first tick after start (by default a random
    /// point of the first interval, drawn from the simulator's node RNG).
    pub fn with_offset(mut self, offset: SimTime) -> Self {
        self.offset = Some(offset);
        self
    }

    /// Runs `events` events of `workload`, one per tick before its sync
    /// step.
    pub fn with_workload(
        mut self,
        events: u64,
        workload: impl FnMut(&mut S, u64) -> S::Delta + 'static,
    ) -> Self {
        self.workload = Some(Box::new(workload));
        self.max_events = events;
        self
    }

    /// The replica's state.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The state, mutably. Changes made here bypass the replicator and are
    /// not replicated by deltas; use [`DeltaNode::update`] for writes.
    pub fn state_mut(&mut self) -> &mut S {
        &mut self.state
    }

    /// The replicator.
    pub fn replicator(&self) -> &Replicator<S, ProcessId> {
        &self.replicator
    }

    /// The replicator, mutably (to add or remove neighbours).
    pub fn replicator_mut(&mut self) -> &mut Replicator<S, ProcessId> {
        &mut self.replicator
    }

    /// A local write: applies a delta mutator through the replicator.
    pub fn update<E>(&mut self, f: impl FnOnce(&mut S) -> Result<S::Delta, E>) -> Result<(), E> {
        self.replicator.update(&mut self.state, f)
    }

    /// Workload events run so far.
    pub fn events_done(&self) -> u64 {
        self.events
    }

    /// Whether every workload event has run.
    pub fn workload_done(&self) -> bool {
        self.events >= self.max_events
    }

    /// Messages from peers that failed.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// The last such failure.
    pub fn last_error(&self) -> Option<&SyncError> {
        self.last_error.as_ref()
    }

    /// Simulates a crash and restart: the state becomes `state` (a snapshot,
    /// say) and the replicator a fresh one with a new `incarnation` (same
    /// settings and neighbours); buffer and acks are lost.
    pub fn restart(&mut self, state: S, incarnation: u32) {
        self.replicator = self.replicator.restarted(incarnation, &state);
        self.state = state;
    }

    fn flush(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(t) = self.replicator.poll_transmit() {
            ctx.send(t.to, t.bytes);
        }
    }
}

impl<S: ReplicaState> Process for DeltaNode<S> {
    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        let offset = match self.offset {
            Some(t) => t,
            None => SimTime(ctx.random_below(self.interval.0)),
        };
        ctx.set_timer(offset, TICK);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, from: ProcessId, msg: Vec<u8>) {
        if let Err(e) = self.replicator.receive(&mut self.state, from, &msg) {
            self.errors += 1;
            self.last_error = Some(e);
        }
        self.flush(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
        if token != TICK {
            return;
        }
        if self.events < self.max_events {
            if let Some(w) = self.workload.as_mut() {
                let n = self.events;
                let _ = self
                    .replicator
                    .update(&mut self.state, |s| Ok::<_, Infallible>(w(s, n)));
                self.events += 1;
            }
        }
        self.replicator.sync_step(&self.state);
        self.flush(ctx);
        ctx.set_timer(self.interval, TICK);
    }
}
