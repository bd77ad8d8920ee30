//! Encoded sizes quoted in the README: exact, so the documentation cannot drift.

use accordant::codec::{encode, encoded_len};
use accordant::{Hlc, Lattice, LwwRegister, MvRegister, OrSet, PNCounter, ReplicaId, ShoppingCart};

fn r(n: u128) -> ReplicaId {
    ReplicaId::from_u128(n)
}

#[test]
fn gcounter_with_three_replicas() {
    let mut c = accordant::GCounter::new();
    for i in 0..3 {
        let _ = c.increment(r(i), 1_000).unwrap();
    }
    // length, then per replica: 16-byte id + 2-byte varint.
    assert_eq!(encode(&c).len(), 55);
}

#[test]
fn pncounter_with_three_replicas() {
    let mut c = PNCounter::new();
    for i in 0..3 {
        let _ = c.add(r(i), 1_000).unwrap();
        let _ = c.add(r(i), -10).unwrap();
    }
    // each replica's id once, with both of its counts.
    assert_eq!(encode(&c).len(), 1 + 3 * (16 + 2 + 1));
}

#[test]
fn mvregister_with_two_concurrent_values() {
    let mut a = MvRegister::new();
    let mut b = MvRegister::new();
    let _ = a.write(r(1), 1_000u64).unwrap();
    let _ = b.write(r(2), 2_000u64).unwrap();
    a.join(&b);
    assert_eq!(a.values().count(), 2);
    // context: 2 replicas x (id 16 + 1 range of 2 varints + count) + len;
    // store: len + 2 x (replica index, counter, 2-byte value).
    assert_eq!(
        encode(&a).len(),
        (1 + 2 * (16 + 1 + 2)) + (1 + 2 * (1 + 1 + 2))
    );
}

#[test]
fn lwwregister_holding_sixteen_bytes() {
    let mut reg = LwwRegister::new();
    let _ = reg.write_at(Hlc::new(1_700_000_000_000, 0), r(1), [0xAB_u8; 16]);
    // option tag, 6-byte varint milliseconds, logical 0, 16-byte id, 16 bytes.
    assert_eq!(encode(&reg).len(), 40);
}

#[test]
fn orset_grows_with_live_elements_not_history() {
    let mut s = OrSet::new();
    for i in 0..10_000u32 {
        let _ = s.add(r(1), i).unwrap();
    }
    for i in 0..9_990u32 {
        let _ = s.remove(&i);
    }
    // 10 live elements; 10,000 dots of history are one range of the context.
    assert_eq!(s.len(), 10);
    // context: len + id + (len, gap 0, 2-byte length) = 21 bytes;
    // live dots: len + (replica index, len, one run: 2-byte gap, length) = 6;
    // elements: len + 10 x 2-byte value = 21 (the dots cost nothing more).
    assert_eq!(encoded_len(&s), 21 + 6 + 21);
}

#[test]
fn cart_line_is_a_few_bytes_past_the_item() {
    let mut cart = ShoppingCart::new();
    let _ = cart.add(r(1), "book".to_string(), 1).unwrap();
    let one = encoded_len(&cart);
    let _ = cart.add(r(1), "pen".to_string(), 2).unwrap();
    // item (len + 3 bytes) + dot list (len, replica index, counter) + quantity.
    assert_eq!(encoded_len(&cart) - one, 4 + 3 + 1);
}
