// DPoP (RFC 9449) from openid-client v6 against a live oauth_sessions server: a public client
// with a DPoP key pair runs the PKCE code flow, calls UserInfo and a protected resource with
// proofs, refreshes, and is refused when it refreshes with another key or none. With a server
// that requires nonces, openid-client answers use_dpop_nonce by itself. Prints one JSON object.
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

async function rejects (promise) {
  try { await promise } catch (error) { return error.error || error.code || error.name }
  return null
}

function payload (jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'))
}

const result = {}
const config = await oidc.discovery(issuer, env.PUBLIC_CLIENT_ID, undefined, oidc.None(), insecure)
result.algs = config.serverMetadata().dpop_signing_alg_values_supported
const keyPair = await oidc.randomDPoPKeyPair('ES256')
const DPoP = oidc.getDPoPHandle(config, keyPair)

const verifier = oidc.randomPKCECodeVerifier()
const state = oidc.randomState()
const nonce = oidc.randomNonce()
const url = oidc.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: 'openid profile offline_access',
  code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  state,
  nonce
})
const tokens = await oidc.authorizationCodeGrant(config, await browse(url), {
  pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true
}, undefined, { DPoP })
result.token_type = tokens.token_type
result.cnf = payload(tokens.access_token).cnf
result.refresh_prefix = tokens.refresh_token.slice(0, 5)
result.sub = tokens.claims().sub
result.userinfo = await oidc.fetchUserInfo(config, tokens.access_token, result.sub, { DPoP })

const api = new URL('/api/profile', issuer)
const resource = await oidc.fetchProtectedResource(config, tokens.access_token, api, 'GET',
  undefined, undefined, { DPoP })
result.resource_status = resource.status
result.resource = await resource.json()
const asBearer = await fetch(api, { headers: { Authorization: `Bearer ${tokens.access_token}` } })
result.bearer_status = asBearer.status
result.bearer_challenge = asBearer.headers.get('www-authenticate')

const otherKey = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'))
result.refresh_other_key = await rejects(
  oidc.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: otherKey }))
result.refresh_no_proof = await rejects(oidc.refreshTokenGrant(config, tokens.refresh_token))
const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP })
result.refreshed_token_type = refreshed.token_type
result.refreshed_cnf = payload(refreshed.access_token).cnf
result.refresh_rotated = refreshed.refresh_token !== tokens.refresh_token
result.refreshed_sid = refreshed.claims().sid === tokens.claims().sid

process.stdout.write(JSON.stringify(result))
