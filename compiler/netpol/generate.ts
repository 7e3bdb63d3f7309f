// ServiceAccessPolicy -> Kubernetes NetworkPolicy objects for one cluster (docs/netpol.md).
// The contract: every flow the ZT policy allows between this cluster's pods is admitted (no
// false denials at the kernel layer), and every flow admitted beyond the ZT policy, or
// dropped although ZT allows it, is named by a warning. Pure: same input, same output.
import type { PortRange, PolicySet, ServiceAccessPolicy, ServiceRule, ServiceTarget } from "../model.js";
import type { SpiffePattern } from "../spiffe.js";
import { type Box, carve, intersects } from "./boxes.js";
import { ANY, type Dim, describeDim, dimHas, dimKey, intersectPorts, isEmptyDim, normalizePorts, only, portsKey, subtractDim, unionPorts } from "./dims.js";
import { projectPattern, withCluster, type Projection } from "./project.js";
import { namespaceSets, type NamespaceSets } from "./governed.js";
import { infraIngressName, subjectName } from "./names.js";
import { type LabelSelector, selectorFor, tcpPorts } from "./selectors.js";
import type { FlowScope, NetpolOptions, NetpolResult, NetpolWarning, NetworkPolicy } from "./types.js";
import { renderYaml, type ObjectNotes } from "./yaml.js";

type Direction = "ingress" | "egress";

type Peer = { readonly kind: "local"; readonly ns: Dim; readonly sa: Dim } | { readonly kind: "cidr"; readonly cidr: string; readonly cluster: string };

interface PeerEntry {
  readonly peer: Peer;
  ports: PortRange[];
  readonly rules: Set<string>;
}

interface Subject {
  readonly direction: Direction;
  readonly namespace: string;
  readonly sa: Dim;
  readonly peers: Map<string, PeerEntry>;
  readonly notes: Set<string>;
}

/** A rule target with both sides projected, for one rule of the set. */
/** What a CIDR peer admits, as a box over workload IDs (remote namespace and account open). */
interface Projected {
  readonly direction: Direction;
  readonly cluster: string;
  readonly box: Box;
}

interface Grant {
  readonly rule: ServiceRule;
  readonly target: ServiceTarget;
  readonly src: Extract<Projection, { kind: "workloads" }>;
  readonly dst: Extract<Projection, { kind: "workloads" }>;
  readonly ports: PortRange[];
}

const MANAGED_BY = { "app.kubernetes.io/managed-by": "zt" } as const;
const ALL_TCP: readonly PortRange[] = [{ lo: 1, hi: 65535 }];

function peerKey(p: Peer): string {
  return p.kind === "local" ? `local|${dimKey(p.ns)}|${dimKey(p.sa)}` : `cidr|${p.cidr}`;
}

/** `in [a, b]` -> [in [a], in [b]]: one object / peer per named workload, as in the seed. */
function splitDim(d: Dim): Dim[] {
  return d.kind === "in" ? d.values.map((v) => only(v)) : [d];
}

function portText(ports: readonly PortRange[]): string {
  return ports.map((r) => (r.lo === r.hi ? `${r.lo}` : `${r.lo}-${r.hi}`)).join(", ");
}

function serviceRules(set: PolicySet): Array<{ policy: ServiceAccessPolicy; rule: ServiceRule }> {
  const out: Array<{ policy: ServiceAccessPolicy; rule: ServiceRule }> = [];
  for (const p of set.policies) if (p.kind === "ServiceAccessPolicy") for (const r of p.rules) out.push({ policy: p, rule: r });
  return out;
}

class Generator {
  private readonly subjects = new Map<string, Subject>();
  private readonly warnings: NetpolWarning[] = [];
  private readonly warned = new Set<string>();
  private readonly namespaces: NamespaceSets;
  /** Every namespace a pattern names literally for this cluster, system ones aside (governed.ts). */
  readonly governed: ReadonlySet<string>;

  constructor(
    private readonly set: PolicySet,
    private readonly o: NetpolOptions,
  ) {
    this.namespaces = namespaceSets(set, o.trustDomain, o.cluster, o.systemNamespaces);
    this.governed = new Set(this.namespaces.governed);
  }

  private warn(w: NetpolWarning): void {
    const key = `${w.code}|${w.rule}|${w.message}|${JSON.stringify(w.scope)}`;
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.warnings.push(w);
  }

