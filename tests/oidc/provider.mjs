// The OpenID provider the console's sign-in tests run against: panva's certified
// oidc-provider on 127.0.0.1, with the test users and groups below. Its own development login
// form takes any password (the tests prove the host's side, not the provider's passwords).
//
//   node provider.mjs CLIENT_ID CLIENT_SECRET
//
// The client returns to http://127.0.0.1:<any port>/ui/login/callback (a loopback redirect
// of a native client, RFC 8252: every test server has its own port). Listens on a free port,
// prints `listening <issuer>` when ready and ends when its standard input closes (the test
// binary that started it ended). Test controls, outside
// the provider's own routes (127.0.0.1 only, like everything here):
//   POST /test/rotate             a new signing key replaces the old one (the JWKS changes)
//   POST /test/mischief?user=U&mode=M
//                                 the next token response for user U carries a bad ID token
//                                 (per user, so tests running at once do not meet), M one of
//       wrong-aud    signed by the provider, for another client
//       expired      signed by the provider, expired ten minutes ago
//       unknown-key  signed by a key the provider never published
//       forged       the groups changed after signing (the signature no longer fits)
//       replay       the ID token of U's previous sign-in, as it was issued (its nonce)
import http from 'node:http';

import * as jose from 'jose';
import Provider, { interactionPolicy } from 'oidc-provider';

const USERS = {
  vera: ['sre-all'], // viewer
  olga: ['sre-all', 'sre-oncall'], // operator
  anna: ['sre-all', 'db-approvers'], // approver of the db group
  walt: ['sre-all', 'web-approvers'], // approver of the web group
  adam: ['sre-admins'], // admin
  nora: ['elsewhere'], // no role on the console
  mallory: ['sre-all'], // a viewer whose tokens the refusal tests spoil
};

const [clientId, clientSecret] = process.argv.slice(2);
if (!clientSecret) {
  console.error('usage: node provider.mjs CLIENT_ID CLIENT_SECRET');
  process.exit(2);
}

const mischief = new Map();
const previousIdToken = new Map();
let signingKey = await newKey();
let current = null;

async function newKey() {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: `k-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`, alg: 'RS256', use: 'sig' };
}

async function tamper(idToken, claims, mode) {
  if (mode === 'replay') return previousIdToken.get(claims.sub) ?? idToken;
  const now = Math.floor(Date.now() / 1000);
  let key = signingKey;
  if (mode === 'wrong-aud') claims.aud = 'another-client';
  if (mode === 'expired') Object.assign(claims, { iat: now - 1200, exp: now - 600 });
  if (mode === 'unknown-key') key = await newKey();
  const sign = async (payload) => new jose.SignJWT(payload)
    .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' })
    .sign(await jose.importJWK(key, 'RS256'));
  if (mode === 'forged') {
    const [header, , signature] = idToken.split('.');
    const payload = Buffer.from(JSON.stringify({ ...claims, groups: ['sre-admins'] })).toString('base64url');
    return `${header}.${payload}.${signature}`;
  }
  return sign(claims);
}

// The console is the provider's own first-party client: no consent page, not even the one a
// native client (a loopback redirect) gets by default.
const policy = interactionPolicy.base();
policy.get('consent').checks.remove('native_client_prompt');

function makeProvider(issuer) {
  const provider = new Provider(issuer, {
    interactions: { policy },
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      application_type: 'native',
      redirect_uris: ['http://127.0.0.1/ui/login/callback'],
      response_types: ['code'],
      grant_types: ['authorization_code'],
    }],
    jwks: { keys: [signingKey] },
    cookies: { keys: ['runbook-tests-only'] },
    claims: { openid: ['sub'], profile: ['preferred_username', 'name'], groups: ['groups'] },
    // The scopes' claims in the ID token, as most providers can be set to do.
    conformIdTokenClaims: false,
    async findAccount(ctx, id) {
      if (!Object.hasOwn(USERS, id)) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, preferred_username: id, name: id, groups: USERS[id] };
        },
      };
    },
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid profile groups');
      grant.addOIDCClaims(['preferred_username', 'name', 'groups']);
      await grant.save();
      return grant;
    },
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.method === 'POST' && ctx.path === '/token' && ctx.status === 200 && ctx.body?.id_token) {
      const issued = ctx.body.id_token;
      const claims = jose.decodeJwt(issued);
      const mode = mischief.get(claims.sub);
      if (mode) {
        ctx.body = { ...ctx.body, id_token: await tamper(issued, { ...claims }, mode) };
        mischief.delete(claims.sub);
      }
      previousIdToken.set(claims.sub, issued);
    }
  });
  return provider;
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (req.method === 'POST' && url.pathname === '/test/rotate') {
    newKey().then((key) => {
      signingKey = key;
      current = makeProvider(current.issuer).callback();
      current.issuer = issuerOf(server);
      res.end(JSON.stringify({ kid: key.kid }));
    });
    return;
  }
  if (req.method === 'POST' && url.pathname === '/test/mischief') {
    const [user, mode] = [url.searchParams.get('user'), url.searchParams.get('mode')];
    mischief.set(user, mode);
    res.end(JSON.stringify({ user, mode }));
    return;
  }
  current(req, res);
});

function issuerOf(listening) {
  return `http://127.0.0.1:${listening.address().port}`;
}

server.listen(0, '127.0.0.1', () => {
  const issuer = issuerOf(server);
  current = makeProvider(issuer).callback();
  current.issuer = issuer;
  console.log(`listening ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
