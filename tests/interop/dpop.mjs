// DPoP (RFC 9449) from openid-client v6 against a live oauth_sessions server: a public client
// with a DPoP key pair runs the PKCE code flow, calls UserInfo and a protected resource with
// proofs, refreshes, and is refused when it refreshes with another key or none; it pushes a
// request with a proof (RFC 9449 section 10.1) whose code only its key redeems. With a server
// that requires nonces, openid-client answers use_dpop_nonce by itself. Prints one JSON object.
import * as oidc from 'openid-client'

import { env, issuer, redirectUri, insecure, browse, errorOf, jwtPayload } from './browser.mjs'

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
result.cnf = jwtPayload(tokens.access_token).cnf
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
result.refresh_other_key = await errorOf(
  oidc.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: otherKey }))
result.refresh_no_proof = await errorOf(oidc.refreshTokenGrant(config, tokens.refresh_token))
const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP })
result.refreshed_token_type = refreshed.token_type
result.refreshed_cnf = jwtPayload(refreshed.access_token).cnf
result.refresh_rotated = refreshed.refresh_token !== tokens.refresh_token
result.refreshed_sid = refreshed.claims().sid === tokens.claims().sid

// RFC 9449 section 10.1: given { DPoP }, openid-client sends a proof with its pushed request;
// the proof's key binds the code, which the same key redeems and another key cannot.
async function pushedCode () {
  const codeVerifier = oidc.randomPKCECodeVerifier()
  const pushed = await oidc.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: redirectUri,
    scope: 'openid',
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state: 'pushed'
  }, { DPoP })
  return { checks: { pkceCodeVerifier: codeVerifier, expectedState: 'pushed' }, callback: await browse(pushed) }
}
const bound = await pushedCode()
const pushedTokens = await oidc.authorizationCodeGrant(config, bound.callback, bound.checks, undefined, { DPoP })
result.pushed_token_type = pushedTokens.token_type
result.pushed_cnf = jwtPayload(pushedTokens.access_token).cnf
const stolen = await pushedCode()
result.pushed_other_key = await errorOf(
  oidc.authorizationCodeGrant(config, stolen.callback, stolen.checks, undefined, { DPoP: otherKey }))

process.stdout.write(JSON.stringify(result))