  private isLocal(p: Projection): p is Extract<Projection, { kind: "workloads" }> {
    return p.kind === "workloads" && dimHas(p.cluster, this.o.cluster);
  }

  run(): NetpolResult {
    const grants: Grant[] = [];
    for (const { rule } of serviceRules(this.set)) {
      const src = projectPattern(rule.from, this.o.trustDomain);
      for (const target of rule.to) {
        const dst = projectPattern(target.spiffe, this.o.trustDomain);
        const touchesCluster = this.isLocal(src) || this.isLocal(dst);
        this.noteUnmappable(rule, rule.from, src, dst);
        this.noteUnmappable(rule, target.spiffe, dst, src);
        if (src.kind !== "workloads" || dst.kind !== "workloads") continue;
        if (touchesCluster) {
          if (src.globstar) this.noteGlobstar(rule, rule.from);
          if (dst.globstar) this.noteGlobstar(rule, target.spiffe);
        }
        // TCP port 0 cannot be named in a NetworkPolicy and carries no connection.
        const ports = intersectPorts(normalizePorts(target.ports), ALL_TCP);
        if (ports.length === 0) continue;
        grants.push({ rule, target, src, dst, ports });
      }
    }

    // Carve DENY out of ALLOW on workload IDs first, then project each piece onto what a
    // NetworkPolicy can express: local <-> local exactly, a remote side as its whole CIDR.
    const boxes0: Box[] = grants.map((g, origin) => ({
      srcCluster: g.src.cluster,
      dstCluster: g.dst.cluster,
      srcNs: g.src.ns,
      srcSa: g.src.sa,
      dstNs: g.dst.ns,
      dstSa: g.dst.sa,
      ports: g.ports,
      rule: g.rule.id,
      origin,
    }));
    const denyBoxes = boxes0.filter((b) => grants[b.origin]!.rule.action === "DENY");
    const { boxes, carvedBy } = carve(
      boxes0.filter((b) => grants[b.origin]!.rule.action === "ALLOW"),
      denyBoxes,
    );
    const here = only(this.o.cluster);
    const projected: Projected[] = [];
    for (const b of boxes) {
      const g = grants[b.origin]!;
      const srcLocal = dimHas(b.srcCluster, this.o.cluster);
      const dstLocal = dimHas(b.dstCluster, this.o.cluster);
      if (srcLocal && dstLocal) {
        for (const sa of splitDim(b.dstSa))
          for (const ns of this.subjectNamespaces(b.dstNs))
            for (const pns of splitDim(b.srcNs)) for (const psa of splitDim(b.srcSa)) this.admit("ingress", ns, sa, { kind: "local", ns: pns, sa: psa }, b.ports, b.rule);
        for (const sa of splitDim(b.srcSa))
          for (const ns of this.subjectNamespaces(b.srcNs))
            for (const pns of splitDim(b.dstNs)) for (const psa of splitDim(b.dstSa)) this.admit("egress", ns, sa, { kind: "local", ns: pns, sa: psa }, b.ports, b.rule);
      }
      const srcRemote = subtractDim(b.srcCluster, here);
      const dstRemote = subtractDim(b.dstCluster, here);
      if (dstLocal && !isEmptyDim(srcRemote)) projected.push(...this.crossCluster(g, b, "ingress", srcRemote));
      if (srcLocal && !isEmptyDim(dstRemote)) projected.push(...this.crossCluster(g, b, "egress", dstRemote));
    }
    for (const [rule, denies] of carvedBy) this.noteSubjects(rule, `${rule}: DENY ${[...denies].sort().join(", ")} carved out (NotIn selectors / split port ranges)`);
    for (const d of denyBoxes) for (const p of projected) if (intersects(p.box, d)) this.remoteDeny(grants[d.origin]!, d, p);
    this.noteRollout();
    this.noteSystemNamespaces();
    this.noteTcpOnly(grants);
    // Stable, file order: the order they are found in depends on which pass found them.
    this.warnings.sort((a, b) => (a.at.file < b.at.file ? -1 : a.at.file > b.at.file ? 1 : a.at.line - b.at.line || a.at.col - b.at.col));

    const { objects, notes } = this.objects();
    const header = this.header();
    return { objects, warnings: this.warnings, yaml: renderYaml(header, objects, notes), namespaces: [...this.governed].sort() };
  }

