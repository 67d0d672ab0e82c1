//! `--shard I/N`: a stable share of the input, so N machines split a tenant with no
//! coordination and their outputs concatenate. A mailbox belongs to shard
//! `FNV-1a-64(lower-cased, trimmed address) mod N + 1`. FNV-1a is fixed by its specification
//! (offset basis and prime below), so the split is the same on every machine, platform and
//! version of the tool, unlike `std`'s randomly seeded hasher.

use std::str::FromStr;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not a shard: expected I/N with 1 <= I <= N, e.g. 2/3");
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// The 1-based shard an input key (an address, or an invalid line's text) belongs to.
    pub fn of(key: &str, count: u32) -> u32 {
        let k = key.trim().to_lowercase();
        (fnv1a64(k.as_bytes()) % u64::from(count.max(1))) as u32 + 1
    }

    pub fn owns(&self, key: &str) -> bool {
        Shard::of(key, self.count) == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_reference_vectors() {
        // From the FNV reference test suite (draft-eastlake-fnv, test vectors for FNV-1a 64).
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn assignment_is_stable_and_case_insensitive() {
        // Pinned: changing the hash would silently re-split every running deployment.
        assert_eq!(
            Shard::of("megan.bowen@contoso.com", 3),
            Shard::of(" Megan.Bowen@Contoso.com", 3)
        );
        // Values computed independently (a Python FNV-1a over the UTF-8 address).
        assert_eq!(fnv1a64(b"megan.bowen@contoso.com"), 0x49da296f3a8c67ba);
        let pinned: Vec<u32> = [
            "a@contoso.com",
            "b@contoso.com",
            "c@contoso.com",
            "d@contoso.com",
        ]
        .iter()
        .map(|a| Shard::of(a, 3))
        .collect();
        assert_eq!(pinned, [1, 1, 3, 2]);
        // Every key lands in exactly one shard.
        for k in ["x@y.com", "z@w.org", "not an address"] {
            let owners = (1..=5)
                .filter(|i| {
                    Shard {
                        index: *i,
                        count: 5,
                    }
                    .owns(k)
                })
                .count();
            assert_eq!(owners, 1);
        }
    }

    #[test]
    fn parses_i_of_n() {
        assert_eq!(
            "2/3".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 3 }
        );
        for bad in ["0/3", "4/3", "1/0", "1", "a/b", "-1/3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
