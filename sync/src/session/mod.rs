//! The sans-IO anti-entropy session, protocol version 3.
//!
//! Two replicas that may have diverged (a partition, a restart, a lost delta
//! buffer, a brand-new replica) run one [`Session`] each, and both end with
//! the join of what the two held: in one round trip when they agree, two
//! when they do not (plus, at most, one last message one way), whatever
//! the size of the stores.
//!
//! # Driving a session
//!
//! A `Session` never touches a socket, a clock or a random source, in the
//! manner of quinn-proto's `Connection`. Its owner
//!
//! 1. makes one with [`Session::initiate`] (which queues the first message)
//!    on one side and [`Session::respond`] on the other;
//! 2. drains [`Session::poll_transmit`] after each call, and delivers every
//!    message, in order, to the peer's session (over any transport; the
//!    session does not care how long it takes);
//! 3. feeds each message received to [`Session::handle`], with the store
//!    the session reconciles (which the session reads and joins into;
//!    the owner may write to it between calls);
//! 4. stops when [`Session::is_done`] (the session sent or received its
//!    last message: no further message of this session is needed by either
//!    side, so anything that arrives later is a straggler) or when `handle`
//!    returns an error (the session failed; [`Session::is_failed`]).
//!
//! Timeouts, retries, session ids, deduplication and reordering are the
//! owner's (the host's): a session expects its peer's messages exactly
//! once and in order, and refuses anything else with a typed error.
//! [`Session::stats`] counts bytes, messages, turns and round trips.
//!
//! ```
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::session::{Session, Verified};
//! use accordant_sync::store::Store;
//!
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut a: Store<u32, GCounter> = Store::new();
//! let mut b: Store<u32, GCounter> = Store::new();
//! for k in 0..1000 {
//!     let _ = a.update(k, |c| c.increment(eu, 1)).unwrap();
//!     let _ = b.update(k, |c| c.increment(eu, 1)).unwrap();
//! }
//! let _ = a.update(7, |c| c.increment(eu, 1)).unwrap(); // diverge on both sides
//! let _ = b.update(9, |c| c.increment(us, 1)).unwrap();
//!
//! let mut sa = Session::initiate(&a, Default::default());
//! let mut sb = Session::respond(Default::default());
//! while !(sa.is_done() && sb.is_done()) {
//!     let mut progressed = false;
//!     while let Some(m) = sa.poll_transmit() {
//!         sb.handle(&mut b, &m).unwrap();
//!         progressed = true;
//!     }
//!     while let Some(m) = sb.poll_transmit() {
//!         sa.handle(&mut a, &m).unwrap();
//!         progressed = true;
//!     }
//!     assert!(progressed);
//! }
//! assert_eq!(a.root_digest(), b.root_digest());
//! assert_eq!(sa.stats().round_trips(), 2);
//! // The side that received the last message compared full roots.
//! assert_eq!(sa.stats().verified, Some(Verified::Roots));
//! ```
//!
//! # The protocol
//!
//! 1. **Hello** (initiator, [`message::Hello`], 61 bytes at 10^6 keys): its
//!    full root digest, its key count, and a difference estimator: sixteen
//!    tug-of-war counters of its items ([`crate::sketch::Estimator`]),
//!    maintained per write. Equal roots: the responder answers `InSync` and
//!    the session is over, one round trip, under 64 bytes each way.
//! 2. **Symbols** (responder): from the two estimators it estimates the
//!    number of items the two stores disagree on, and sends that many
//!    times a margin of *rateless* coded symbols of its items (Yang et al.,
//!    "Practical Rateless Set Reconciliation", SIGCOMM 2024; see
//!    [`crate::sketch`]): about 1.35 to 2 symbols of 11 bytes per item of
//!    difference. It copies them from the symbols its digest tree keeps up
//!    to date per write, so this costs no pass over its items. When
//!    symbols would cost more than listing its item ids (8 bytes each), it
//!    lists them instead (`Items`).
//! 3. **Peel** (initiator): it subtracts its own symbols and peels the
//!    difference: the ids of the items only the responder holds and of
//!    those only it holds (a changed key is one of each). It checks the
//!    result against the count and sum of the responder's coded items (both
//!    sides must agree on everything else). If the symbols did not suffice
//!    (the estimator is off by more than the margin), it asks for more
//!    (`More`, one more round trip; the responder kept them), and after two
//!    extensions for the item list.
//! 4. **Offer** (initiator): the values of keys the responder lacks; for keys
//!    both hold, the full value when it is small, else its summary (an LWW
//!    stamp, a causal context); the ids of the items it lacks.
//! 5. **Answer** (responder): the values wanted; for each full value, the
//!    exact delta `Δ(responder, value)`; for each summary,
//!    `delta_for(summary)` (what the initiator lacks), and either its own
//!    summary or nothing (then the initiator computes what the responder
//!    lacks from that delta taken as the responder's whole value).
//! 6. **Close** (initiator, one way, only when the answer held replies): the
//!    delta each reply asked for.
//!
//! One-sided changes of small values and new keys finish with the Answer
//! (two round trips); changed large values (summaries) with the Close
//! (two round trips and one way). A new, empty initiator gets every value
//! in the responder's first answer.
//!
//! # Verification
//!
//! The last message of a session carries its sender's root and whether
//! that sender's store took writes other than the session's own between
//! its messages ([`message::Finish`]). If neither side did, the receiver
//! checks the full 32-byte roots are equal ([`Verified::Roots`]), and a
//! mismatch fails the session with [`SyncError::NotConverged`] (the one
//! error returned after the message was applied: its values were valid).
//! If writes landed (the normal case under load), roots cannot agree and
//! are not compared: the session verified what it set out to reconcile
//! ([`Verified::Reconciled`]). Each side coded one fixed state; the
//! initiator's check after peeling proves (up to a 2^-40 coincidence of
//! fingerprints per differing key) that the two states agreed on every item
//! outside the difference it found, and the exchange then gives each side
//! every differing key's value as the other held it then or later, so each
//! side now holds everything the other held when it coded. Later writes
//! are left to the delta path or the next session: no new pass starts, so
//! a finished side never owes the other a message.
//!
//! Every message is decoded and validated whole before any of it is
//! applied; a malformed, oversized or out-of-order message fails the
//! session with a typed error, and a session that exceeds
//! [`SyncLimits::max_turns`] turns or [`SyncLimits::max_messages`]
//! messages fails rather than looping. A turn larger than half of
//! [`SyncLimits::max_message_bytes`] travels as several messages.
//!
//! # What the session reads from the store
//!
//! So that a storage backend can sit under [`Store`], the session uses
//! only these of its methods:
//!
//! - [`Store::root`] and [`Store::root_digest`]: the root aggregate and its
//!   digest (`Hello`, verification, the coded state);
//! - [`Store::tree`]`().`[`coded()`](crate::tree::DigestTree::coded): the
//!   coded symbols and estimator the tree maintains;
//! - [`Store::items_in`]: the items under a tree node, a key-hash range
//!   (lookups by id prefix; every item, to code symbols beyond the kept
//!   ones or to list them);
//! - [`Store::get`], [`Store::join`] and [`Store::len`].

