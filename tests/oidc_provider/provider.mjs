// A real OpenID provider (the oidc-provider package) for revoker's tests.
//
// node provider.mjs <port> <kid> <backchannel_logout_uri>
//
// Listens on 127.0.0.1:<port> with issuer http://127.0.0.1:<port>, one fresh RSA signing
// key named <kid> (so a restart with another kid is a key rotation), and one client,
// "revoker-rp", whose back-channel logout URI is revoker. POST /test/backchannel-logout
// with form fields sub and sid makes the provider send its logout token, as its
// end_session endpoint does, and answers {"ok": true} or {"ok": false, "error": ...}.
// Prints "ready" once listening.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, kid, backchannelUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'revoker-rp',
    client_secret: 'test-only-secret',
    redirect_uris: ['http://127.0.0.1/callback'],
    backchannel_logout_uri: backchannelUri,
    backchannel_logout_session_required: true,
  }],
  jwks: { keys: [jwk] },
  features: { backchannelLogout: { enabled: true }, devInteractions: { enabled: false } },
  // revoker listens on loopback here, which the provider's SSRF guard refuses to call.
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
});

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

provider.use(async (ctx, next) => {
  if (ctx.method !== 'POST' || ctx.path !== '/test/backchannel-logout') return next();
  const form = await readForm(ctx.req);
  const client = await provider.Client.find('revoker-rp');
  try {
    await client.backchannelLogout(form.get('sub'), form.get('sid'));
    ctx.body = { ok: true };
  } catch (error) {
    const answer = error.response ? await error.response.text() : '';
    ctx.body = { ok: false, error: `${error.message} ${answer}` };
  }
});

provider.listen(Number(port), '127.0.0.1', () => console.log('ready'));