  private subjectNamespaces(d: Dim): string[] {
    // A wildcard namespace can only be expanded to the namespaces the policy names: the
    // objects are namespaced and the rest of the cluster is unknown here (docs/netpol.md).
    return [...this.governed].sort().filter((ns) => dimHas(d, ns));
  }

  private subject(direction: Direction, namespace: string, sa: Dim): Subject {
    const key = `${namespace}|${direction}|${dimKey(sa)}`;
    let s = this.subjects.get(key);
    if (!s) this.subjects.set(key, (s = { direction, namespace, sa, peers: new Map(), notes: new Set() }));
    return s;
  }

  private admit(direction: Direction, namespace: string, sa: Dim, peer: Peer, ports: readonly PortRange[], rule: string): void {
    const s = this.subject(direction, namespace, sa);
    const k = peerKey(peer);
    const e = s.peers.get(k);
    if (e) {
      e.ports = unionPorts(e.ports, ports);
      e.rules.add(rule);
    } else s.peers.set(k, { peer, ports: [...ports], rules: new Set([rule]) });
  }

  private noteSubjects(rule: string, note: string): void {
    for (const s of this.subjects.values()) if ([...s.peers.values()].some((e) => e.rules.has(rule))) s.notes.add(note);
  }

  /**
   * The remote side of a carved box: admitted by the configured clusters' CIDRs (widening,
   * warned), dropped for clusters without one (narrowing, warned). Returns what the CIDR
   * peers admit, as boxes, for the DENY check.
   */
  private crossCluster(g: Grant, b: Box, direction: Direction, remoteDim: Dim): Projected[] {
    const localNs = direction === "ingress" ? b.dstNs : b.srcNs;
    const localSa = direction === "ingress" ? b.dstSa : b.srcSa;
    const td = this.o.trustDomain;
    const localText = withCluster(direction === "ingress" ? g.target.spiffe : g.rule.from, this.o.cluster);
    const remotePattern = direction === "ingress" ? g.rule.from : g.target.spiffe;
    const configured = Object.keys(this.o.remoteCidrs)
      .filter((c) => c !== this.o.cluster && dimHas(remoteDim, c) && (this.o.remoteCidrs[c]?.length ?? 0) > 0)
      .sort();
    const what =
      direction === "ingress" ? `source ${g.rule.from.text} of ${g.target.spiffe.text}` : `destination ${g.target.spiffe.text} of ${g.rule.from.text}`;
    const out: Projected[] = [];
    for (const cluster of configured) {
      const cidrs = this.o.remoteCidrs[cluster]!;
      for (const sa of splitDim(localSa))
        for (const ns of this.subjectNamespaces(localNs))
          for (const cidr of cidrs) this.admit(direction, ns, sa, { kind: "cidr", cidr, cluster }, b.ports, g.rule.id);
      const local = { cluster: only(this.o.cluster), ns: localNs, sa: localSa };
      const remote = { cluster: only(cluster), ns: ANY, sa: ANY };
      const [src, dst] = direction === "ingress" ? [remote, local] : [local, remote];
      out.push({
        direction,
        cluster,
        box: { srcCluster: src.cluster, srcNs: src.ns, srcSa: src.sa, dstCluster: dst.cluster, dstNs: dst.ns, dstSa: dst.sa, ports: b.ports, rule: g.rule.id, origin: b.origin },
      });
      const everyPod = `spiffe://${td}/${cluster}/**`;
      const message =
        `${what} is in cluster ${cluster} (traffic crosses the WireGuard gateway): mirrored as ${direction} ` +
        `${direction === "ingress" ? "from" : "to"} ${cluster}'s pod CIDR ${cidrs.join(", ")} on TCP ${portText(g.ports)}, ` +
        `which admits every pod of ${cluster}, not only ${remotePattern.text}`;
      this.warn({
        code: "cross-cluster",
        effect: "widens",
        rule: g.rule.id,
        at: g.rule.at,
        message,
        scope: [direction === "ingress" ? { source: everyPod, destination: localText, ports: g.ports } : { source: localText, destination: everyPod, ports: g.ports }],
      });
      this.noteSubjects(g.rule.id, `${g.rule.id}: cross-cluster ${direction} with ${cluster} by CIDR (warning: cross-cluster)`);
    }
    const unmapped: FlowScope[] = [];
    const names: string[] = [];
    if (remoteDim.kind === "in") {
      for (const c of remoteDim.values) {
        if (configured.includes(c)) continue;
        names.push(c);
        const remoteText = withCluster(remotePattern, c);
        unmapped.push(direction === "ingress" ? { source: remoteText, destination: localText, ports: g.ports } : { source: localText, destination: remoteText, ports: g.ports });
      }
    } else {
      const except = [...new Set([this.o.cluster, ...remoteDim.values, ...configured])].sort();
      names.push(`any cluster but ${except.join(", ")}`);
      unmapped.push(
        direction === "ingress"
          ? { source: remotePattern.text, destination: localText, ports: g.ports, sourceClustersExcept: except }
          : { source: localText, destination: remotePattern.text, ports: g.ports, destinationClustersExcept: except },
      );
    }
    if (unmapped.length > 0) {
      this.warn({
        code: "cluster-unmapped",
        effect: "narrows",
        rule: g.rule.id,
        at: g.rule.at,
        message: `${what} reaches ${names.join(", ")} through the WireGuard gateway, but no --remote-cidr is given for it: the kernel layer drops this traffic (TCP ${portText(g.ports)})`,
        scope: unmapped,
      });
    }
    return out;
  }