mod identify;
pub mod message;
mod reconcile;

use std::collections::VecDeque;
use std::sync::Arc;

use crate::admission::{Admit, SharedAdmit};
use crate::digest::Aggregate;
use crate::error::SyncError;
use crate::store::{Store, StoreKey, StoreValue};

use identify::{Coder, Decoder, ListDecoder, Outcome, Plan};
use message::{Finish, Hello, Message, More, Root, SyncLimits};
use reconcile::{Answering, Chunker, Offered};

/// Tuning of the protocol; the defaults suit most stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Bounds on what the peer may send.
    pub limits: SyncLimits,
    /// Offer a key both sides hold as its full value (rather than its
    /// summary) when the value's encoding is at most this many times the
    /// summary's, plus 16 bytes.
    pub full_value_ratio: usize,
    /// The responder sizes its first batch of symbols for this percentage
    /// of the estimated difference: higher costs bytes, lower costs an
    /// extra round trip more often (the estimate's spread is about 35%).
    pub margin_percent: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            limits: SyncLimits::default(),
            full_value_ratio: 2,
            margin_percent: 150,
        }
    }
}

/// How a finished session knows the two stores agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verified {
    /// Neither side took another write during the session, and the full
    /// root digests were compared equal.
    Roots,
    /// Writes landed during the session: each side holds everything the
    /// other held when it coded its items (see the [module
    /// docs](self#verification)); later writes are the next session's.
    Reconciled,
}

