// Policy documents as tests write them through the API: one ServiceAccessPolicy with one rule.
export const HANZO = "spiffe://hanzo.ai/hanzo-k8s/hanzo/";

/** `name` lets `from` reach `to` on `port` (workload names under HANZO), rule `r`. */
export function servicePolicy(name: string, from: string, to: string, port: number): string {
  return `apiVersion: zt.hanzo.ai/v1
kind: ServiceAccessPolicy
metadata:
  name: ${name}
spec:
  rules:
    - name: r
      from:
        spiffe: "${HANZO}${from}"
      to:
        - spiffe: "${HANZO}${to}"
          ports: [${port}]
  defaultAction: DENY
`;
}
