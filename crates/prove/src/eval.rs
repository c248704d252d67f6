//! The symbolic walk of packets through the ruleset: each hook's base
//! chains in priority order, rules in order, jumps and gotos followed, and
//! what is accepted, dropped or returned kept apart as header space.

use crate::ruleset::{ChainKey, Compiler, ETH_IP, ETH_IP6, Links, Op, Ruleset, Verdict};
use crate::space::{Constraint, Cube, Field, Set, Union, one};

/// A statement the model cannot follow, reached by some packet.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot prove: {rule}: {why}")]
pub struct Cannot {
    /// Where: `table FAMILY NAME chain NAME handle N` and its comment.
    pub rule: String,
    pub why: String,
}

#[derive(Debug, Default)]
struct Outcome {
    accept: Vec<Cube>,
    drop: Vec<Cube>,
    ret: Vec<Cube>,
}

impl Outcome {
    /// The end of a chain: what fell through meets the policy of a base
    /// chain (`Some(drops)`), as what it returned does; a user chain's
    /// returns to its caller.
    fn end(&mut self, policy_drop: Option<bool>, rest: Vec<Cube>) {
        match policy_drop {
            Some(drop) => {
                let ret = std::mem::take(&mut self.ret);
                let to = if drop {
                    &mut self.drop
                } else {
                    &mut self.accept
                };
                to.extend(rest);
                to.extend(ret);
            }
            None => self.ret.extend(rest),
        }
    }
}

/// Walks packets through one namespace's ruleset.
pub struct Walker<'a> {
    pub rs: &'a Ruleset,
    pub links: &'a Links,
    /// The matches reached whose meaning is unknown (taken either way),
    /// with where they are.
    pub unknown: std::cell::RefCell<Vec<String>>,
}

/// The EtherTypes a base chain of `family` sees.
fn family_sees(family: &str) -> Option<Set> {
    match family {
        "ip" => Some(one(ETH_IP)),
        "ip6" => Some(one(ETH_IP6)),
        "inet" => Some(one(ETH_IP) | one(ETH_IP6)),
        "netdev" => Some(Field::EtherType.domain()),
        _ => None,
    }
}

const MAX_DEPTH: usize = 16;