/// What a session has sent and received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Bytes this side sent.
    pub bytes_sent: u64,
    /// Bytes this side received.
    pub bytes_received: u64,
    /// Messages this side sent.
    pub messages_sent: u64,
    /// Messages this side received.
    pub messages_received: u64,
    /// Keys whose state this side sent (values, deltas, summaries).
    pub keys_sent: u64,
    /// Turns this side sent (a turn may span several messages).
    pub turns_sent: u64,
    /// Turns this side received.
    pub turns_received: u64,
    /// Coded symbols sent or received.
    pub symbols: u64,
    /// Item ids listed (sent or received) instead of symbols.
    pub items_listed: u64,
    /// Requests for more symbols or for the item list, sent or received.
    pub extensions: u64,
    /// How the session verified, on a side that compared roots: the side
    /// that received the last message, and a responder that found the
    /// roots equal at once. `None` on the side that sent the last message
    /// of a session that differed (it does not learn the outcome), and
    /// before the end.
    pub verified: Option<Verified>,
}

impl SessionStats {
    /// Turns in both directions: each is one message's trip one way.
    pub fn legs(&self) -> u64 {
        self.turns_sent + self.turns_received
    }

    /// Complete round trips (two legs each). A session with an odd number
    /// of legs ends with one more message one way, which this does not
    /// count: a modelled time should use [`legs`](Self::legs).
    pub fn round_trips(&self) -> u64 {
        self.legs() / 2
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The responder before the `Hello`.
    AwaitHello,
    /// The initiator, until it knows the difference.
    AwaitCoded,
    /// The responder, after its symbols or list.
    AwaitOffer,
    /// The initiator, after an offer that asked for answers.
    AwaitAnswer,
    /// The responder, after an answer with replies.
    AwaitClose,
    /// Over: the last message was sent or received.
    Finished,
    /// Failed; see the error returned then.
    Failed,
}

/// One side of an anti-entropy session. See the [module docs](self) for how
/// to drive it.
#[derive(Debug)]
pub struct Session<K, V> {
    phase: Phase,
    config: SessionConfig,
    outbox: VecDeque<Vec<u8>>,
    stats: SessionStats,
    turns: u32,
    messages: u32,
    /// The turn whose chunks are arriving.
    chunked: Option<&'static str>,
    /// No write other than the session's changed the store between calls.
    quiet: bool,
    /// The store's root when the last call ended.
    last_root: Option<Aggregate>,
    /// The root the initiator's `Hello` carried.
    hello_root: Option<Root>,
    decoder: Option<Decoder>,
    list: Option<ListDecoder>,
    coder: Option<Coder>,
    listed: bool,
    offered: Option<Offered<K>>,
    answering: Option<Answering<K>>,
    /// The policy every received value passes before any of its turn is
    /// joined; `None` admits everything.
    admit: Option<SharedAdmit<K, V>>,
    _types: core::marker::PhantomData<fn() -> V>,
}

impl<K: StoreKey, V: StoreValue> Session<K, V> {
    fn new(config: SessionConfig, phase: Phase) -> Self {
        Session {
            phase,
            config,
            outbox: VecDeque::new(),
            stats: SessionStats::default(),
            turns: 0,
            messages: 0,
            chunked: None,
            quiet: true,
            last_root: None,
            hello_root: None,
            decoder: None,
            list: None,
            coder: None,
            listed: false,
            offered: None,
            answering: None,
            admit: None,
            _types: core::marker::PhantomData,
        }
    }

