//! A connection gone quiet: reported lost at the idle timeout but kept
//! open, then resumed without a handshake when the peer speaks again, and
//! the gate that holds deltas while the peer is silent (see the
//! [connection's docs](super)).

use super::*;

impl Conn {
    /// Nothing came for the idle timeout: reports the peer lost, gives up
    /// its slot and aborts the sessions, but keeps the socket (see the
    /// [module docs](self)).
    pub(super) fn go_quiet(&mut self, now: Instant) -> Result<(), NetError> {
        let env = Arc::clone(&self.env);
        let shared = &env.shared;
        let slot = {
            let mut peers = lock(&shared.peers);
            match peers.get(&self.peer) {
                Some(s) if s.conn == self.conn_id => peers.remove(&self.peer),
                _ => None,
            }
        };
        let Some(slot) = slot else {
            return Err(NetError::Local("replaced by a newer connection"));
        };
        self.quiet = Some((now, slot));
        self.set_gate(DeltaGate::Discard);
        shared.counters.quiet_connections.add(1);
        let host_now = self.now();
        for c in 0..env.channels.len() {
            // The aborts wait in the socket, ahead of anything sent after
            // a resume: the peer drops these sessions before it sees new
            // ones.
            self.host.abort(host_now, c as u16);
        }
        for c in &env.channels {
            c.disconnected(self.peer);
        }
        shared.counters.disconnects.add(1);
        self.metrics.links.fetch_sub(1, Ordering::Relaxed);
        if let Some(link) = &self.link {
            link.send_replace(LinkPhase::Quiet);
        }
        let linger = shared.config.quiet_linger;
        info!(peer = %self.peer, linger_ms = linger.as_millis() as u64, "quiet: peer lost, connection kept in case it speaks again");
        shared.emit(NodeEvent::Disconnected {
            peer: self.peer,
            name: self.name.clone(),
            reason: format!(
                "nothing received from the peer (idle timeout); kept open {} ms in case the link heals",
                linger.as_millis()
            ),
        });
        Ok(())
    }

    /// Bytes came on a quiet connection: it takes its peer slot back (unless
    /// a newer connection holds it: then it closes) and the dialer opens a
    /// session per channel at once.
    ///
    /// The deltas the peer wrote into the socket before the link went
    /// quiet arrive now, all at once, ahead of the sessions. They are
    /// skipped, per channel, up to the peer's first session frame there:
    /// each was sent after its write was committed and before that frame,
    /// which comes before (or is) the peer's answer to the dialer's new
    /// session or its own opening of it, so the session carries every one
    /// of them (and if it fails, the next one does). Applying them would
    /// only hold the session up, a store commit each.
    pub(super) fn resume(&mut self) -> Result<(), NetError> {
        let Some((since, slot)) = self.quiet.take() else {
            return Ok(());
        };
        let env = Arc::clone(&self.env);
        let shared = &env.shared;
        {
            let mut peers = lock(&shared.peers);
            if peers.contains_key(&self.peer) {
                self.quiet = Some((since, slot));
                return Err(NetError::Local("replaced by a newer connection"));
            }
            peers.insert(self.peer, slot);
        }
        shared.counters.quiet_connections.sub(1);
        if let Some(link) = &self.link {
            link.send_replace(LinkPhase::Up);
        }
        shared.counters.resumed.add(1);
        self.metrics.links.fetch_add(1, Ordering::Relaxed);
        info!(peer = %self.peer, quiet_ms = since.elapsed().as_millis() as u64, "resumed: the peer speaks again on the kept connection");
        shared.emit(NodeEvent::Connected {
            peer: self.peer,
            name: self.name.clone(),
            dialed: self.dialed,
            resumed: true,
        });
        for c in &env.channels {
            c.connected(self.peer);
        }
        let now = Instant::now();
        for c in 0..self.next_ae.len() {
            let next = now + self.jittered(shared.config.ae_interval);
            self.next_ae[c] = next;
        }
        self.skip_deltas.iter_mut().for_each(|s| *s = true);
        if self.dialed {
            for c in 0..env.channels.len() {
                self.start_session_first(c as u16);
            }
        }
        Ok(())
    }

    /// Sets what the writer does with queued deltas (a no-op when unchanged).
    pub(super) fn set_gate(&self, to: DeltaGate) {
        self.gate.send_if_modified(|g| {
            let changed = *g != to;
            *g = to;
            changed
        });
    }
}