  /** A DENY that a CIDR allowance re-admits: NetworkPolicy cannot carve a pod out of a CIDR. */
  private remoteDeny(d: Grant, box: Box, p: Projected): void {
    const ports = intersectPorts(box.ports, p.box.ports);
    const remoteText = withCluster(p.direction === "ingress" ? d.rule.from : d.target.spiffe, p.cluster);
    const localText = withCluster(p.direction === "ingress" ? d.target.spiffe : d.rule.from, this.o.cluster);
    this.warn({
      code: "deny-not-mirrored",
      effect: "widens",
      rule: d.rule.id,
      at: d.rule.at,
      message:
        `DENY ${p.direction === "ingress" ? `from ${remoteText} to ${localText}` : `from ${localText} to ${remoteText}`} falls inside ` +
        `${p.cluster}'s CIDR allowance (${p.box.rule}): NetworkPolicy cannot carve a pod out of a CIDR, so the kernel layer admits it (TCP ${portText(ports)})`,
      scope: [p.direction === "ingress" ? { source: remoteText, destination: localText, ports } : { source: localText, destination: remoteText, ports }],
    });
  }

  private noteUnmappable(rule: ServiceRule, pattern: SpiffePattern, p: Projection, other: Projection): void {
    if (p.kind !== "none" || rule.action !== "ALLOW" || !this.isLocal(other)) return;
    this.warn({
      code: p.code,
      effect: "narrows",
      rule: rule.id,
      at: rule.at,
      message: `${pattern.text} names no pod of cluster ${this.o.cluster}: ${p.reason}; nothing is admitted for it at the kernel layer`,
      scope: [],
    });
  }

  private noteGlobstar(rule: ServiceRule, pattern: SpiffePattern): void {
    this.warn({
      code: "globstar",
      effect: "narrows",
      rule: rule.id,
      at: rule.at,
      message: `${pattern.text}: "**" is mirrored only for workload IDs (<cluster>/<namespace>/<service-account>); the longer IDs it also matches name no pod and are not admitted`,
      scope: [],
    });
  }

  private noteRollout(): void {
    for (const p of this.set.policies) {
      if (p.kind !== "ServiceAccessPolicy") continue;
      for (const e of p.rollout) {
        if (e.mode !== "observe") continue;
        const proj = projectPattern(e.destination, this.o.trustDomain);
        if (!this.isLocal(proj)) continue;
        this.warn({
          code: "observe-rollout",
          effect: "none",
          rule: `${p.name}/rollout`,
          at: e.at,
          message: `${e.destination.text} is in observe mode: ZT only logs its denials, but these NetworkPolicies enforce them; apply them for it once it is enforced`,
          scope: [],
        });
      }
    }
  }

  /** A system namespace the policy names: never isolated (docs/netpol.md, System namespaces). */
  private noteSystemNamespaces(): void {
    for (const { namespace, rule } of this.namespaces.systemNamed) {
      this.warn({
        code: "system-namespace",
        effect: "none",
        rule: rule.id,
        at: rule.at,
        message: `${namespace} is a system namespace: its pods are never isolated (a default deny there would cut every pod's DNS), so what the policy says about them is mirrored on the other end only`,
        scope: [],
      });
    }
  }

