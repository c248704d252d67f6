//! `leakhound prove`'s arguments: the namespace (or saved state), the
//! underlay and the policy.

use std::path::PathBuf;

use ipnet::IpNet;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("where").required(true).args(["netns", "pid", "container", "ruleset"])))]
pub(crate) struct ProveArgs {
    #[command(flatten)]
    pub(crate) at: super::audit::WhereArgs,
    /// Saved state instead of a live namespace: the output of
    /// `nft -j list ruleset` (with --addresses).
    #[arg(long, value_name = "FILE", requires = "addresses")]
    pub(crate) ruleset: Option<PathBuf>,
    /// With --ruleset: the output of `nft list ruleset`, for the devices of
    /// netdev chains that nft before 1.0.7 leaves out of its JSON.
    #[arg(long, value_name = "FILE", requires = "ruleset")]
    pub(crate) ruleset_text: Option<PathBuf>,
    /// With --ruleset: the output of `ip -j addr`.
    #[arg(long, value_name = "FILE", requires = "ruleset")]
    pub(crate) addresses: Option<PathBuf>,
    /// With --ruleset: whether the namespace forwards (`on`, `off`, `v4`,
    /// `v6`). A live namespace's own switches are read.
    #[arg(
        long,
        value_name = "on|off|v4|v6",
        default_value = "on",
        requires = "ruleset"
    )]
    pub(crate) forwarding: String,
    /// The interface the gateway reaches the network by.
    #[arg(long, value_name = "IFACE", default_value = "eth0")]
    pub(crate) underlay: String,
    /// The VPN endpoint, reached over UDP (repeatable).
    #[arg(long, value_name = "IP:PORT")]
    pub(crate) endpoint: Vec<String>,
    /// A subnet the gateway may reach around the tunnel (repeatable): its
    /// outbound subnets and the LANs it answers.
    #[arg(long, value_name = "CIDR")]
    pub(crate) allow: Vec<IpNet>,
    /// Take the endpoint and the outbound subnets from an env file of
    /// Gluetun's variables (VPN_ENDPOINT_IP, VPN_ENDPOINT_PORT,
    /// FIREWALL_OUTBOUND_SUBNETS); --endpoint and --allow add to it.
    #[arg(long, value_name = "FILE")]
    pub(crate) env: Option<PathBuf>,
}
