// The OAuth2 authorization server keyward's token tests run against:
// oidc-provider (pinned in package-lock.json) limited to the
// client_credentials grant, with introspection and revocation.
//
// Usage: node server.mjs PORT CLIENTS_JSON
// CLIENTS_JSON holds [{"client_id": …, "client_secret": …}, …] and is re-read
// on every lookup, so a test rotates a client secret at the server by
// rewriting it. The resource indicator picks the token's format and lifetime:
// urn:kw:opaque:SECONDS or urn:kw:jwt:SECONDS (default urn:kw:opaque:10).
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const [port, clientsFile] = process.argv.slice(2);
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
const resource = (r) => /^urn:kw:(opaque|jwt):(\d+)$/.exec(r || '');
const provider = new Provider(`http://127.0.0.1:${port}`, {
  adapter: Adapter,
  scopes: ['read', 'write'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
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
