//! Dialing a peer: the loop that connects, runs the connection, and
//! reconnects with capped, jittered exponential backoff (or at once, make
//! before break, while a quiet connection to the peer lingers).

use super::*;

/// Exponential backoff with full jitter from a seeded generator: the n-th
/// delay is uniform in `[d/2, d]` with `d = min(initial * 2^n, max)`.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
    rng: SplitMix64,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            initial,
            max,
            failures: 0,
            rng: SplitMix64::new(seed),
        }
    }

    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self
            .initial
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        d.mul_f64(0.5 + 0.5 * self.rng.unit())
    }
}

/// A connection the dial loop runs, and its phase.
pub(super) struct Running {
    task: tokio::task::JoinHandle<conn::ConnEnd>,
    phase: watch::Receiver<LinkPhase>,
}

impl Running {
    fn phase(&self) -> LinkPhase {
        *self.phase.borrow()
    }
}

/// What a running connection did next.
pub(super) enum RunEvent {
    Ended(conn::ConnEnd),
    Phase(LinkPhase),
}

/// Waits for a connection's next phase or its end (forever without one).
pub(super) async fn next_event(r: &mut Option<Running>) -> RunEvent {
    let Some(r) = r else {
        return std::future::pending().await;
    };
    let mut phases = true;
    loop {
        tokio::select! {
            end = &mut r.task => {
                return RunEvent::Ended(end.unwrap_or(conn::ConnEnd {
                    established: false,
                    result: Err(NetError::Local("connection task ended")),
                }));
            }
            changed = r.phase.changed(), if phases => match changed {
                Ok(()) => return RunEvent::Phase(*r.phase.borrow_and_update()),
                Err(_) => phases = false,
            },
        }
    }
}

