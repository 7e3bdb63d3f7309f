// The part of oidc-provider (v8, shipped without types) that the proxy tests' IdP uses.
declare module "oidc-provider" {
  import type { IncomingMessage, ServerResponse } from "node:http";

  interface Grant {
    addOIDCScope(scope: string): void;
    save(): Promise<string>;
  }
  interface GrantConstructor {
    new (init: { clientId: string; accountId: string }): Grant;
    find(id: string): Promise<Grant | undefined>;
  }
  interface Ctx {
    body: unknown;
    oidc: {
      result?: { consent?: { grantId?: string } };
      session?: { accountId?: string; grantIdFor(clientId: string): string | undefined };
      client?: { clientId: string };
      provider: { Grant: GrantConstructor };
    };
  }
  interface Client {
    grantTypeAllowed(type: string): boolean;
  }
  interface Account {
    accountId: string;
    claims(): Promise<Record<string, unknown>>;
  }
  interface Configuration {
    clients: Array<Record<string, unknown>>;
    jwks: { keys: unknown[] };
    cookies: { keys: string[] };
    pkce: { required: () => boolean; methods: string[] };
    acrValues: string[];
    claims: Record<string, string[] | null>;
    scopes: string[];
    conformIdTokenClaims: boolean;
    features: Record<string, unknown>;
    ttl: Record<string, number>;
    issueRefreshToken(ctx: Ctx, client: Client): Promise<boolean>;
    findAccount(ctx: Ctx, sub: string): Promise<Account | undefined>;
    loadExistingGrant(ctx: Ctx): Promise<Grant | undefined>;
    renderError(ctx: Ctx, out: Record<string, unknown>, error: Error): Promise<void>;
  }
  export default class Provider {
    constructor(issuer: string, configuration: Configuration);
    proxy: boolean;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<{ uid: string; params: Record<string, unknown>; prompt: { name: string } }>;
    interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, options?: { mergeWithLastSubmission?: boolean }): Promise<void>;
  }
  export type LogoutSource = (ctx: Ctx, form: string) => Promise<void>;
}
