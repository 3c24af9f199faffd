//! The mapping between a [`Split`] and the two servers' HAProxy weights.
//!
//! HAProxy weights are relative: a server gets `weight / sum of weights` of the backend's
//! new requests (`balance roundrobin`), each weight from 0 to 256, and weight 0 means no
//! traffic at all.
//!
//! - **Writing**: a split of `p`/`b` percent becomes weights `p` and `b` (scale 1: the
//!   weights sum to 100, so every whole percent is exact and nothing is rounded).
//!   100/0 and 0/100 put one server at weight 0, which takes it out of rotation.
//! - **Reading** weights someone else wrote (e.g. `3` and `1`): the burst share is
//!   `100 * b / (p + b)` rounded to the nearest whole percent, halves up (25 %), except
//!   that a weight above 0 never reads as 0 % (`256` and `1` read as 99/1: the burst server
//!   does get traffic). Weights written by [`to_weights`] read back as the same split.
//! - Both weights 0 is no split at all (the backend is "drained"): [`Error::Drained`].

use burst_core::{Split, Weight};

use crate::Error;

/// The largest weight HAProxy accepts.
pub const MAX_WEIGHT: u16 = 256;

/// The weights of the primary and the burst server, each `0..=256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerWeights {
    primary: u16,
    burst: u16,
}

impl ServerWeights {
    /// Weights as HAProxy holds them; each must be at most 256.
    pub fn try_new(primary: u32, burst: u32) -> Result<Self, Error> {
        let check = |w: u32| {
            u16::try_from(w)
                .ok()
                .filter(|w| *w <= MAX_WEIGHT)
                .ok_or(Error::WeightOutOfRange(w))
        };
        Ok(ServerWeights {
            primary: check(primary)?,
            burst: check(burst)?,
        })
    }

    /// The primary server's weight.
    pub const fn primary(self) -> u16 {
        self.primary
    }

    /// The burst server's weight.
    pub const fn burst(self) -> u16 {
        self.burst
    }

    /// Whether both weights are 0 (no server takes traffic).
    pub const fn is_drained(self) -> bool {
        self.primary == 0 && self.burst == 0
    }

    /// The split these weights give, or `None` when both are 0 (see the module docs).
    pub fn split(self) -> Option<Split> {
        let (p, b) = (u32::from(self.primary), u32::from(self.burst));
        let total = p + b;
        if total == 0 {
            return None;
        }
        // round(100 * b / total), halves up, in integers; a weight above 0 never reads
        // as 0 % (it does get traffic), nor a primary above 0 as 100 % burst.
        let mut burst = (200 * b + total) / (2 * total);
        if p > 0 && b > 0 {
            burst = burst.clamp(1, 99);
        }
        Weight::try_new(i64::from(burst))
            .ok()
            .map(Split::from_burst)
    }
}

/// The weights that give `split` exactly (see the module docs).
pub fn to_weights(split: Split) -> ServerWeights {
    ServerWeights {
        primary: u16::from(split.primary().get()),
        burst: u16::from(split.burst().get()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        let w = |p, b| ServerWeights::try_new(p, b).unwrap();
        assert_eq!(to_weights(Split::try_new(70, 30).unwrap()), w(70, 30));
        assert_eq!(to_weights(Split::ALL_PRIMARY), w(100, 0));
        assert_eq!(w(3, 1).split(), Some(Split::try_new(75, 25).unwrap()));
        assert_eq!(w(256, 1).split(), Some(Split::try_new(99, 1).unwrap()));
        assert_eq!(w(1, 1).split(), Some(Split::try_new(50, 50).unwrap()));
        assert_eq!(w(0, 256).split(), Some(Split::ALL_BURST));
        assert_eq!(w(0, 0).split(), None);
        assert!(w(0, 0).is_drained());
        assert_eq!(
            ServerWeights::try_new(257, 0).unwrap_err(),
            Error::WeightOutOfRange(257)
        );
    }

    proptest! {
        #[test]
        fn round_trip_is_exact(burst in 0i64..=100) {
            let split = Split::try_new(100 - burst, burst).unwrap();
            let w = to_weights(split);
            prop_assert_eq!(w.split(), Some(split));
            prop_assert_eq!(u32::from(w.primary()) + u32::from(w.burst()), 100);
            prop_assert!(w.primary() <= MAX_WEIGHT && w.burst() <= MAX_WEIGHT);
        }

        #[test]
        fn foreign_weights_round_to_the_nearest_percent(p in 0u32..=256, b in 0u32..=256) {
            let w = ServerWeights::try_new(p, b).unwrap();
            match w.split() {
                None => prop_assert!(p == 0 && b == 0),
                Some(s) => {
                    let exact = 100.0 * f64::from(b) / f64::from(p + b);
                    let off = (f64::from(s.burst().get()) - exact).abs();
                    // Nearest percent, or the nearest one that is not 0/100 for two weights above 0.
                    prop_assert!(off <= 0.5 || (p > 0 && b > 0 && off < 1.0), "{} off by {}", s, off);
                    prop_assert_eq!(
                        u16::from(s.primary().get()) + u16::from(s.burst().get()),
                        100
                    );
                    // Zero handling: a zero weight is exactly no traffic.
                    prop_assert_eq!(b == 0, s.burst().get() == 0);
                    prop_assert_eq!(p == 0, s.primary().get() == 0);
                }
            }
        }
    }
}