    /// Starts a session as the initiator; the `Hello` is queued.
    pub fn initiate(store: &Store<K, V>, config: SessionConfig) -> Self {
        let mut s = Self::new(config, Phase::AwaitCoded);
        let root = Root(*store.root_digest().as_bytes());
        s.hello_root = Some(root);
        s.send(&Message::Hello(Hello {
            root,
            count: store.len() as u64,
            estimator: store.tree().coded().estimator().to_bytes(),
        }));
        s.last_root = Some(store.root());
        s
    }

    /// Starts a session as the responder, waiting for the peer's `Hello`.
    pub fn respond(config: SessionConfig) -> Self {
        Self::new(config, Phase::AwaitHello)
    }

    /// Checks every value a turn carries with `admit` before any value of
    /// the turn is joined: a refused value fails the session with
    /// [`SyncError::Refused`] and nothing of that turn is applied (earlier
    /// turns stay joined: joins only add information). See
    /// [`admission`](crate::admission).
    pub fn with_admission(mut self, admit: Arc<dyn Admit<K, V> + Send + Sync>) -> Self {
        self.admit = Some(SharedAdmit(admit));
        self
    }

    /// The next message to send to the peer, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    /// Whether the session is over: it sent or received its last message.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// Whether the session failed.
    pub fn is_failed(&self) -> bool {
        self.phase == Phase::Failed
    }

    /// Traffic so far, and the verification once done.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    fn send(&mut self, msg: &Message) {
        let bytes = message::encode(msg);
        self.stats.bytes_sent += bytes.len() as u64;
        self.stats.messages_sent += 1;
        if !msg.more() {
            self.stats.turns_sent += 1;
        }
        self.outbox.push_back(bytes);
    }

    fn send_all<T>(&mut self, chunks: Vec<T>, wrap: fn(T) -> Message) {
        for c in chunks {
            self.send(&wrap(c));
        }
    }

    fn fail(&mut self, e: SyncError) -> SyncError {
        self.phase = Phase::Failed;
        self.outbox.clear();
        e
    }

    fn finish_of(&self, store: &Store<K, V>) -> Finish {
        Finish {
            root: Root(*store.root_digest().as_bytes()),
            quiet: self.quiet,
        }
    }