impl Walker<'_> {
    /// What survives every hook of `path`, in order.
    pub fn path(&self, path: crate::Path, mut space: Vec<Cube>) -> Result<Vec<Cube>, Cannot> {
        for hook in path.hooks() {
            space = self.hook(hook, space)?;
            if space.is_empty() {
                break;
            }
        }
        Ok(space)
    }

    /// What survives hook `hook`: every base chain there, in priority
    /// order (netdev chains only where they are bound to the underlay).
    pub fn hook(&self, hook: &str, space: Vec<Cube>) -> Result<Vec<Cube>, Cannot> {
        if let Some(k) = self.rs.netdev_without_devices().into_iter().find(|k| {
            self.rs.chains[k]
                .base
                .as_ref()
                .is_some_and(|b| b.hook == hook)
        }) {
            return Err(Cannot {
                rule: format!("table {} {} chain {}", k.0, k.1, k.2),
                why: "a netdev base chain whose device nft's JSON leaves out (nft before 1.0.7): give nft's text listing too (`nft list ruleset`)".into(),
            });
        }
        let mut chains: Vec<_> = self
            .rs
            .chains
            .values()
            .filter(|c| {
                c.base.as_ref().is_some_and(|b| {
                    b.hook == hook
                        && (c.family != "netdev" || b.devices.contains(&self.links.underlay))
                })
            })
            .collect();
        chains.sort_by_key(|c| c.base.as_ref().map_or(0, |b| b.prio));
        let mut space = space;
        for chain in chains {
            let Some(sees) = family_sees(&chain.family) else {
                continue;
            };
            let base = chain.base.as_ref().expect("filtered on base chains");
            let (mine, others) = Union::one(Constraint::on(Field::EtherType, sees)).split(space);
            if base.kind == "nat" {
                // Only a connection's first packet meets a nat chain, and
                // source NAT changes nothing the question looks at; what
                // would matter (destination NAT) is refused as it is met.
                self.chain(&chain.key(), mine.clone(), 0)?;
                space = [mine, others].concat();
                continue;
            }
            let out = self.chain(&chain.key(), mine, 0)?;
            space = [out.accept, others].concat();
        }
        Ok(space)
    }

    fn note(&self, note: String) {
        let mut u = self.unknown.borrow_mut();
        if !u.contains(&note) {
            u.push(note);
        }
    }

    fn chain(&self, key: &ChainKey, space: Vec<Cube>, depth: usize) -> Result<Outcome, Cannot> {
        let chain = self.rs.chains.get(key).ok_or_else(|| Cannot {
            rule: format!("table {} {}", key.0, key.1),
            why: format!("a jump to chain {} that does not exist", key.2),
        })?;
        if depth > MAX_DEPTH {
            return Err(Cannot {
                rule: format!("table {} {} chain {}", key.0, key.1, key.2),
                why: "jumps nested deeper than 16".into(),
            });
        }
        let compiler = Compiler {
            rs: self.rs,
            links: self.links,
            family: &chain.family,
            table: &chain.table,
            icmpv6: Default::default(),
        };
        let mut out = Outcome::default();
        let mut space = space;
        for rule in &chain.rules {
            if space.is_empty() {
                break;
            }
            let at = || {
                format!(
                    "table {} {} chain {} handle {}{}",
                    chain.family,
                    chain.table,
                    chain.name,
                    rule.handle,
                    rule.comment
                        .as_ref()
                        .map(|c| format!(" ({c:?})"))
                        .unwrap_or_default()
                )
            };
            let mut cur = std::mem::take(&mut space);
            let mut pass = Vec::new();
            let mut ended = false;
            for e in &rule.exprs {
                if cur.is_empty() {
                    break;
                }
                match compiler.op(e) {
                    Op::Match(u) => {
                        let (inside, outside) = u.split(cur);
                        pass.extend(outside);
                        cur = inside;
                    }
                    Op::MatchMaybe { sure, maybe, note } => {
                        let (inside, outside) = sure.split(cur);
                        let (either, rest) = maybe.split(outside);
                        if !either.is_empty() {
                            self.note(format!("{note} at {} taken both to match and not", at()));
                        }
                        pass.extend(rest);
                        pass.extend(either.iter().cloned());
                        cur = [inside, either].concat();
                    }
                    Op::Maybe => pass.extend(cur.iter().cloned()),
                    Op::Unknown(what) => {
                        self.note(format!("{what} at {} taken both to match and not", at()));
                        pass.extend(cur.iter().cloned());
                    }
                    Op::SetField(f, s) => {
                        if f == Field::Mark
                            && chain.base.as_ref().is_some_and(|b| b.hook == "output")
                        {
                            return Err(Cannot {
                                rule: at(),
                                why: "a mark set in the output hook reroutes the packet (not modelled)".into(),
                            });
                        }
                        for c in &mut cur {
                            c.set(f, s.clone());
                        }
                    }
                    Op::Nop => {}
                    Op::Verdict(v) => {
                        self.apply(
                            key,
                            &v,
                            std::mem::take(&mut cur),
                            &mut out,
                            &mut pass,
                            depth,
                        )?;
                        ended = true;
                        break;
                    }
                    Op::Vmap(entries, maybe) => {
                        // Packets whose key is unknowable take every
                        // entry's verdict, and none.
                        let (either, rest) = maybe.split(std::mem::take(&mut cur));
                        if !either.is_empty() {
                            for (_, v) in &entries {
                                self.apply(key, v, either.clone(), &mut out, &mut pass, depth)?;
                            }
                        }
                        cur = [rest, either].concat();
                        for (u, v) in entries {
                            let (inside, outside) = u.split(std::mem::take(&mut cur));
                            self.apply(key, &v, inside, &mut out, &mut pass, depth)?;
                            cur = outside;
                        }
                    }
                    Op::Cannot(why) => return Err(Cannot { rule: at(), why }),
                }
            }
            if !ended {
                pass.extend(cur);
            }
            space = pass;
        }
        out.end(chain.base.as_ref().map(|b| b.policy_drop), space);
        Ok(out)
    }

    fn apply(
        &self,
        key: &ChainKey,
        v: &Verdict,
        cubes: Vec<Cube>,
        out: &mut Outcome,
        pass: &mut Vec<Cube>,
        depth: usize,
    ) -> Result<(), Cannot> {
        if cubes.is_empty() {
            return Ok(());
        }
        match v {
            Verdict::Accept => out.accept.extend(cubes),
            Verdict::Drop => out.drop.extend(cubes),
            Verdict::Continue => pass.extend(cubes),
            Verdict::Return => out.ret.extend(cubes),
            Verdict::Jump(t) | Verdict::Goto(t) => {
                let target = (key.0.clone(), key.1.clone(), t.clone());
                let sub = self.chain(&target, cubes, depth + 1)?;
                out.accept.extend(sub.accept);
                out.drop.extend(sub.drop);
                if matches!(v, Verdict::Jump(_)) {
                    pass.extend(sub.ret);
                } else {
                    out.ret.extend(sub.ret);
                }
            }
        }
        Ok(())
    }
}
