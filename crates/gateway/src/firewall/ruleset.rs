//! The kill switch as the kernel will hold it: the policy's base chains
//! and rules lowered by `leakhound_nft::nfnl` into the gateway's two tables
//! ([`TABLES`]), and, with FIREWALL_DEBUG, a last rule per filter chain
//! that counts and logs what its policy drops. What [`super::apply`] sends
//! and reads back.

use leakhound_nft::nfnl::{self, Expr, KChain, KRule, Ruleset};
use leakhound_nft::rules::Hook;

use super::policy::{FirewallPolicy, TABLES};

impl FirewallPolicy {
    /// The kernel ruleset of this policy.
    pub fn ruleset(&self) -> Ruleset {
        let chains = self
            .hooks()
            .into_iter()
            .map(|h| {
                KChain::base(
                    TABLES,
                    h,
                    (h == Hook::Egress).then(|| self.underlay.clone()),
                )
            })
            .collect();
        let mut rules = nfnl::kernel_rules(TABLES, &self.rules(), self.debug);
        if self.debug {
            for h in [Hook::Input, Hook::Output, Hook::Forward, Hook::Egress] {
                let (family, table) = TABLES.of(h);
                rules.push((
                    family,
                    table,
                    KRule {
                        chain: h.chain(),
                        comment: "debug: count and log what the policy drops".into(),
                        exprs: vec![
                            Expr::Counter,
                            Expr::Log {
                                prefix: format!("leakhound-drop-{}: ", h.chain()),
                            },
                        ],
                    },
                ));
            }
        }
        Ruleset {
            tables: TABLES,
            chains,
            rules,
        }
    }
}

#[cfg(test)]
mod tests {
    use leakhound_nft::nfnl::*;

    use super::super::policy::tests::seed_policy;

