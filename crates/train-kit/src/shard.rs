//! Shard `index` of `count`: the contiguous part of `n` items a worker owns. The one range
//! arithmetic of the workspace: data-parallel training's record shards (`dp_optim`) and
//! sharded generation's sample shards (`synth-gen`) both use it. Its errors
//! ([`TrainKitError::NoShards`], [`TrainKitError::ShardIndex`], [`TrainKitError::ShardSyntax`])
//! are named in each crate's own terms (`world`/`rank`, `shard.count`/`shard.index`).

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::error::TrainKitError;

/// Shard `index` of `count` (zero-based) owns the items `[n·index/count, n·(index+1)/count)`
/// of `n` (exact integer arithmetic), so the `count` shards partition `0..n` in order and
/// differ in size by at most one item. Construct it with [`Shard::new`] or parse `"I/N"`; an
/// invalid shard cannot exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl Shard {
    /// The whole as one shard (`0` of `1`).
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; refuses `count = 0` and `index >= count`.
    pub fn new(index: u64, count: u64) -> Result<Self, TrainKitError> {
        if count == 0 {
            return Err(TrainKitError::NoShards);
        }
        if index >= count {
            return Err(TrainKitError::ShardIndex { index, count });
        }
        Ok(Self { index, count })
    }

    /// The shard's position, zero-based.
    pub fn index(self) -> u64 {
        self.index
    }

    /// How many shards the whole is split into.
    pub fn count(self) -> u64 {
        self.count
    }

    /// The items of `n` this shard owns (empty for some shards when `n < count`). The
    /// shards of one count partition `0..n` in order.
    pub fn range(self, n: u64) -> Range<u64> {
        // n·i/count <= n, so the quotient fits u64; the product needs u128
        let at = |i: u64| (u128::from(n) * u128::from(i) / u128::from(self.count)) as u64;
        at(self.index)..at(self.index + 1)
    }

    /// [`Self::range`] as `usize` indices (e.g. of records in memory).
    pub fn indices(self, n: usize) -> Range<usize> {
        let r = self.range(n as u64);
        r.start as usize..r.end as usize
    }
}

impl fmt::Display for Shard {
    /// `I/N`, the form [`Shard::from_str`] parses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = TrainKitError;

    /// Parses `I/N` (zero-based `I`), e.g. `0/4` … `3/4`; then validates as [`Shard::new`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || TrainKitError::ShardSyntax(s.to_string());
        let (index, count) = s.split_once('/').ok_or_else(syntax)?;
        let number = |part: &str| part.trim().parse::<u64>().map_err(|_| syntax());
        Self::new(number(index)?, number(count)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_in_order() {
        for n in [0u64, 1, 5, 7, 100] {
            for count in 1..=8 {
                let mut next = 0;
                for index in 0..count {
                    let r = Shard::new(index, count).unwrap().range(n);
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
    }

    #[test]
    fn bad_shards_are_refused() {
        assert!(matches!(Shard::new(0, 0), Err(TrainKitError::NoShards)));
        assert!(matches!(
            Shard::new(3, 3),
            Err(TrainKitError::ShardIndex { index: 3, count: 3 })
        ));
        assert_eq!("1/4".parse::<Shard>().unwrap().to_string(), "1/4");
        assert!(matches!(
            "1-4".parse::<Shard>(),
            Err(TrainKitError::ShardSyntax(_))
        ));
    }
}
