//! Header space: sets of packets as unions of cubes. A cube gives each
//! header field a set of values (an interval set over `u128`); a packet is
//! in the cube when every field's value is in that field's set. Matches are
//! unions of constraints (some fields restricted, the rest free), and a
//! cube splits on a constraint into the part inside and disjoint cubes for
//! the part outside, as header space analysis does it.

use range_set_blaze::RangeSetBlaze;

/// The header fields the model knows. IPv4 addresses sit in the IPv4-mapped
/// IPv6 range (`::ffff:a.b.c.d`), so one field holds either family's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// The frame's EtherType: 0x0800 (IPv4), 0x86dd (IPv6), 0x0806 (ARP),
    /// anything else for a frame written with AF_PACKET.
    EtherType,
    /// The transport protocol (IPv4 protocol, IPv6 next header).
    L4,
    Saddr,
    Daddr,
    Sport,
    Dport,
    IcmpType,
    IcmpCode,
    TcpFlags,
    /// The packet's mark (`meta mark`).
    Mark,
    /// Conntrack state, one bit per packet: invalid 1, established 2,
    /// related 4, new 8, untracked 64.
    CtState,
    CtMark,
    /// The input interface: 0 for a locally generated packet, otherwise
    /// one more than its place in the namespace's interface list.
    Iif,
    Dscp,
    /// TTL or hop limit.
    Ttl,
    /// The packet's length (`meta length`, `ip length`).
    Length,
    SkUid,
    SkGid,
    /// 1 for a fragment that is not the first (it has no transport
    /// header: every match on a port, ICMP type or TCP flag fails on it).
    Frag,
    /// IPv6's first next header (`ip6 nexthdr`): the transport protocol
    /// unless extension headers come first, so a field of its own.
    NextHdr,
}

pub const FIELDS: usize = 20;

impl Field {
    pub const ALL: [Field; FIELDS] = [
        Field::EtherType,
        Field::L4,
        Field::Saddr,
        Field::Daddr,
        Field::Sport,
        Field::Dport,
        Field::IcmpType,
        Field::IcmpCode,
        Field::TcpFlags,
        Field::Mark,
        Field::CtState,
        Field::CtMark,
        Field::Iif,
        Field::Dscp,
        Field::Ttl,
        Field::Length,
        Field::SkUid,
        Field::SkGid,
        Field::Frag,
        Field::NextHdr,
    ];

    /// The largest value the field takes.
    pub fn max(self) -> u128 {
        match self {
            Field::EtherType | Field::Sport | Field::Dport | Field::Length => 0xffff,
            Field::L4
            | Field::IcmpType
            | Field::IcmpCode
            | Field::TcpFlags
            | Field::Ttl
            | Field::NextHdr => 0xff,
            Field::Frag => 1,
            Field::Dscp => 63,
            Field::Mark | Field::CtMark | Field::SkUid | Field::SkGid | Field::Iif => {
                u32::MAX as u128
            }
            Field::CtState => 64,
            Field::Saddr | Field::Daddr => u128::MAX,
        }
    }

    /// Every value the field can take.
    pub fn domain(self) -> RangeSetBlaze<u128> {
        if self == Field::CtState {
            return RangeSetBlaze::from_iter(CT_STATES.iter().map(|(_, v)| *v));
        }
        RangeSetBlaze::from_iter([0..=self.max()])
    }
}

/// `ct state invalid`'s bit.
pub const CT_INVALID: u128 = 1;

/// The conntrack states by name, as nft writes them.
pub const CT_STATES: [(&str, u128); 5] = [
    ("invalid", 1),
    ("established", 2),
    ("related", 4),
    ("new", 8),
    ("untracked", 64),
];

pub type Set = RangeSetBlaze<u128>;

/// One value.
pub fn one(v: u128) -> Set {
    RangeSetBlaze::from_iter([v])
}

/// An inclusive range.
pub fn range(lo: u128, hi: u128) -> Set {
    RangeSetBlaze::from_iter([lo..=hi])
}

/// A set of packets where each field ranges over its own set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cube(pub Vec<Set>);

impl Default for Cube {
    fn default() -> Self {
        Cube::any()
    }
}

impl Cube {
    /// Every packet.
    pub fn any() -> Cube {
        Cube(Field::ALL.iter().map(|f| f.domain()).collect())
    }

    pub fn get(&self, f: Field) -> &Set {
        &self.0[f as usize]
    }

    pub fn set(&mut self, f: Field, s: Set) {
        self.0[f as usize] = s;
    }

    /// This cube with field `f` narrowed to `s`.
    pub fn with(mut self, f: Field, s: &Set) -> Cube {
        let narrowed = self.get(f) & s;
        self.set(f, narrowed);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().any(|s| s.is_empty())
    }

