// The OAuth2 authorization server keyward's token tests run against:
// oidc-provider (pinned in package-lock.json, installed by ../oauth.sh) with
// the client_credentials grant, introspection, revocation, private_key_jwt
// and mutual-TLS client authentication, and the authorization-code grant
// with rotating refresh tokens (each used refresh token is consumed; using
// it again revokes the whole grant, as oidc-provider does). Its login and
// consent interactions approve at once, as user "keyward-test-user", so a
// test obtains a first refresh token with plain HTTP requests.
//
// Usage: OIDC_PROVIDER=ENTRY node server.mjs PORT CLIENTS_JSON [TLS_PORT TLS_DIR]
// ENTRY is the module's entry file (oauth.sh prints it). CLIENTS_JSON holds
// [{"client_id": …, "client_secret": …, "auth": METHOD, "refresh_reuse_grace":
// SECONDS, …}, …] (any other client metadata, such as jwks or
// tls_client_auth_san_dns, passes through)
// and is re-read on every lookup, so a test rotates a client's credentials at
// the server by rewriting it. With TLS_PORT the same server also listens
// for HTTPS there, with TLS_DIR/server.crt and server.key, asking for a
// client certificate and trusting TLS_DIR/ca.crt for tls_client_auth (Node's
// TLS socket hands oidc-provider the certificate: no proxy in between).
// The resource indicator picks the token's format and lifetime:
// urn:kw:opaque:SECONDS or urn:kw:jwt:SECONDS (default urn:kw:opaque:10).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { X509Certificate } from 'node:crypto';
import { pathToFileURL } from 'node:url';

const { default: Provider } = await import(pathToFileURL(process.env.OIDC_PROVIDER).href);
const [port, clientsFile, tlsPort, tlsDir] = process.argv.slice(2);
const store = new Map(); // "Model:id" -> { payload, exp (ms, 0: none) }
const now = () => Date.now();
const client = (id) => JSON.parse(readFileSync(clientsFile, 'utf8')).find((x) => x.client_id === id);
class Adapter {
  constructor(name) { this.name = name; }
  key(id) { return `${this.name}:${id}`; }
  async upsert(id, payload, expiresIn) {
    store.set(this.key(id), { payload, exp: expiresIn ? now() + expiresIn * 1000 : 0 });
  }
  get(key) {
    const e = store.get(key);
    if (!e) return undefined;
    if (e.exp && e.exp < now()) { store.delete(key); return undefined; }
    return e.payload;
  }
  async find(id) {
    if (this.name === 'RefreshToken') {
      // A client's refresh_reuse_grace (seconds) lets a consumed refresh
      // token be used again for that long, as Okta's and Auth0's rotation
      // settings allow; without it (oidc-provider's way) reuse revokes the
      // grant.
      const p = this.get(this.key(id));
      const grace = p && p.consumed && (client(p.clientId) || {}).refresh_reuse_grace;
      return grace && now() / 1000 - p.consumed < grace ? { ...p, consumed: undefined } : p;
    }
    if (this.name !== 'Client') return this.get(this.key(id));
    const c = client(id);
    return c && { grant_types: ['client_credentials'], redirect_uris: [], response_types: [],
      token_endpoint_auth_method: c.auth || 'client_secret_basic', ...c, auth: undefined, refresh_reuse_grace: undefined };
  }
  async findByUserCode() {}
  async findByUid(uid) {
    for (const [key, e] of store) {
      if (key.startsWith(`${this.name}:`) && e.payload.uid === uid) return this.get(key);
    }
    return undefined;
  }
  async consume(id) {
    const p = this.get(this.key(id));
    if (p) p.consumed = Math.floor(now() / 1000);
  }
  async revokeByGrantId(grantId) {
    for (const [key, e] of store) {
      if (e.payload.grantId === grantId) store.delete(key);
    }
  }
  async destroy(id) { store.delete(this.key(id)); }
}
// The client certificate of a request over TLS_PORT, if it sent one.
const peer = (ctx) => {
  const c = ctx.req.socket.getPeerCertificate?.();
  return c && c.raw ? c : undefined;
};
const resource = (r) => /^urn:kw:(opaque|jwt):(\d+)$/.exec(r || '');
const provider = new Provider(`http://127.0.0.1:${port}`, {
  adapter: Adapter,
  scopes: ['openid', 'offline_access', 'read', 'write'],
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  issueRefreshToken: (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt',
    'tls_client_auth', 'self_signed_tls_client_auth', 'none'],
  enabledJWA: { clientAuthSigningAlgValues: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512',
    'ES256', 'ES384', 'ES512', 'EdDSA'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    mTLS: {
      enabled: true,
      tlsClientAuth: true,
      selfSignedTlsClientAuth: true,
      getCertificate: (ctx) => { const c = peer(ctx); return c && new X509Certificate(c.raw); },
      certificateAuthorized: (ctx) => ctx.req.socket.authorized === true,
      certificateSubjectMatches: (ctx, property, expected) => {
        const c = peer(ctx);
        switch (property) {
          case 'tls_client_auth_subject_dn': return c.subject && `CN=${c.subject.CN}` === expected;
          case 'tls_client_auth_san_dns': return (c.subjectaltname || '').split(', ').includes(`DNS:${expected}`);
          default: return false;
        }
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:kw:opaque:10',
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => {
        const m = resource(indicator);
        if (!m) throw new Error('unknown resource');
        return { scope: 'read write', accessTokenFormat: m[1], accessTokenTTL: Number(m[2]),
          jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
});
// Every login and consent prompt is approved at once.
provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith('/interaction/')) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  let result;
  if (details.prompt.name === 'login') {
    result = { login: { accountId: 'keyward-test-user' } };
  } else {
    const grant = details.grantId ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  }
  await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
  ctx.respond = false;
});
provider.listen(Number(port), '127.0.0.1');
console.log(`oidc-provider listening on 127.0.0.1:${port}`);
if (tlsPort) {
  const tls = (f) => readFileSync(`${tlsDir}/${f}`);
  createServer({ cert: tls('server.crt'), key: tls('server.key'), ca: tls('ca.crt'),
    requestCert: true, rejectUnauthorized: false }, provider.callback())
    .listen(Number(tlsPort), '127.0.0.1');
  console.log(`oidc-provider listening for TLS on 127.0.0.1:${tlsPort}`);
}