    fn rules_in<'a>(rs: &'a Ruleset, chain: &str) -> Vec<&'a KRule> {
        rs.rules
            .iter()
            .map(|(_, _, r)| r)
            .filter(|r| r.chain == chain)
            .collect()
    }

    #[test]
    fn lists_become_one_rule_per_item_with_the_same_comment() {
        let rs = seed_policy().ruleset();
        let admin: Vec<_> = rules_in(&rs, "input")
            .into_iter()
            .filter(|r| r.comment == "tcp [8080, 9696, 6789] from 192.168.10.0/24")
            .collect();
        assert_eq!(admin.len(), 3);
        let ports: Vec<Vec<u8>> = admin
            .iter()
            .map(|r| match &r.exprs[r.exprs.len() - 2] {
                Expr::Cmp { data, .. } => data.clone(),
                e => panic!("{e:?}"),
            })
            .collect();
        assert_eq!(
            ports,
            vec![
                8080u16.to_be_bytes().to_vec(),
                9696u16.to_be_bytes().to_vec(),
                6789u16.to_be_bytes().to_vec()
            ]
        );
        // Every rule ends in its verdict.
        for (_, _, r) in &rs.rules {
            assert!(
                matches!(
                    r.exprs.last(),
                    Some(Expr::Verdict(_) | Expr::Reject { .. } | Expr::Redir)
                ),
                "{r:?}"
            );
        }
    }

    #[test]
    fn addresses_carry_their_protocol_and_prefixes_their_mask() {
        let rs = seed_policy().ruleset();
        // 192.168.10.0/24 in inet: nfproto ipv4, 3 bytes of saddr.
        let admin = rules_in(&rs, "input")
            .into_iter()
            .find(|r| r.comment.ends_with("192.168.10.0/24"))
            .unwrap();
        assert!(admin.exprs.windows(4).any(|w| w
            == [
                Expr::Meta { key: META_NFPROTO },
                Expr::Cmp {
                    op: CMP_EQ,
                    data: vec![NFPROTO_IPV4]
                },
                Expr::Payload {
                    base: PAYLOAD_NETWORK,
                    offset: 12,
                    len: 3
                },
                Expr::Cmp {
                    op: CMP_EQ,
                    data: vec![192, 168, 10]
                },
            ]));
        // fe80::/10 on egress (netdev): ether protocol IPv6, a mask.
        let ll = rules_in(&rs, "egress")
            .into_iter()
            .find(|r| r.comment == "icmpv6 link housekeeping")
            .unwrap();
        assert_eq!(
            ll.exprs[..2],
            [
                Expr::Meta { key: META_PROTOCOL },
                Expr::Cmp {
                    op: CMP_EQ,
                    data: vec![0x86, 0xdd]
                }
            ]
        );
        assert!(ll.exprs.contains(&Expr::Bitwise {
            mask: {
                let mut m = vec![0u8; 16];
                m[0] = 0xff;
                m[1] = 0xc0;
                m
            }
        }));
        // and the ICMPv6 type after its layer 4 dependency.
        assert!(ll.exprs.contains(&Expr::Meta { key: META_L4PROTO }));
    }

    #[test]
    fn rejects_answer_in_the_rules_own_protocol() {
        let rs = seed_policy().ruleset();
        let out = rules_in(&rs, "output");
        let r = |c: &str| out.iter().find(|r| r.comment == c).unwrap().exprs.clone();
        assert_eq!(
            r("no other dns (udp 53)").last(),
            Some(&Expr::Reject {
                kind: REJECT_ICMPX_UNREACH,
                code: 1
            })
        );
        assert_eq!(
            r("no dns over https (ipv4 tcp 443)").last(),
            Some(&Expr::Reject {
                kind: REJECT_ICMP_UNREACH,
                code: 3
            })
        );
        assert_eq!(
            r("no dns over https (ipv6 udp 443)").last(),
            Some(&Expr::Reject {
                kind: REJECT_ICMP_UNREACH,
                code: 4
            })
        );
    }

    #[test]
    fn the_batch_is_framed_and_every_message_asks_for_an_ack() {
        let rs = seed_policy().ruleset();
        let (bytes, acked) = rs.batch(100);
        let msgs = replies(&bytes).unwrap();
        assert_eq!(msgs.first().unwrap().ty, NFNL_MSG_BATCH_BEGIN);
        assert_eq!(msgs.last().unwrap().ty, NFNL_MSG_BATCH_END);
        let inner = &msgs[1..msgs.len() - 1];
        assert_eq!(inner.len(), 6 + rs.chains.len() + rs.rules.len());
        assert_eq!(acked.len(), inner.len());
        assert!(inner.iter().all(|m| m.flags & NLM_F_ACK != 0));
        let seqs: Vec<u32> = inner.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, acked.iter().map(|(s, _)| *s).collect::<Vec<_>>());
        assert!(acked.last().unwrap().1.starts_with("adding rule"));
        // Each rule decodes back to its table, chain, comment and exprs.
        let rules: Vec<DumpedRule> = inner.iter().filter_map(decode_rule).collect();
        assert_eq!(rules.len(), rs.rules.len());
        for (d, (_, table, r)) in rules.iter().zip(&rs.rules) {
            assert_eq!(d.table, *table);
            assert_eq!(d.chain, r.chain);
            assert_eq!(d.comment.as_deref(), Some(r.comment.as_str()));
            let want = expected_raw(r);
            assert_eq!(d.exprs.len(), want.len());
            assert!(want.iter().zip(&d.exprs).all(|(w, g)| same_expr(w, g)));
        }
        let chains: Vec<DumpedChain> = inner.iter().filter_map(decode_chain).collect();
        assert_eq!(chains.len(), 4);
        assert!(chains.iter().all(|c| c.policy == Some(NF_DROP)));
    }

    #[test]
    fn a_changed_expression_is_not_the_same() {
        let rs = seed_policy().ruleset();
        let r = &rs.rules[0].2;
        let want = expected_raw(r);
        let mut other = r.clone();
        other.exprs[1] = Expr::Cmp {
            op: CMP_EQ,
            data: ifname("eth0"),
        };
        let got = expected_raw(&other);
        assert!(!same_expr(&want[1], &got[1]));
        assert!(same_expr(&want[0], &got[0]));
    }
}
