// The OAuth2 authorization server keyward's token tests run against:
// oidc-provider (pinned in package-lock.json, installed by ../oauth.sh) with
// the client_credentials grant, introspection, revocation, private_key_jwt
// and mutual-TLS client authentication.
//
// Usage: OIDC_PROVIDER=ENTRY node server.mjs PORT CLIENTS_JSON [TLS_PORT TLS_DIR]
// ENTRY is the module's entry file (oauth.sh prints it). CLIENTS_JSON holds
// [{"client_id": …, "client_secret": …, "auth": METHOD, …}, …] (any other
// client metadata, such as jwks or tls_client_auth_san_dns, passes through)
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
const store = new Map();
class Adapter {
  constructor(name) { this.name = name; }
  key(id) { return `${this.name}:${id}`; }
  async upsert(id, payload) { store.set(this.key(id), payload); }
  async find(id) {
    if (this.name !== 'Client') return store.get(this.key(id));
    const c = JSON.parse(readFileSync(clientsFile, 'utf8')).find((x) => x.client_id === id);
    return c && { grant_types: ['client_credentials'], redirect_uris: [], response_types: [],
      token_endpoint_auth_method: c.auth || 'client_secret_basic', ...c, auth: undefined };
  }
  async findByUserCode() {} async findByUid() {} async consume() {} async revokeByGrantId() {}
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
  scopes: ['read', 'write'],
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
provider.listen(Number(port), '127.0.0.1');
console.log(`oidc-provider listening on 127.0.0.1:${port}`);
if (tlsPort) {
  const tls = (f) => readFileSync(`${tlsDir}/${f}`);
  createServer({ cert: tls('server.crt'), key: tls('server.key'), ca: tls('ca.crt'),
    requestCert: true, rejectUnauthorized: false }, provider.callback())
    .listen(Number(tlsPort), '127.0.0.1');
  console.log(`oidc-provider listening for TLS on 127.0.0.1:${tlsPort}`);
}
