//! The connection's sessions: opening them on the [`SessionHost`], pumping
//! its output onto the socket, and accounting for each one that ends.

use super::*;

impl Conn {
    /// Starts a session on channel `c` if none runs there.
    pub(super) fn start_session(&mut self, c: u16) {
        self.open_session(c, false);
    }

    /// Starts a session on channel `c` that wins over any opening of the
    /// peer's crossing it: on resuming, the peer's openings still in the
    /// socket were sent before it went quiet (it aborted them since, and
    /// its aborts follow them), so they must not take the slot.
    pub(super) fn start_session_first(&mut self, c: u16) {
        self.open_session(c, true);
    }

    pub(super) fn open_session(&mut self, c: u16, first: bool) {
        // A causal channel runs no node session (see `DeltaReplicator::causal`).
        if self.host.has_session(c) || self.env.channels[usize::from(c)].causal() {
            return;
        }
        let session = Arc::clone(&self.env.channels[usize::from(c)]).initiate();
        let now = self.now();
        let opened = if first {
            self.host.initiate_first(now, c, session)
        } else {
            self.host.initiate(now, c, session)
        };
        if opened.is_ok() {
            self.shared().counters.sessions_initiated.add(1);
            self.metrics.session_started(true);
            debug!(peer = %self.peer, channel = %self.channel_name(c), "session started");
        }
    }

    /// Sends what the host queued and acts on its events (retries start
    /// new sessions, whose messages go out in the same call).
    pub(super) async fn pump(&mut self) -> Result<(), NetError> {
        loop {
            let mut frames = Vec::new();
            while let Some(t) = self.host.poll_transmit() {
                frames.push(
                    Frame::Session {
                        channel: t.to,
                        envelope: Bytes::from(t.bytes),
                    }
                    .to_wire(),
                );
            }
            let mut retries = Vec::new();
            while let Some(e) = self.host.poll_event() {
                match e {
                    HostEvent::Accepted { peer: c, .. } => {
                        self.shared().counters.sessions_responded.add(1);
                        self.metrics.session_started(false);
                        debug!(peer = %self.peer, channel = %self.channel_name(c), "session accepted");
                    }
                    HostEvent::Ended(end) => self.on_ended(end),
                    HostEvent::RetryDue { peer: c } => retries.push(c),
                    HostEvent::Refused { peer: c } => {
                        debug!(peer = %self.peer, channel = %self.channel_name(c), "session refused");
                    }
                }
            }
            let idle = frames.is_empty() && retries.is_empty();
            for f in frames {
                self.shared()
                    .counters
                    .session_bytes_sent
                    .add(f.len() as u64);
                self.metrics.sent(Kind::Session, f.len());
                self.send(f).await?;
            }
            for c in retries {
                self.start_session(c);
            }
            if idle {
                return Ok(());
            }
        }
    }

    /// Counts, reports and logs a session that ended, and schedules the
    /// channel's next periodic one.
    pub(super) fn on_ended(&mut self, end: SessionEnd<u16, Box<dyn ErasedSession>>) {
        let c = end.peer;
        let stats = end.session.stats();
        let channel = self.channel_name(c).to_string();
        let initiator = end.id.initiated_here;
        let counters = &self.env.shared.counters;
        if initiator && matches!(end.outcome, Outcome::Completed | Outcome::Failed(_)) {
            counters.round_trips.add(stats.round_trips());
            self.env
                .shared
                .metrics
                .round_trips
                .observe(stats.round_trips() as f64);
        }
        if let Some(o) = SessionOutcome::of(&end.outcome) {
            self.metrics.session_ended(o);
        }
        match &end.outcome {
            Outcome::Completed => {
                counters.sessions_completed.add(1);
                debug!(
                    peer = %self.peer, %channel, initiator,
                    bytes_sent = stats.bytes_sent, bytes_received = stats.bytes_received,
                    round_trips = stats.round_trips(), elapsed_ms = end.elapsed.as_millis() as u64,
                    "session completed"
                );
                let next = Instant::now() + self.jittered(self.env.shared.config.ae_interval);
                self.next_ae[usize::from(c)] = next;
                self.env.shared.emit(NodeEvent::SessionCompleted {
                    peer: self.peer,
                    channel,
                    initiator,
                    stats,
                    elapsed: end.elapsed,
                });
                return;
            }
            Outcome::Failed(SyncError::NotConverged(_)) => counters.sessions_interrupted.add(1),
            Outcome::Failed(e) => {
                counters.sessions_failed.add(1);
                self.refused_data(c, e);
                if e.is_peer_fault() {
                    counters.peer_faults.add(1);
                    warn!(peer = %self.peer, %channel, error = %e, "session refused the peer's message");
                }
            }
            Outcome::TimedOut => counters.sessions_timed_out.add(1),
            Outcome::AbortedByPeer => counters.sessions_failed.add(1),
            _ => {}
        }
        debug!(peer = %self.peer, %channel, initiator, outcome = ?end.outcome, "session ended");
        self.env.shared.emit(NodeEvent::SessionEnded {
            peer: self.peer,
            channel,
            initiator,
            outcome: end.outcome,
            stats,
            elapsed: end.elapsed,
        });
    }
}