/// Keeps one connection to a peer: dials, serves the connection, and dials
/// again when it ends or goes quiet.
///
/// While the peer cannot be reached, connection attempts overlap: a new
/// TCP connect starts every [`NodeConfig::dial_probe`] (up to
/// [`NodeConfig::dial_parallel`] in flight, each bounded by the connect
/// timeout), so when a partition heals the newest attempt's SYN gets
/// through within about one probe interval plus a round trip, whatever the
/// kernel's retransmission backoff does to its elders. The first stream to
/// connect wins and the others are dropped before anything is sent on
/// them, so the peer sees one TLS handshake. A handshake that times out (a
/// peer, or a path, that stays silent) is retried at once; attempts that
/// fail outright (refused, reset, a refused handshake) are spaced by a
/// capped, jittered exponential backoff.
///
/// Make before break: a connection that went quiet past the idle timeout
/// stays open ([`NodeConfig::quiet_linger`]) while the loop dials a new
/// one. Whichever speaks first wins: if the quiet one hears from the peer,
/// it resumes and the new attempt is dropped (unless its handshake already
/// completed); if the new one is established first, the quiet one closes.
pub(super) async fn dial_loop<F, Fut, S>(
    inner: Arc<NodeInner>,
    label: String,
    expected: u64,
    mut connect: F,
) where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let env = Arc::clone(&inner.env);
    let cfg = &env.shared.config;
    let seed = cfg.seed ^ blake3::hash(label.as_bytes()).as_bytes()[0] as u64;
    let mut backoff = Backoff::new(cfg.backoff_initial, cfg.backoff_max, seed);
    let mut stop = env.stop.clone();
    let parallel = cfg.dial_parallel.max(1);
    // The connection in use (live or quiet), and a new one made while it
    // is quiet.
    let mut current: Option<Running> = None;
    let mut fresh: Option<Running> = None;
    let mut attempts: JoinSet<io::Result<S>> = JoinSet::new();
    let mut next_start = tokio::time::Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        let dialing = fresh.is_none()
            && current
                .as_ref()
                .is_none_or(|c| c.phase() == LinkPhase::Quiet);
        if !dialing {
            attempts.abort_all();
        }
        let now = tokio::time::Instant::now();
        if dialing && attempts.len() < parallel && now >= next_start {
            let (attempt, limit) = (connect(), cfg.connect_timeout);
            attempts.spawn(async move {
                tokio::time::timeout(limit, attempt)
                    .await
                    .unwrap_or_else(|_| {
                        Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
                    })
            });
            next_start = now + cfg.dial_probe;
        }
        tokio::select! {
            e = next_event(&mut current) => match e {
                RunEvent::Ended(end) => {
                    current = fresh.take();
                    next_start = after_end(&env, &label, &mut backoff, end);
                }
                RunEvent::Phase(LinkPhase::Up) => {
                    // Resumed: the new connection is not needed, unless it
                    // is established already (then it holds the peer's slot
                    // and the old one closes).
                    if let Some(f) = fresh.take_if(|f| f.phase() == LinkPhase::Opening) {
                        f.task.abort();
                    }
                    backoff.reset();
                }
                RunEvent::Phase(_) => {}
            },
            e = next_event(&mut fresh) => match e {
                RunEvent::Ended(end) => {
                    fresh = None;
                    next_start = after_end(&env, &label, &mut backoff, end);
                }
                RunEvent::Phase(LinkPhase::Up) => {
                    // The new connection took the slot: the quiet one sees
                    // it and closes.
                    backoff.reset();
                    if let Some(old) = current.replace(fresh.take().expect("fresh")) {
                        inner.spawn(async move {
                            let _ = old.task.await;
                        });
                    }
                }
                RunEvent::Phase(_) => {}
            },
            done = attempts.join_next(), if !attempts.is_empty() => match done {
                Some(Ok(Ok(io))) => {
                    attempts.abort_all();
                    let (tx, rx) = watch::channel(LinkPhase::Opening);
                    let task = tokio::spawn(conn::run(
                        Arc::clone(&env),
                        io,
                        Role::Dial { expected },
                        None,
                        None,
                        Some(tx),
                    ));
                    let r = Running { task, phase: rx };
                    if current.is_none() {
                        current = Some(r);
                    } else {
                        fresh = Some(r);
                    }
                }
                Some(Ok(Err(e))) => {
                    let timed_out = e.kind() == io::ErrorKind::TimedOut;
                    if !timed_out && attempts.is_empty() {
                        // Refused or reset: the peer's host answered;
                        // back off.
                        let delay = backoff.next_delay();
                        dial_failed(&env, &label, e.to_string(), delay);
                        next_start = tokio::time::Instant::now() + delay;
                    }
                }
                _ => {}
            },
            _ = tokio::time::sleep_until(next_start), if dialing && attempts.len() < parallel => {}
            _ = stop.changed() => {}
        }
    }
    // Shutdown: the connections say `Bye` and end.
    attempts.abort_all();
    for r in [current, fresh].into_iter().flatten() {
        let _ = r.task.await;
    }
}

/// What the dial loop does after a connection ended: when to dial next.
pub(super) fn after_end(
    env: &ConnEnv,
    label: &str,
    backoff: &mut Backoff,
    end: conn::ConnEnd,
) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    if *env.stop.borrow() || end.established {
        // Dial again at once: the probes find the peer when it is back.
        backoff.reset();
        return now;
    }
    match end.result {
        // Silence: the path may be cut; probe again at once.
        Err(NetError::Timeout(what)) => {
            dial_failed(env, label, what.to_string(), Duration::ZERO);
            now
        }
        Err(e) => {
            let delay = backoff.next_delay();
            dial_failed(env, label, e.to_string(), delay);
            now + delay
        }
        Ok(()) => now,
    }
}

/// Counts, reports and logs a failed connection attempt.
pub(super) fn dial_failed(env: &ConnEnv, label: &str, error: String, retry_in: Duration) {
    debug!(node = env.shared.config.id, addr = %label, %error, retry_in_ms = retry_in.as_millis() as u64, "dial failed");
    env.shared.counters.connect_failures.add(1);
    env.shared.emit(NodeEvent::ConnectFailed {
        addr: label.to_string(),
        error,
        retry_in,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 7);
        let ds: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        for (i, d) in ds.iter().enumerate() {
            let full = Duration::from_millis(100 * (1 << i)).min(Duration::from_secs(2));
            assert!(*d >= full / 2 && *d <= full, "{i}: {d:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
        // Seeded: the same seed gives the same delays.
        let mut c = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 7);
        assert_eq!((0..8).map(|_| c.next_delay()).collect::<Vec<_>>(), ds);
    }
}
