/**
 * The nftables table of one bridge, family inet (IPv4 and IPv6 in one table): `inet manifold` for
 * the default bridge, `inet manifold-NAME` for any other, so bridges never share or remove each
 * other's rules.
 *
 * - chain input: what a dyno may open to the host. A host service bound to 0.0.0.0 or :: would
 *   otherwise be reachable from every dyno through the bridge's gateway, through every other host
 *   address (routed to the host, which owns them all) and through the bridge's IPv6 link-local
 *   address (a dyno's eth0 gets one of its own, so link-local needs no route). Packets arriving
 *   on the bridge are refused unless they belong to a connection the host opened (the router and
 *   the port check connect *to* dynos) or a host service the options open: DNS on the gateway,
 *   when the host serves it there. Refused, not dropped: a dyno's connect fails at once instead of
 *   hanging until its own timeout.
 * - chain host-services: the ports opened on the host (DNS); filled only by an ensure() asked for
 *   them, never emptied by one that was not (a `dyno run` on the daemon's bridge), like NAT.
 * - chain postrouting: masquerade of the bridge's subnet, when NAT is on.
 */

export interface BridgeRules {
  bridge: string;
  table: string;
  /** IPv4 subnet in CIDR form. */
  subnet: string;
  gateway: string;
  nat: boolean;
  hostDns: boolean;
}

/** An `nft -f` script (one transaction: the rules change at once, never half loaded) for a bridge's table. */
export function bridgeRuleset(r: BridgeRules): string {
  const t = `inet ${r.table}`;
  const from = `iifname "${r.bridge}"`;
  const lines = [
    `add table ${t}`,
    `add chain ${t} input { type filter hook input priority filter; policy accept; }`,
    `add chain ${t} host-services`,
    `flush chain ${t} input`,
    `add rule ${t} input ${from} ct state established,related accept`,
    `add rule ${t} input ${from} jump host-services`,
    `add rule ${t} input ${from} reject with icmpx type admin-prohibited`,
  ];
  if (r.hostDns) {
    lines.push(
      `flush chain ${t} host-services`,
      `add rule ${t} host-services ip daddr ${r.gateway} udp dport 53 accept`,
      `add rule ${t} host-services ip daddr ${r.gateway} tcp dport 53 accept`,
    );
  }
  if (r.nat) {
    lines.push(
      // earlier versions kept the masquerade in a table of family ip by the same name: replaced here
      `add table ip ${r.table}`,
      `delete table ip ${r.table}`,
      `add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
      `flush chain ${t} postrouting`,
      `add rule ${t} postrouting ip saddr ${r.subnet} oifname != "${r.bridge}" masquerade`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** An `nft -f` script removing a bridge's table, and one of family ip left by an earlier version. */
export function removeBridgeRuleset(table: string): string {
  return [`add table inet ${table}`, `delete table inet ${table}`, `add table ip ${table}`, `delete table ip ${table}`, ''].join('\n');
}
