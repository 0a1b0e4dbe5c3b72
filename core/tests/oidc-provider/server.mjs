// A real OpenID Provider for Monti's end-to-end tests, on panva/oidc-provider with its
// development login form (any password; the login name picks the account below).
//
//   PORT=4010 REDIRECT_URI=http://127.0.0.1:8080/auth/oidc/test/callback[,…] \
//   POST_LOGOUT_URI=http://127.0.0.1:8080/login?notice=login.signed_out node server.mjs
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 4010);
const issuer = `http://127.0.0.1:${port}`;

// Group claims as Keycloak sends them (full group paths).
const accounts = {
  alice: { name: 'Alice Supervisor', email: 'alice@example.com', groups: ['/monti/supervisors', '/staff'] },
  bob: { name: 'Bob Admin', email: 'bob@example.com', groups: ['/monti/admins'] },
  mallory: { name: 'Mallory Nobody', email: 'mallory@example.com', groups: ['/elsewhere'] },
  olga: { name: 'Olga Operator', email: 'olga@example.com', groups: ['/monti/operators'] },
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'monti',
      client_secret: 'monti-test-secret',
      redirect_uris: (process.env.REDIRECT_URI || '').split(',').filter(Boolean),
      post_logout_redirect_uris: [process.env.POST_LOGOUT_URI].filter(Boolean),
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  // Put the requested claims into the ID token itself, as Keycloak does by default.
  conformIdTokenClaims: false,
  cookies: { keys: ['monti-test-only'] },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  async findAccount(_ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: account.email, email_verified: true, name: account.name, groups: account.groups };
      },
    };
  },
  // Monti is a first-party client: no consent screen.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups');
    await grant.save();
    return grant;
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