    /// The part of the cube that meets constraint `c`, if any.
    pub fn meet(&self, c: &Constraint) -> Option<Cube> {
        let mut out = self.clone();
        for (f, s) in &c.0 {
            let narrowed = out.get(*f) & s;
            if narrowed.is_empty() {
                return None;
            }
            out.set(*f, narrowed);
        }
        Some(out)
    }

    /// The part of the cube outside constraint `c`, as disjoint cubes.
    pub fn minus(&self, c: &Constraint) -> Vec<Cube> {
        let mut out = Vec::new();
        let mut inside = self.clone();
        for (f, s) in &c.0 {
            let outside = inside.get(*f) - s;
            if !outside.is_empty() {
                let mut part = inside.clone();
                part.set(*f, outside);
                out.push(part);
            }
            let narrowed = inside.get(*f) & s;
            if narrowed.is_empty() {
                return out;
            }
            inside.set(*f, narrowed);
        }
        out
    }
}

/// A conjunction: each named field restricted to its set, the rest free.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Constraint(pub Vec<(Field, Set)>);

impl Constraint {
    pub fn on(f: Field, s: Set) -> Constraint {
        Constraint(vec![(f, s)])
    }

    /// This constraint and field `f` in `s` too.
    pub fn and(mut self, f: Field, s: Set) -> Constraint {
        match self.0.iter_mut().find(|(g, _)| *g == f) {
            Some((_, old)) => *old = &*old & &s,
            None => self.0.push((f, s)),
        }
        self
    }

    /// Whether no packet meets it.
    pub fn is_void(&self) -> bool {
        self.0.iter().any(|(_, s)| s.is_empty())
    }
}

/// A union of constraints: what a match accepts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Union(pub Vec<Constraint>);

impl Union {
    /// Every packet.
    pub fn all() -> Union {
        Union(vec![Constraint::default()])
    }

    /// No packet.
    pub fn none() -> Union {
        Union(Vec::new())
    }

    pub fn one(c: Constraint) -> Union {
        if c.is_void() {
            Union::none()
        } else {
            Union(vec![c])
        }
    }

    /// Splits `space` into the parts inside and outside the union (each a
    /// list of disjoint cubes).
    pub fn split(&self, space: Vec<Cube>) -> (Vec<Cube>, Vec<Cube>) {
        let mut inside = Vec::new();
        let mut outside = space;
        for c in &self.0 {
            let mut rest = Vec::new();
            for cube in outside {
                if let Some(i) = cube.meet(c) {
                    inside.push(i);
                    rest.extend(cube.minus(c));
                } else {
                    rest.push(cube);
                }
            }
            outside = rest;
        }
        (inside, outside)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(space: &[Cube], f: Field) -> u128 {
        space
            .iter()
            .map(|c| {
                c.get(f)
                    .ranges()
                    .map(|r| r.end() - r.start() + 1)
                    .sum::<u128>()
            })
            .sum()
    }

    #[test]
    fn a_cube_splits_into_a_disjoint_inside_and_outside() {
        let cube = Cube::any()
            .with(Field::Dport, &range(0, 99))
            .with(Field::L4, &range(6, 17));
        let c = Constraint::on(Field::Dport, range(50, 200)).and(Field::L4, one(6));
        let inside = cube.meet(&c).unwrap();
        assert_eq!(inside.get(Field::Dport), &range(50, 99));
        assert_eq!(inside.get(Field::L4), &one(6));
        let outside = cube.minus(&c);
        // dport 0..49 (any L4 of 6..17), then dport 50..99 with L4 7..17.
        assert_eq!(outside.len(), 2);
        assert_eq!(outside[0].get(Field::Dport), &range(0, 49));
        assert_eq!(outside[1].get(Field::Dport), &range(50, 99));
        assert_eq!(outside[1].get(Field::L4), &range(7, 17));
        // Inside and outside together are the cube, once.
        let all = [vec![inside], outside].concat();
        let ports: u128 = all
            .iter()
            .map(|c| {
                count(std::slice::from_ref(c), Field::Dport)
                    * count(std::slice::from_ref(c), Field::L4)
            })
            .sum();
        assert_eq!(ports, 100 * 12);
    }

    #[test]
    fn a_union_takes_each_of_its_constraints() {
        let u = Union(vec![
            Constraint::on(Field::Dport, one(53)),
            Constraint::on(Field::Dport, one(853)),
        ]);
        let (inside, outside) = u.split(vec![Cube::any()]);
        assert_eq!(count(&inside, Field::Dport), 2);
        assert_eq!(count(&outside, Field::Dport), 65536 - 2);
        let (none_in, all_out) = Union::none().split(vec![Cube::any()]);
        assert!(none_in.is_empty());
        assert_eq!(all_out.len(), 1);
    }

    #[test]
    fn conntrack_states_are_five_single_values() {
        assert_eq!(Field::CtState.domain().iter().count(), 5);
        let c = Constraint::on(Field::CtState, one(3));
        assert!(Cube::any().meet(&c).is_none(), "3 is no state of its own");
    }
}