  /**
   * ZT decides by port, whatever the protocol; the objects admit TCP only, so UDP and SCTP to
   * the ports the policy allows are dropped. One warning for the whole output, naming the ports.
   */
  private noteTcpOnly(grants: readonly Grant[]): void {
    const admitted = [...this.subjects.values()].some((s) => s.peers.size > 0);
    const allows = grants.filter((g) => g.rule.action === "ALLOW" && (this.isLocal(g.src) || this.isLocal(g.dst)));
    if (!admitted || allows.length === 0) return;
    const ports = allows.reduce<PortRange[]>((acc, g) => unionPorts(acc, g.ports), []);
    const rules = new Set(allows.map((g) => g.rule.id));
    this.warn({
      code: "udp-not-mirrored",
      effect: "narrows",
      rule: allows[0]!.rule.id,
      at: allows[0]!.rule.at,
      message: `ZT allows these ports whatever the protocol, but the objects admit TCP only: UDP and SCTP to ${portText(ports)} (${rules.size} rule${rules.size === 1 ? "" : "s"}) are dropped at the kernel layer`,
      scope: allows.map((g) => ({ source: g.rule.from.text, destination: g.target.spiffe.text, ports: g.ports, protocols: ["UDP", "SCTP"] })),
    });
  }

  private header(): string[] {
    const names = this.set.policies.filter((p) => p.kind === "ServiceAccessPolicy").map((p) => p.name);
    const lines = [
      `Generated by \`zt netpol\` from ServiceAccessPolicy ${names.join(", ") || "(none)"}; do not edit: regenerate.`,
      `cluster ${this.o.cluster}, trust domain ${this.o.trustDomain}; pods by label ${this.o.podLabel}=<service-account>, namespaces by ${this.o.namespaceLabel}.`,
      `Governed namespaces (every namespace the policy names for this cluster): ${[...this.governed].sort().join(", ") || "(none)"}; pods in other namespaces are not isolated by these objects.`,
      `System namespaces, never isolated (DNS lives there): ${this.o.systemNamespaces.join(", ")}${this.namespaces.systemNamed.length > 0 ? `; named by the policy: ${this.namespaces.systemNamed.map((s) => s.namespace).join(", ")}, mirrored on the other end only` : ""}.`,
    ];
    if (this.warnings.some((w) => w.code === "udp-not-mirrored")) {
      lines.push("Protocols: TCP only. ZT decides by port whatever the protocol: UDP and SCTP to the ports it allows are not admitted (warning udp-not-mirrored).");
    }
    for (const w of this.warnings) lines.push(`warning [${w.code}] ${w.rule}: ${w.message}`);
    return lines;
  }

