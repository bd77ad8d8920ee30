//! Two regions take writes, a partition splits the brain, the partition
//! heals and both converge — no write lost.
//!
//! Run with `cargo run --release --example active_active`.
//!
//! Each region holds a page view counter (`PNCounter`), a shopping cart
//! (`ShoppingCart`), the user's address as an `LwwRegister` (the seed
//! article's "last writer wins: loses data silently") and the same address as
//! an `MvRegister` (keeps both concurrent writes so the application can see the
//! conflict). While connected, every write's delta is shipped to the other
//! region; during the partition the deltas queue up; on heal each region ships
//! the minimal delta the other lacks.

use accordant::{
    codec, Decompose, HlcClock, Lattice, LwwRegister, ManualClock, MvRegister, PNCounter,
    ReplicaId, ShoppingCart,
};

/// Everything one region stores.
#[derive(Clone, Default, PartialEq, Debug)]
struct Region {
    views: PNCounter,
    cart: ShoppingCart<String>,
    address_lww: LwwRegister<String>,
    address_mv: MvRegister<String>,
}

impl Region {
    fn join(&mut self, other: &Region) {
        self.views.join(&other.views);
        self.cart.join(&other.cart);
        self.address_lww.join(&other.address_lww);
        self.address_mv.join(&other.address_mv);
    }

    /// The minimal delta `other` lacks from `self`, and its encoded size.
    fn delta_for(&self, other: &Region) -> (Region, usize) {
        let d = Region {
            views: self.views.delta(&other.views),
            cart: self.cart.delta(&other.cart),
            address_lww: self.address_lww.delta(&other.address_lww),
            address_mv: self.address_mv.delta(&other.address_mv),
        };
        let bytes = codec::encoded_len(&d.views)
            + codec::encoded_len(&d.cart)
            + codec::encoded_len(&d.address_lww)
            + codec::encoded_len(&d.address_mv);
        (d, bytes)
    }

    fn full_size(&self) -> usize {
        codec::encoded_len(&self.views)
            + codec::encoded_len(&self.cart)
            + codec::encoded_len(&self.address_lww)
            + codec::encoded_len(&self.address_mv)
    }

    fn show(&self, name: &str) {
        let cart: Vec<String> = self.cart.items().map(|(i, q)| format!("{i}×{q}")).collect();
        let mv: Vec<&String> = self.address_mv.values().collect();
        println!(
            "  {name:<8} views={:<4} cart=[{}] address(lww)={:?} address(mv)={:?}",
            self.views.value(),
            cart.join(", "),
            self.address_lww.get(),
            mv,
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (eu_id, us_id) = (ReplicaId::from_u128(0xE0), ReplicaId::from_u128(0x05));
    let wall = ManualClock::new(1_700_000_000_000);
    let (mut eu_clock, mut us_clock) = (HlcClock::new(5_000), HlcClock::new(5_000));
    let (mut eu, mut us) = (Region::default(), Region::default());

    println!("t=0s    connected: every write's delta is shipped at once");
    let mut shipped = 0usize;
    for _ in 0..3 {
        let d = eu.views.add(eu_id, 1)?;
        shipped += codec::encoded_len(&d);
        us.views.join(&d);
    }
    let d = us.cart.add(us_id, "book".to_string(), 1)?;
    shipped += codec::encoded_len(&d);
    eu.cart.join(&d);
    let d = eu.cart.add(eu_id, "pen".to_string(), 2)?;
    shipped += codec::encoded_len(&d);
    us.cart.join(&d);
    println!(
        "        {shipped} bytes of deltas shipped; regions equal: {}",
        eu == us
    );
    eu.show("EU");
    us.show("US-East");

    println!("t=10s   PARTITION: EU and US-East cannot talk; both keep taking writes");
    wall.advance(10_000);
    for _ in 0..5 {
        let _ = eu.views.add(eu_id, 1)?;
    }
    for _ in 0..7 {
        let _ = us.views.add(us_id, 1)?;
    }
    let _ = eu.cart.remove_item(&"book".to_string()); // EU user removes the book...
    let _ = us.cart.add(us_id, "book".to_string(), 1)?; // ...while US adds another copy
    let _ = us.cart.add(us_id, "mug".to_string(), 1)?;
    let _ = eu.cart.remove_item(&"pen".to_string()); // nobody else touches the pen
    let _ = eu
        .address_lww
        .write(eu_id, "Rue de Rivoli 1, Paris".into(), &mut eu_clock, &wall)?;
    let _ = eu
        .address_mv
        .write(eu_id, "Rue de Rivoli 1, Paris".into())?;
    wall.advance(3);
    let _ = us
        .address_lww
        .write(us_id, "5th Avenue 1, New York".into(), &mut us_clock, &wall)?;
    let _ = us
        .address_mv
        .write(us_id, "5th Avenue 1, New York".into())?;
    println!("        split brain: the regions disagree");
    eu.show("EU");
    us.show("US-East");

    wall.advance(60_000);
    println!("t=70s   HEAL: each region ships the minimal delta the other lacks");
    let (to_us, b1) = eu.delta_for(&us);
    let (to_eu, b2) = us.delta_for(&eu);
    eu.join(&to_eu);
    us.join(&to_us);
    println!(
        "        {b1} + {b2} bytes shipped (full states would be {} + {} bytes)",
        eu.full_size(),
        us.full_size()
    );
    eu.show("EU");
    us.show("US-East");

    let converged = eu == us
        && codec::encode(&eu.cart) == codec::encode(&us.cart)
        && codec::encode(&eu.views) == codec::encode(&us.views);
    println!("\nconverged: {converged}");
    println!(
        "- views: {} = 3 + 5 + 7, no increment lost",
        eu.views.value()
    );
    println!(
        "- cart: the book holds only the concurrent addition ({}), the pen stays removed ({}), the mug arrived",
        eu.cart.quantity(&"book".to_string()),
        eu.cart.quantity(&"pen".to_string()),
    );
    println!(
        "- address(lww) kept one write and silently dropped the other: {:?}",
        eu.address_lww.get()
    );
    println!(
        "- address(mv) kept both; the application sees the conflict: {}",
        eu.address_mv.is_conflicted()
    );
    if !converged {
        return Err("regions did not converge".into());
    }
    Ok(())
}
