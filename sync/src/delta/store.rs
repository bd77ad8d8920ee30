//! The replicator over a keyed [`Store`]: delta-groups are [`GMap`]s of
//! per-key deltas, and a neighbour the buffer can no longer serve is
//! repaired by a Merkle anti-entropy [`Session`].

use accordant::codec::SeqVec;

use super::map::GMap;
use super::ReplicaState;
use crate::error::SyncError;
use crate::session::{Session, SessionConfig, SessionStats};
use crate::store::{Store, StoreKey, StoreValue};

impl<K: StoreKey, V: StoreValue> ReplicaState for Store<K, V> {
    type Delta = GMap<K, V>;
    type Session = Session<K, V>;

    fn join_delta(&mut self, delta: &GMap<K, V>) {
        for (k, v) in delta.iter() {
            self.join(k.clone(), v);
        }
    }

    fn inflation(&self, delta: &GMap<K, V>) -> GMap<K, V> {
        delta
            .iter()
            .filter_map(|(k, v)| {
                let novel = match self.get(k) {
                    Some(mine) => v.delta(&mine),
                    None => v.clone(),
                };
                (!novel.is_bottom()).then(|| (k.clone(), novel))
            })
            .collect()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn encode_state(&self) -> Vec<u8> {
        // The canonical encoding of the GMap of every entry, built without
        // cloning values into a map first.
        let mut wire: Vec<(K, V::Wire)> =
            self.iter().map(|(k, v)| (k.clone(), v.to_wire())).collect();
        wire.sort_by(|a, b| a.0.cmp(&b.0));
        postcard::to_allocvec(&SeqVec(wire)).unwrap_or_default()
    }

    fn new_session(&self, initiator: bool, config: SessionConfig) -> Option<Session<K, V>> {
        Some(if initiator {
            Session::initiate(self, config)
        } else {
            Session::respond(config)
        })
    }

    fn handle_session(
        &mut self,
        session: &mut Session<K, V>,
        msg: &[u8],
    ) -> Result<bool, SyncError> {
        let before = self.root();
        session.handle(self, msg)?;
        Ok(self.root() != before)
    }

    fn poll_session(session: &mut Session<K, V>) -> Option<Vec<u8>> {
        session.poll_transmit()
    }

    fn session_done(session: &Session<K, V>) -> bool {
        session.is_done()
    }

    fn session_stats(session: &Session<K, V>) -> SessionStats {
        *session.stats()
    }
}

#[cfg(test)]
mod tests {
    use accordant::codec::encode;
    use accordant::{GCounter, Lattice, ReplicaId};

    use super::*;

    #[test]
    fn whole_store_encodes_as_its_gmap() {
        let mut s: Store<u32, GCounter> = Store::new();
        let mut m: GMap<u32, GCounter> = GMap::new();
        for k in 0..300u32 {
            let d = s
                .update(k, |c| {
                    c.increment(ReplicaId::from_u128(1), u64::from(k) + 1)
                })
                .unwrap();
            m.join_key(k, &d);
        }
        assert_eq!(s.encode_state(), encode(&m));
        assert!(s.inflation(&m).is_bottom());
        let d = GMap::single(
            5,
            GCounter::new().joined(
                &GCounter::new()
                    .increment(ReplicaId::from_u128(2), 1)
                    .unwrap(),
            ),
        );
        let novel = s.inflation(&m.clone().joined(&d));
        assert_eq!(novel, d);
    }
}
