// RFC 8707 resource indicators driven by openid-client v6 (panva), a client this project did not
// write: two `resource` parameters at authorize, one at the token endpoint, another at refresh,
// and introspection by each registered resource server with its own credentials (openid-client
// acting as the resource server). Prints one JSON object on stdout.
import * as oidc from 'openid-client'

const env = process.env
const issuer = new URL(env.ISSUER)
const redirectUri = env.REDIRECT_URI
const browserHeaders = { 'X-Test-User': env.USER_ID, 'X-Test-Aal': 'aal1', 'X-Test-Amr': 'password' }
const insecure = { execute: [oidc.allowInsecureRequests] } // http on 127.0.0.1 only

async function browse (url) {
  let response = await fetch(url, { headers: browserHeaders, redirect: 'manual' })
  if (response.status === 200) {
    const page = await response.json()
    const form = new URLSearchParams(page.form_fields)
    form.set('decision', 'approve')
    response = await fetch(new URL(page.action, issuer), {
      method: 'POST', body: form, headers: browserHeaders, redirect: 'manual'
    })
  }
  if (response.status !== 302) throw new Error(`authorize answered ${response.status}`)
  return new URL(response.headers.get('location'))
}

function audience (jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString()).aud
}

async function errorOf (promise) {
  try { await promise } catch (error) { return error.error || error.code || error.name }
  return null
}

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
result.code_aud = audience(tokens.access_token)
result.id_token_aud = tokens.claims().aud
result.api_sees_api_token = (await oidc.tokenIntrospection(api, tokens.access_token)).active
result.mail_sees_api_token = (await oidc.tokenIntrospection(mail, tokens.access_token)).active

const forMail = await oidc.refreshTokenGrant(config, tokens.refresh_token, { resource: env.MAIL })
result.refresh_aud = audience(forMail.access_token)
result.mail_sees_mail_token = (await oidc.tokenIntrospection(mail, forMail.access_token)).active
result.api_sees_mail_token = (await oidc.tokenIntrospection(api, forMail.access_token)).active

// Widening is refused with invalid_target, and the refused refresh rotates nothing: the same
// refresh token still works afterwards.
result.widen_error = await errorOf(
  oidc.refreshTokenGrant(config, forMail.refresh_token, { resource: env.OTHER }))
const again = await oidc.refreshTokenGrant(config, forMail.refresh_token, { resource: env.API })
result.after_refusal_aud = audience(again.access_token)

// A token meant for a resource server is not one UserInfo (the issuer's resource) accepts.
result.userinfo_with_api_token = await errorOf(
  oidc.fetchUserInfo(config, again.access_token, tokens.claims().sub))

process.stdout.write(JSON.stringify(result))
