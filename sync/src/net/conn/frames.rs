//! What the connection does with each frame it reads: session envelopes to
//! the host, deltas, pulls and values to their channel, refusals counted
//! and logged.

use super::*;

impl Conn {
    /// Handles every complete frame buffered in `reader`: `Some(whether
    /// any was)`, or `None` once the peer said `Bye`.
    pub(super) async fn drain(
        &mut self,
        reader: &mut FrameReader,
        max: usize,
    ) -> Result<Option<bool>, NetError> {
        let mut completed = false;
        while let Some(body) = reader.next_frame(max)? {
            completed = true;
            let wire_len = body.len() + varint_len(body.len() as u64);
            let frame = Frame::decode(&body)?;
            self.metrics.received(kind_of(&frame), wire_len);
            if let Flow::Bye = self.on_frame(frame).await? {
                return Ok(None);
            }
        }
        Ok(Some(completed))
    }

    /// Counts and reports data refused by admission.
    pub(super) fn refused_data(&self, c: u16, e: &SyncError) {
        if let SyncError::Refused(r) = e {
            self.shared().counters.refusals.add(1);
            self.shared().metrics.refused(refusal_reason(r));
            warn!(peer = %self.peer, channel = %self.channel_name(c), reason = %r, "refused the peer's data");
            self.shared().emit(NodeEvent::Refused {
                addr: None,
                peer: Some(self.peer),
                reason: r.to_string(),
            });
        }
    }

    pub(super) async fn on_frame(&mut self, frame: Frame) -> Result<Flow, NetError> {
        let n = self.env.channels.len();
        let channel_ok = |ch: u16| {
            if usize::from(ch) < n {
                Ok(usize::from(ch))
            } else {
                Err(NetError::Protocol(SyncError::Malformed("unknown channel")))
            }
        };
        match frame {
            Frame::Session { channel, envelope } => {
                let c = channel_ok(channel)?;
                self.skip_deltas[c] = false;
                self.shared()
                    .counters
                    .session_bytes_received
                    .add(envelope.len() as u64);
                let now = self.now();
                let ch = Arc::clone(&self.env.channels[c]);
                self.host.handle(now, channel, &envelope[..], &mut (), || {
                    // A causal channel joins no session (see `DeltaReplicator::causal`).
                    (!ch.causal()).then(|| ch.respond())
                })?;
                self.pump().await?;
            }
            Frame::Delta { channel, payload } => {
                let c = channel_ok(channel)?;
                self.shared().counters.deltas_received.add(1);
                self.deltas_read += 1;
                if self.skip_deltas[c] {
                    // Sent before the link went quiet: the session carries
                    // it (see `resume`).
                    self.shared().counters.deltas_skipped.add(1);
                    return Ok(Flow::Continue);
                }
                if let Err(e) = self.env.channels[c].receive_delta(self.peer, &payload[..]) {
                    self.shared().counters.peer_faults.add(1);
                    self.refused_data(channel, &e);
                    warn!(peer = %self.peer, channel = %self.channel_name(channel), error = %e, "refused a delta");
                    return Err(e.into());
                }
            }
            Frame::Pull { channel, payload } => {
                let c = channel_ok(channel)?;
                if !self.pulls.take(std::time::Instant::now()) {
                    self.shared().counters.pulls_limited.add(1);
                    self.shared().metrics.refused("pull_rate");
                    debug!(peer = %self.peer, channel = %self.channel_name(channel), "a pull over the member's rate: not answered");
                    return Ok(Flow::Continue);
                }
                match self.env.channels[c].answer_pull(&payload[..]) {
                    Ok(Some(payload)) => {
                        let payload = crate::message::Bytes::from(payload);
                        self.send(Frame::Value { channel, payload }.to_wire())
                            .await?;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.shared().counters.peer_faults.add(1);
                        warn!(peer = %self.peer, channel = %self.channel_name(channel), error = %e, "refused a pull");
                        return Err(e.into());
                    }
                }
            }
            Frame::Value { channel, payload } => {
                let c = channel_ok(channel)?;
                if let Err(e) = self.env.channels[c].receive_value(self.peer, &payload[..]) {
                    self.shared().counters.peer_faults.add(1);
                    self.refused_data(channel, &e);
                    warn!(peer = %self.peer, channel = %self.channel_name(channel), error = %e, "refused a pulled value");
                    return Err(e.into());
                }
            }
            Frame::Ping => {}
            Frame::Bye => return Ok(Flow::Bye),
            Frame::Received { deltas } => lock(&self.lag).acknowledged(deltas),
            Frame::Probe { channel, probe } => {
                // Only kept: the node compares every interval (a flood of
                // probes costs a map insert each, not a store scan).
                channel_ok(channel)?;
                lock(&self.metrics.probes).insert(channel, (probe, std::time::Instant::now()));
            }
            Frame::Handshake(_) => return Err(NetError::Handshake("a second handshake")),
        }
        Ok(Flow::Continue)
    }
}
