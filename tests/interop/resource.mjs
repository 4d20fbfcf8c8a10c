// RFC 8707 resource indicators driven by openid-client v6 (panva), a client this project did not
// write: two `resource` parameters at authorize, one at the token endpoint, another at refresh,
// and introspection by each registered resource server with its own credentials (openid-client
// acting as the resource server). Prints one JSON object on stdout.
import * as oidc from 'openid-client'

import { env, issuer, redirectUri, insecure, browse, errorOf, jwtPayload } from './browser.mjs'

function resourceServer (config, id, secret) {
  const rs = new oidc.Configuration(config.serverMetadata(), id, secret, oidc.ClientSecretBasic(secret))
  oidc.allowInsecureRequests(rs)
  return rs
}

const result = {}
const config = await oidc.discovery(issuer, env.CLIENT_ID, env.CLIENT_SECRET,
  oidc.ClientSecretBasic(env.CLIENT_SECRET), insecure)
const api = resourceServer(config, env.API_ID, env.API_SECRET)
const mail = resourceServer(config, env.MAIL_ID, env.MAIL_SECRET)

const verifier = oidc.randomPKCECodeVerifier()
const state = oidc.randomState()
const nonce = oidc.randomNonce()
const params = new URLSearchParams({
  redirect_uri: redirectUri,
  scope: 'openid profile offline_access',
  code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  state,
  nonce
})
params.append('resource', env.API)
params.append('resource', env.MAIL)
const callback = await browse(oidc.buildAuthorizationUrl(config, params))
const checks = { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true }
const tokens = await oidc.authorizationCodeGrant(config, callback, checks, { resource: env.API })
result.code_aud = jwtPayload(tokens.access_token).aud
result.id_token_aud = tokens.claims().aud
result.api_sees_api_token = (await oidc.tokenIntrospection(api, tokens.access_token)).active
result.mail_sees_api_token = (await oidc.tokenIntrospection(mail, tokens.access_token)).active

const forMail = await oidc.refreshTokenGrant(config, tokens.refresh_token, { resource: env.MAIL })
result.refresh_aud = jwtPayload(forMail.access_token).aud
result.mail_sees_mail_token = (await oidc.tokenIntrospection(mail, forMail.access_token)).active
result.api_sees_mail_token = (await oidc.tokenIntrospection(api, forMail.access_token)).active

// Widening is refused with invalid_target, and the refused refresh rotates nothing: the same
// refresh token still works afterwards.
result.widen_error = await errorOf(
  oidc.refreshTokenGrant(config, forMail.refresh_token, { resource: env.OTHER }))
const again = await oidc.refreshTokenGrant(config, forMail.refresh_token, { resource: env.API })
result.after_refusal_aud = jwtPayload(again.access_token).aud

// A token meant for a resource server is not one UserInfo (the issuer's resource) accepts.
result.userinfo_with_api_token = await errorOf(
  oidc.fetchUserInfo(config, again.access_token, tokens.claims().sub))

process.stdout.write(JSON.stringify(result))
