// The proxy's own schema (`zt_proxy`), on its own migration track (host/common/migrations.ts):
// sessions, consumed login states, CLI hand-off codes, assertion signing keys, tunnel byte
// counts. Never the audit trail's tables.
import type { MigrationTrack } from "../../common/migrations.js";

export const PROXY_SCHEMA = "zt_proxy";

export const PROXY_TRACK: MigrationTrack = {
  schema: PROXY_SCHEMA,
  label: "proxy",
  migrations: [
    {
      version: 1,
      name: "sessions",
      sql: `
CREATE TABLE zt_proxy.sessions (
  -- sha256 of the opaque session id: the id itself (cookie, CLI token) is never stored.
  id_hash bytea PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('browser', 'cli')),
  -- The public host a browser session's cookie belongs to (cookies are host-only).
  host text NOT NULL,
  -- A CLI session made from a browser session ends with it.
  parent_hash bytea NULL,
  subject text NOT NULL,
  email text NULL,
  roles jsonb NOT NULL,
  amr jsonb NOT NULL,
  acr text NULL,
  auth_time timestamptz NULL,
  -- The issuer's session id (sid claim): logout ends every session of one sign-in.
  idp_sid text NULL,
  -- ID and refresh tokens, sealed with the proxy secret (never plain text at rest).
  tokens text NULL,
  tokens_expire_at timestamptz NULL,
  incident text NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  idle_expires_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_expires ON zt_proxy.sessions (expires_at);
CREATE INDEX sessions_parent ON zt_proxy.sessions (parent_hash) WHERE parent_hash IS NOT NULL;
CREATE INDEX sessions_idp_sid ON zt_proxy.sessions (idp_sid) WHERE idp_sid IS NOT NULL;
-- Each login state is accepted once: a replayed callback finds its hash here.
CREATE TABLE zt_proxy.used_states (
  state_hash bytea PRIMARY KEY,
  expires_at timestamptz NOT NULL
);
-- One-time codes that hand a CLI its token after a browser login (60 s, PKCE-bound).
CREATE TABLE zt_proxy.cli_codes (
  code_hash bytea PRIMARY KEY,
  session_hash bytea NOT NULL,
  challenge text NOT NULL,
  expires_at timestamptz NOT NULL
);
-- The keys that sign X-Zt-Jwt-Assertion (ES256): the newest signs, the JWKS publishes the
-- newest two, so an upstream that cached the previous key still verifies during a rotation.
CREATE TABLE zt_proxy.signing_keys (
  kid text PRIMARY KEY,
  -- The private JWK, sealed with the proxy secret.
  private_sealed text NOT NULL,
  public_jwk jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
-- Each tunnel's decision is in the audit trail (decision_id); what it carried is here when it closes.
CREATE TABLE zt_proxy.tunnels (
  decision_id uuid PRIMARY KEY,
  route text NOT NULL,
  subject text NOT NULL,
  remote text NULL,
  opened_at timestamptz NOT NULL,
  closed_at timestamptz NULL,
  bytes_up bigint NULL,
  bytes_down bigint NULL,
  close_reason text NULL
);
CREATE INDEX tunnels_opened ON zt_proxy.tunnels (opened_at);
`,
    },
  ],
};
