//! What a simulation did: events, per-link and per-process counters.

use std::collections::BTreeMap;

use super::process::ProcessId;
use super::time::SimTime;

/// Why a `run_*` call returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunOutcome {
    /// No event is left: nothing will ever happen again without outside
    /// input.
    Idle,
    /// The deadline was reached with events still pending.
    Deadline,
    /// [`SimConfig::max_events_per_run`](super::SimConfig::max_events_per_run) events were processed.
    EventLimit,
    /// The caller's stop condition became true ([`Simulator::run_until`](super::Simulator::run_until)).
    Condition,
}

/// One processed event, as returned by [`Simulator::step`](super::Simulator::step).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// [`Process::on_start`](super::Process::on_start) ran.
    Started {
        /// Time of the event.
        at: SimTime,
        /// The node.
        node: ProcessId,
    },
    /// A message was delivered to [`Process::on_message`](super::Process::on_message).
    Delivered {
        /// Time of delivery.
        at: SimTime,
        /// When it was sent.
        sent_at: SimTime,
        /// Sender.
        from: ProcessId,
        /// Receiver.
        to: ProcessId,
        /// Length in bytes.
        len: usize,
    },
    /// A timer fired, [`Process::on_timer`](super::Process::on_timer) ran.
    Timer {
        /// Time of the event.
        at: SimTime,
        /// The node.
        node: ProcessId,
        /// The token it set.
        token: u64,
    },
}

impl Event {
    /// The virtual time the event ran at.
    pub fn at(&self) -> SimTime {
        match *self {
            Event::Started { at, .. } | Event::Delivered { at, .. } | Event::Timer { at, .. } => at,
        }
    }
}

/// Message counters for a link, a node or the whole network.
///
/// A duplicated message counts once in `messages_sent`, once in
/// `messages_duplicated` and twice in `messages_delivered` (if both copies
/// arrive).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Messages handed to the network.
    pub messages_sent: u64,
    /// Bytes handed to the network.
    pub bytes_sent: u64,
    /// Messages (including copies) delivered.
    pub messages_delivered: u64,
    /// Bytes (including copies) delivered.
    pub bytes_delivered: u64,
    /// Messages (including copies) dropped, for any reason.
    pub messages_dropped: u64,
    /// Extra copies created by duplication.
    pub messages_duplicated: u64,
}

/// Dropped messages by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Drops {
    /// Lost on the wire ([`LinkConfig::loss`](super::LinkConfig::loss)).
    pub lost: u64,
    /// Across a partition, in flight or new.
    pub partitioned: u64,
    /// On a link cut with [`Simulator::disconnect`](super::Simulator::disconnect), in flight or new.
    pub disconnected: u64,
    /// Over the in-flight cap.
    pub overflow: u64,
    /// From or to a node that does not exist.
    pub unknown_node: u64,
}

/// Traffic of one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessStats {
    /// Messages this node sent, and what became of them.
    pub outgoing: Counters,
    /// Messages sent to this node, and what became of them.
    pub incoming: Counters,
}

/// A snapshot of the simulator's statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Virtual time of the snapshot.
    pub now: SimTime,
    /// Events processed so far.
    pub events: u64,
    /// All traffic.
    pub total: Counters,
    /// Drops by cause (sums to `total.messages_dropped`).
    pub drops: Drops,
    /// Messages in flight now.
    pub in_flight: usize,
    /// Timers that fired.
    pub timers_fired: u64,
    /// Timers not set because [`SimConfig::max_timers`](super::SimConfig::max_timers) were pending.
    pub timers_dropped: u64,
    /// Time of the last delivery, if any.
    pub last_delivery: Option<SimTime>,
    /// Per node, indexed by [`ProcessId`].
    pub nodes: Vec<ProcessStats>,
    /// Per directed link `(from, to)` that carried traffic.
    pub links: BTreeMap<(ProcessId, ProcessId), Counters>,
}
