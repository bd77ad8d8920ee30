//! The replicator's fall-back: an anti-entropy session with a neighbour
//! whose needed entries left the buffer, run on a [`SessionHost`] whose
//! clock is the sync step (see the [module docs](crate::delta)).

use super::*;

/// The host's settings for the fall-back sessions: the timeout in sync
/// steps, and retries after 2 steps doubling up to 32 (plus jitter).
pub(super) fn host_config(config: &Config) -> HostConfig {
    HostConfig::default()
        .with_session_timeout(Duration::from_secs(u64::from(config.session_timeout) + 1))
        .with_retry(Duration::from_secs(2), Duration::from_secs(32))
}

/// A fall-back anti-entropy session with one neighbour, as the host runs
/// it: the state's session and what the replicator needs when it ends.
pub(super) struct Fallback<S: ReplicaState> {
    pub(super) session: S::Session,
    /// Our sequence number when it started: once it completes, the peer
    /// holds every entry of ours below it.
    pub(super) base: u64,
    /// It changed our state.
    pub(super) changed: bool,
    /// The replicator's generation when it started.
    pub(super) generation: u64,
}

impl<S: ReplicaState> HostedSession for Fallback<S> {
    type Store = S;

    fn handle(&mut self, state: &mut S, msg: &[u8]) -> Result<(), SyncError> {
        self.changed |= state.handle_session(&mut self.session, msg)?;
        Ok(())
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        S::poll_session(&mut self.session)
    }

    fn is_done(&self) -> bool {
        S::session_done(&self.session)
    }

    fn stats(&self) -> SessionStats {
        S::session_stats(&self.session)
    }
}

impl<S: ReplicaState, P: Copy + Ord + fmt::Debug> Replicator<S, P> {
    /// A new fall-back session, with the hook applied.
    pub(super) fn make_session(
        &self,
        state: &S,
        initiator: bool,
        config: crate::session::SessionConfig,
    ) -> Option<S::Session> {
        if self.config.causal.is_some() {
            // A Merkle session joins the peer's values a message at a time
            // and outside the buffer: causal delivery falls back to state
            // transfers instead (see the module docs).
            return None;
        }
        let session = state.new_session(initiator, config)?;
        Some(match &self.session_hook {
            Some(hook) => hook(session),
            None => session,
        })
    }

    /// Sends what the host queued and acts on how sessions ended. Returns
    /// the error of a session that failed through the peer's fault.
    pub(super) fn after_host(&mut self) -> Option<SyncError> {
        while let Some(t) = self.host.poll_transmit() {
            let to_inc = self.peers.get(&t.to).and_then(|x| x.inc).unwrap_or(0);
            self.stats.session_messages_sent += 1;
            self.send(t.to, wire::session(self.incarnation, to_inc, &t.bytes));
        }
        let mut fault = None;
        while let Some(e) = self.host.poll_event() {
            match e {
                HostEvent::Accepted { .. } => self.stats.sessions_started += 1,
                HostEvent::Ended(end) => {
                    match &end.outcome {
                        Outcome::Completed => {}
                        Outcome::TimedOut => self.stats.sessions_timed_out += 1,
                        Outcome::Failed(e) if e.is_peer_fault() => {
                            self.stats.sessions_failed += 1;
                            fault = Some(e.clone());
                        }
                        _ => self.stats.sessions_failed += 1,
                    }
                    let completed = end.outcome == Outcome::Completed;
                    self.end_session(end.peer, completed, &end.session);
                }
                _ => {}
            }
        }
        fault
    }

    /// A session with `p` ended. Whatever it joined stays (joins only
    /// add), but it is in no buffer: if it changed the state, every other
    /// neighbour gets a session too. A `completed` session also established
    /// that `p` holds everything we had when it started.
    pub(super) fn end_session(&mut self, p: P, completed: bool, run: &Fallback<S>) {
        if completed {
            self.stats.sessions_completed += 1;
            if let Some(peer) = self.peers.get_mut(&p) {
                peer.failures = 0;
                peer.ack = peer.ack.max(run.base);
                peer.base = Some(peer.base.map_or(run.base, |b| b.max(run.base)));
                if run.generation >= peer.resync {
                    peer.resync = 0;
                }
            }
        }
        if run.changed {
            self.generation += 1;
            for (q, peer) in &mut self.peers {
                if *q != p {
                    peer.resync = self.generation;
                }
            }
        }
        self.collect();
    }

    pub(super) fn start_session(&mut self, p: P, session: S::Session) {
        let run = Fallback {
            session,
            base: self.seq,
            changed: false,
            generation: self.generation,
        };
        if self.host.initiate(self.now(), p, run).is_ok() {
            self.stats.sessions_started += 1;
        }
        self.after_host();
    }

    /// A fall-back session message: the host routes it.
    pub(super) fn on_session(
        &mut self,
        state: &mut S,
        from: P,
        envelope: &[u8],
    ) -> Result<(), SyncError> {
        if self.config.causal.is_some() {
            // Its joins would bypass the buffer (and land a message at a
            // time): a replica with causal delivery takes none.
            return Err(SyncError::Unexpected(
                "a fall-back session to a replica with causal delivery",
            ));
        }
        let (seq, generation, config) = (self.seq, self.generation, self.config.session);
        let now = self.now();
        // A responder, in case the message opens a session (making one
        // reads the state, which the host then lends to the sessions).
        let mut fresh = self
            .make_session(state, false, config)
            .map(|session| Fallback {
                session,
                base: seq,
                changed: false,
                generation,
            });
        let result = self
            .host
            .handle(now, from, envelope, state, || fresh.take());
        let fault = self.after_host();
        result?;
        match fault {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