  private objects(): { objects: NetworkPolicy[]; notes: ObjectNotes[] } {
    const built: Array<{ obj: NetworkPolicy; notes: ObjectNotes; order: string }> = [];
    for (const ns of [...this.governed].sort()) {
      built.push({
        order: `${ns}|0`,
        obj: {
          apiVersion: "networking.k8s.io/v1",
          kind: "NetworkPolicy",
          metadata: { name: "zt-default-deny", namespace: ns, labels: { ...MANAGED_BY } },
          spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"] },
        },
        notes: { header: [`Default deny (ZT defaultAction: DENY): every pod in ${ns} is isolated for ingress and egress.`], rules: [] },
      });
      if (this.o.infraEgress.length > 0) {
        built.push({
          order: `${ns}|1`,
          obj: {
            apiVersion: "networking.k8s.io/v1",
            kind: "NetworkPolicy",
            metadata: { name: "zt-infra-egress", namespace: ns, labels: { ...MANAGED_BY } },
            spec: {
              podSelector: {},
              policyTypes: ["Egress"],
              egress: this.o.infraEgress.map((i) => ({
                to: [{ namespaceSelector: { matchLabels: { [this.o.namespaceLabel]: i.namespace } }, podSelector: { matchLabels: { ...i.podLabels } } }],
                ports: i.ports.map((p) => ({ protocol: p.protocol, port: p.port })),
              })),
            },
          },
          notes: { header: ["Infrastructure egress every workload needs and ZT does not mediate."], rules: this.o.infraEgress.map((i) => [i.name]) },
        });
      }
      // An infrastructure target in a governed namespace (the ZT engine in hanzo): its pods are
      // isolated by the default deny above, and every pod of the cluster must still reach them.
      for (const i of this.o.infraEgress.filter((e) => e.namespace === ns)) {
        const name = infraIngressName(i.name);
        built.push({
          order: `${ns}|1|${name}`,
          obj: {
            apiVersion: "networking.k8s.io/v1",
            kind: "NetworkPolicy",
            metadata: { name, namespace: ns, labels: { ...MANAGED_BY } },
            spec: {
              podSelector: { matchLabels: { ...i.podLabels } },
              policyTypes: ["Ingress"],
              ingress: [{ from: [{ namespaceSelector: {} }], ports: i.ports.map((p) => ({ protocol: p.protocol, port: p.port })) }],
            },
          },
          notes: { header: [`Infrastructure ingress: every pod of the cluster reaches ${i.name} (the default deny of ${ns} would isolate it).`], rules: [[i.name]] },
        });
      }
    }
    const names = this.subjectNames();
    for (const s of this.subjects.values()) {
      const name = names.get(s)!;
      // Group peers with the same ports into one rule (the seed's postgres-ingress shape).
      const byPorts = new Map<string, { ports: PortRange[]; entries: PeerEntry[] }>();
      for (const e of s.peers.values()) {
        const k = portsKey(e.ports);
        const g = byPorts.get(k);
        if (g) g.entries.push(e);
        else byPorts.set(k, { ports: e.ports, entries: [e] });
      }
      const rules = [...byPorts.values()].map((g) => ({
        peers: g.entries.map((e) => this.peer(e.peer, s.namespace)),
        ports: tcpPorts(g.ports),
        comment: [...new Set(g.entries.flatMap((e) => [...e.rules]))].join(", "),
      }));
      const ruleIds = [...new Set([...s.peers.values()].flatMap((e) => [...e.rules]))];
      const subjectId = `spiffe://${this.o.trustDomain}/${this.o.cluster}/${s.namespace}/${describeDim(s.sa)}`;
      const header = [
        `${subjectId}: ${s.direction} the ZT policy allows (${ruleIds.join(", ")}), TCP only.`,
        ...[...s.notes].sort(),
      ];
      const spec: NonNullable<NetworkPolicy["spec"]> =
        s.direction === "ingress"
          ? { podSelector: selectorFor(this.o.podLabel, s.sa), policyTypes: ["Ingress"], ingress: rules.map((r) => ({ from: r.peers, ports: r.ports })) }
          : { podSelector: selectorFor(this.o.podLabel, s.sa), policyTypes: ["Egress"], egress: rules.map((r) => ({ to: r.peers, ports: r.ports })) };
      built.push({
        order: `${s.namespace}|2|${name}`,
        obj: { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace: s.namespace, labels: { ...MANAGED_BY } }, spec },
        notes: { header, rules: rules.map((r) => [r.comment]) },
      });
    }
    built.sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0));
    const seen = new Set<string>();
    for (const b of built) {
      const id = `${b.obj.metadata!.namespace}/${b.obj.metadata!.name}`;
      if (seen.has(id)) throw new Error(`internal error: two NetworkPolicies named ${id}`);
      seen.add(id);
    }
    return { objects: built.map((b) => b.obj), notes: built.map((b) => b.notes) };
  }

  /**
   * Names for the subjects: the short form, unless two subjects of one namespace would share
   * it (a 40-bit hash collision), in which case both take the whole hash.
   */
  private subjectNames(): Map<Subject, string> {
    const byName = new Map<string, Subject[]>();
    for (const s of this.subjects.values()) {
      const key = `${s.namespace}/${subjectName(s.direction, s.sa)}`;
      byName.set(key, [...(byName.get(key) ?? []), s]);
    }
    const out = new Map<Subject, string>();
    for (const group of byName.values()) for (const s of group) out.set(s, subjectName(s.direction, s.sa, group.length > 1));
    return out;
  }

  private peer(p: Peer, subjectNs: string): { podSelector?: LabelSelector; namespaceSelector?: LabelSelector; ipBlock?: { cidr: string } } {
    if (p.kind === "cidr") return { ipBlock: { cidr: p.cidr } };
    const podSelector = selectorFor(this.o.podLabel, p.sa);
    // Same namespace as the object: a bare podSelector, as in the seed.
    if (p.ns.kind === "in" && p.ns.values.length === 1 && p.ns.values[0] === subjectNs) return { podSelector };
    return { namespaceSelector: selectorFor(this.o.namespaceLabel, p.ns), podSelector };
  }
}

export function generateNetworkPolicies(set: PolicySet, opts: NetpolOptions): NetpolResult {
  return new Generator(set, opts).run();
}

