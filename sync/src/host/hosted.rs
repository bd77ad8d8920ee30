//! What the host runs: [`HostedSession`], implemented by the anti-entropy
//! [`Session`] and by boxed (type-erased) sessions.

use crate::error::SyncError;
use crate::session::{Session, SessionStats};
use crate::store::{Store, StoreKey, StoreValue};

/// A session the host can run: the sans-IO state machine of one side.
///
/// [`Session`] is one (its store is a [`Store`]); the TCP node hosts
/// type-erased sessions, and the delta replicator hosts its state's
/// session, each through this trait.
pub trait HostedSession {
    /// What the session reads and writes when it handles a message.
    type Store: ?Sized;

    /// Feeds one message of the peer's, in order.
    fn handle(&mut self, store: &mut Self::Store, msg: &[u8]) -> Result<(), SyncError>;

    /// The next message to send, if any.
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;

    /// Whether the session is over on this side (verified).
    fn is_done(&self) -> bool;

    /// What the session has sent and received so far.
    fn stats(&self) -> SessionStats;
}

impl<K: StoreKey, V: StoreValue> HostedSession for Session<K, V> {
    type Store = Store<K, V>;

    fn handle(&mut self, store: &mut Store<K, V>, msg: &[u8]) -> Result<(), SyncError> {
        Session::handle(self, store, msg)
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        Session::poll_transmit(self)
    }

    fn is_done(&self) -> bool {
        Session::is_done(self)
    }

    fn stats(&self) -> SessionStats {
        *Session::stats(self)
    }
}

impl<T: HostedSession + ?Sized> HostedSession for Box<T> {
    type Store = T::Store;

    fn handle(&mut self, store: &mut T::Store, msg: &[u8]) -> Result<(), SyncError> {
        (**self).handle(store, msg)
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (**self).poll_transmit()
    }

    fn is_done(&self) -> bool {
        (**self).is_done()
    }

    fn stats(&self) -> SessionStats {
        (**self).stats()
    }
}