    /// Handles one message from the peer. On error the session is failed
    /// and nothing of the message was applied (except for
    /// [`SyncError::NotConverged`], see the [module docs](self#verification)).
    pub fn handle(&mut self, store: &mut Store<K, V>, bytes: &[u8]) -> Result<(), SyncError> {
        if matches!(self.phase, Phase::Finished | Phase::Failed) {
            return Err(SyncError::Finished);
        }
        self.stats.bytes_received += bytes.len() as u64;
        self.stats.messages_received += 1;
        self.messages += 1;
        if self.messages > self.config.limits.max_messages {
            let n = self.config.limits.max_messages;
            return Err(self.fail(SyncError::TooManyTurns(n)));
        }
        let msg = match message::decode(bytes, &self.config.limits) {
            Ok(m) => m,
            Err(e) => return Err(self.fail(e)),
        };
        if !msg.more() {
            self.turns += 1;
            self.stats.turns_received += 1;
            if self.turns > self.config.limits.max_turns {
                let n = self.config.limits.max_turns;
                return Err(self.fail(SyncError::TooManyTurns(n)));
            }
        }
        if self.chunked.is_some_and(|t| t != msg.name()) {
            return Err(self.fail(SyncError::Unexpected(
                "another message in the middle of a turn",
            )));
        }
        self.chunked = msg.more().then(|| msg.name());
        if self.last_root.is_some_and(|r| r != store.root()) {
            self.quiet = false;
        }
        match self.on_message(store, msg) {
            Ok(()) => {
                self.last_root = Some(store.root());
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn on_message(&mut self, store: &mut Store<K, V>, msg: Message) -> Result<(), SyncError> {
        match (self.phase, msg) {
            (Phase::AwaitHello, Message::Hello(h)) => self.on_hello(store, &h),
            (Phase::AwaitOffer, Message::More(m)) => self.on_more(store, m),
            (Phase::AwaitOffer, Message::Offer(o)) => self.on_offer(store, &o),
            (Phase::AwaitClose, Message::Close(c)) => self.on_close(store, &c),
            (Phase::AwaitCoded, Message::InSync(root)) if self.first_reply() => {
                if Some(root) != self.hello_root {
                    return Err(SyncError::Unexpected("InSync with another root"));
                }
                self.stats.verified = Some(if root.0 == *store.root_digest().as_bytes() {
                    Verified::Roots
                } else {
                    Verified::Reconciled
                });
                self.phase = Phase::Finished;
                Ok(())
            }
            (Phase::AwaitCoded, Message::Symbols(s)) if self.list.is_none() => {
                self.on_symbols(store, &s)
            }
            (Phase::AwaitCoded, Message::Items(i))
                if self.decoder.is_none() || self.list.is_some() =>
            {
                self.on_items(store, &i)
            }
            (Phase::AwaitCoded, Message::Answer(a))
                if self.first_reply() || self.offered.is_some() =>
            {
                // A new, empty initiator: the responder sent everything.
                self.offered.get_or_insert_with(Offered::none);
                self.on_answer(store, &a)
            }
            (Phase::AwaitAnswer, Message::Answer(a)) => self.on_answer(store, &a),
            (Phase::AwaitHello, _) => Err(SyncError::Unexpected("expected Hello")),
            (_, Message::Hello(_)) => {
                Err(SyncError::Unexpected("Hello in the middle of a session"))
            }
            (_, _) => Err(SyncError::Unexpected("message out of order")),
        }
    }

    /// Whether the initiator has received nothing yet but (chunks of) the
    /// current turn.
    fn first_reply(&self) -> bool {
        self.decoder.is_none() && self.list.is_none() && self.turns <= 1
    }

    // --------------------------------------------------------- responder

    fn on_hello(&mut self, store: &Store<K, V>, h: &Hello) -> Result<(), SyncError> {
        let mine = Root(*store.root_digest().as_bytes());
        if h.root == mine {
            self.send(&Message::InSync(mine));
            self.stats.verified = Some(Verified::Roots);
            self.phase = Phase::Finished;
            return Ok(());
        }
        if h.count == 0 {
            // A brand-new replica lacks everything: send it all, done.
            let max = self.config.limits.max_message_bytes / 2;
            let mut chunks = Chunker::<message::Answer>::new(max);
            for (_, k, v, _) in store.items_in(crate::tree::NodeId::ROOT) {
                let kv = message::KeyValue {
                    key: message::Bytes::from(crate::key::key_bytes(&k)),
                    value: message::Bytes::from(accordant::codec::encode(&v)),
                };
                self.stats.keys_sent += 1;
                chunks.add(message::size_of(&kv), |c| c.joins.0.push(kv));
            }
            let finish = self.finish_of(store);
            let chunks = chunks.finish(|c, last| {
                c.more = !last;
                c.finish = last.then_some(finish);
            });
            self.send_all(chunks, Message::Answer);
            self.phase = Phase::Finished;
            return Ok(());
        }
        let estimate = store.tree().coded().estimator().estimate(&h.estimator);
        let max = self.config.limits.max_message_bytes / 2;
        match identify::plan(estimate, store.len() as u64, h.count, &self.config) {
            Plan::Symbols { first, reserve } => {
                let mut coder = Coder::new(store, reserve);
                let chunks = coder.batch(store, first, max)?;
                self.stats.symbols += first;
                self.send_all(chunks, Message::Symbols);
                self.coder = Some(coder);
            }
            Plan::Items => self.send_list(store),
        }
        self.phase = Phase::AwaitOffer;
        Ok(())
    }

    fn send_list(&mut self, store: &Store<K, V>) {
        let max = self.config.limits.max_message_bytes / 2;
        let chunks = identify::item_list(store, max);
        self.stats.items_listed += store.len() as u64;
        self.listed = true;
        self.send_all(chunks, Message::Items);
    }

    fn on_more(&mut self, store: &Store<K, V>, m: More) -> Result<(), SyncError> {
        if self.answering.is_some() {
            return Err(SyncError::Unexpected("More after an offer"));
        }
        self.stats.extensions += 1;
        match m {
            More::Symbols(end) => {
                let max = self.config.limits.max_message_bytes / 2;
                let coder = self
                    .coder
                    .as_mut()
                    .ok_or(SyncError::Unexpected("More symbols after a list"))?;
                let sent = coder.sent();
                let chunks = coder.batch(store, end, max)?;
                self.stats.symbols += end - sent;
                self.send_all(chunks, Message::Symbols);
            }
            More::Items if self.listed => return Err(SyncError::Unexpected("a second list")),
            More::Items => {
                self.coder = None;
                self.send_list(store);
            }
        }
        Ok(())
    }

    fn on_offer(&mut self, store: &mut Store<K, V>, o: &message::Offer) -> Result<(), SyncError> {
        let config = self.config;
        let answering = self
            .answering
            .get_or_insert_with(|| Answering::new(&config));
        let admit = self.admit.as_ref().map(|a| &*a.0 as &dyn Admit<K, V>);
        answering.take_offer(store, o, &config, admit)?;
        if o.more {
            return Ok(());
        }
        if let Some(finish) = o.finish {
            return self.verify(store, finish);
        }
        let expects_close = answering.expects_close();
        self.stats.keys_sent += answering.keys_sent();
        let chunks = answering.answer();
        let finish = (!expects_close).then(|| self.finish_of(store));
        let chunks = chunks.finish(|c, last| {
            c.more = !last;
            c.finish = finish.filter(|_| last);
        });
        self.send_all(chunks, Message::Answer);
        self.phase = if expects_close {
            Phase::AwaitClose
        } else {
            Phase::Finished
        };
        Ok(())
    }

    fn on_close(&mut self, store: &mut Store<K, V>, c: &message::Close) -> Result<(), SyncError> {
        let config = self.config;
        let answering = self
            .answering
            .as_mut()
            .ok_or(SyncError::Unexpected("Close before an offer"))?;
        let admit = self.admit.as_ref().map(|a| &*a.0 as &dyn Admit<K, V>);
        answering.take_close(store, c, &config, admit)?;
        match c.finish {
            Some(finish) => self.verify(store, finish),
            None => Ok(()),
        }
    }

    // --------------------------------------------------------- initiator

    fn on_symbols(&mut self, store: &Store<K, V>, s: &message::Symbols) -> Result<(), SyncError> {
        let decoder = match &mut self.decoder {
            Some(d) => d,
            None => self.decoder.insert(Decoder::new(store, s, &self.config)?),
        };
        let before = decoder.received();
        let outcome = decoder.take(store, s)?;
        self.stats.symbols += decoder.received() - before;
        match outcome {
            Outcome::Partial => Ok(()),
            Outcome::Found(d) => {
                self.send_offer(store, &d);
                Ok(())
            }
            Outcome::Extend(end) => {
                self.stats.extensions += 1;
                self.send(&Message::More(More::Symbols(end)));
                Ok(())
            }
            Outcome::List => {
                self.stats.extensions += 1;
                self.list = Some(ListDecoder::default());
                self.send(&Message::More(More::Items));
                Ok(())
            }
        }
    }

    fn on_items(&mut self, store: &Store<K, V>, i: &message::Items) -> Result<(), SyncError> {
        let config = self.config;
        let list = self.list.get_or_insert_with(ListDecoder::default);
        self.stats.items_listed += (i.ids.len() / identify::ID_BYTES) as u64;
        if let Some(d) = list.take(store, i, &config)? {
            self.send_offer(store, &d);
        }
        Ok(())
    }

    fn send_offer(&mut self, store: &Store<K, V>, d: &crate::sketch::Difference) {
        let (chunks, offered, keys) = reconcile::offer(store, d, &self.config);
        self.stats.keys_sent += keys;
        let asks = offered.expects_answer();
        let finish = (!asks).then(|| self.finish_of(store));
        let chunks = chunks.finish(|c, last| {
            c.more = !last;
            c.finish = finish.filter(|_| last);
        });
        self.send_all(chunks, Message::Offer);
        self.offered = Some(offered);
        self.phase = if asks {
            Phase::AwaitAnswer
        } else {
            Phase::Finished
        };
    }

    fn on_answer(&mut self, store: &mut Store<K, V>, a: &message::Answer) -> Result<(), SyncError> {
        let config = self.config;
        let offered = self
            .offered
            .as_mut()
            .ok_or(SyncError::Unexpected("Answer before an offer"))?;
        let admit = self.admit.as_ref().map(|a| &*a.0 as &dyn Admit<K, V>);
        reconcile::take_answer(store, a, offered, &config, admit)?;
        if a.more {
            return Ok(());
        }
        if let Some(finish) = a.finish {
            return self.verify(store, finish);
        }
        if !offered.expects_close() {
            return Err(SyncError::Malformed("answer: neither finished nor replied"));
        }
        let (chunks, keys) = reconcile::close(offered, &config);
        self.stats.keys_sent += keys;
        let finish = self.finish_of(store);
        let chunks = chunks.finish(|c, last| {
            c.more = !last;
            c.finish = last.then_some(finish);
        });
        self.send_all(chunks, Message::Close);
        self.phase = Phase::Finished;
        Ok(())
    }

    // ------------------------------------------------------- verification

    /// Ends the session on the peer's last message: with both sides quiet,
    /// the roots must be equal.
    fn verify(&mut self, store: &Store<K, V>, finish: Finish) -> Result<(), SyncError> {
        let equal = finish.root.0 == *store.root_digest().as_bytes();
        if finish.quiet && self.quiet && !equal {
            return Err(SyncError::NotConverged(1));
        }
        self.stats.verified = Some(if equal {
            Verified::Roots
        } else {
            Verified::Reconciled
        });
        self.phase = Phase::Finished;
        Ok(())
    }
}

/// Runs a session between two stores in memory until both are done (or one
/// fails), delivering every message at once. Returns the initiator's and the
/// responder's statistics.
pub fn sync_pair<K: StoreKey, V: StoreValue>(
    a: &mut Store<K, V>,
    b: &mut Store<K, V>,
    config: SessionConfig,
) -> Result<(SessionStats, SessionStats), SyncError> {
    let mut sa = Session::initiate(a, config);
    let mut sb = Session::respond(config);
    loop {
        let mut progressed = false;
        while let Some(m) = sa.poll_transmit() {
            sb.handle(b, &m)?;
            progressed = true;
        }
        while let Some(m) = sb.poll_transmit() {
            sa.handle(a, &m)?;
            progressed = true;
        }
        if sa.is_done() && sb.is_done() {
            return Ok((*sa.stats(), *sb.stats()));
        }
        if !progressed {
            return Err(SyncError::Unexpected("session stalled"));
        }
    }
}
