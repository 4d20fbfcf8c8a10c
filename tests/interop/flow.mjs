// Drives a live oauth_sessions server with openid-client v6 (panva), a certified OpenID Connect
// relying party this project did not write: discovery, PKCE code flow with state and nonce,
// RFC 9207 iss check, ID token validation, UserInfo, refresh, revocation.
//
// The "browser" part (sign-in and consent) talks to the test host of tests/factories.py, which
// reads the signed-in user from the X-Test-User header. Prints one JSON object on stdout.
import * as oidc from 'openid-client'

import { env, issuer, redirectUri, insecure, browse } from './browser.mjs'

async function codeFlow (config, scope) {
  const verifier = oidc.randomPKCECodeVerifier()
  const state = oidc.randomState()
  const nonce = oidc.randomNonce()
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce
  })
  const callback = await browse(url)
  const tokens = await oidc.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true
  })
  return { tokens, callback, verifier, state }
}

async function rejects (promise) {
  try { await promise } catch (error) { return error.code || error.error || error.name }
  return null
}

const result = {}

// Confidential client, client_secret_basic.
const config = await oidc.discovery(issuer, env.CLIENT_ID, env.CLIENT_SECRET,
  oidc.ClientSecretBasic(env.CLIENT_SECRET), insecure)
result.discovered_issuer = config.serverMetadata().issuer
const { tokens, callback } = await codeFlow(config, 'openid profile offline_access')
result.callback_iss = callback.searchParams.get('iss')
result.id_token_claims = tokens.claims()
result.scope = tokens.scope
result.token_type = tokens.token_type
result.has_refresh_token = typeof tokens.refresh_token === 'string'
result.userinfo = await oidc.fetchUserInfo(config, tokens.access_token, tokens.claims().sub)
const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token)
result.refreshed_claims = refreshed.claims()
result.refresh_rotated = refreshed.refresh_token !== tokens.refresh_token
await oidc.tokenRevocation(config, refreshed.refresh_token)
result.userinfo_after_revoke = await rejects(
  oidc.fetchUserInfo(config, refreshed.access_token, tokens.claims().sub))

// Mix-up defence (RFC 9207): a response claiming another issuer must be refused by the client.
const second = await codeFlow(config, 'openid').catch((e) => e)
result.second_flow_ok = !(second instanceof Error)
const verifier = oidc.randomPKCECodeVerifier()
const url = oidc.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri, scope: 'openid', state: 'mixup',
  code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256'
})
const forged = await browse(url)
forged.searchParams.set('iss', 'https://attacker.example')
result.mixup_rejected = await rejects(oidc.authorizationCodeGrant(config, forged, {
  pkceCodeVerifier: verifier, expectedState: 'mixup'
}))

// Public client: no secret, PKCE only.
const pub = await oidc.discovery(issuer, env.PUBLIC_CLIENT_ID, undefined, oidc.None(), insecure)
const publicFlow = await codeFlow(pub, 'openid offline_access')
result.public_sub = publicFlow.tokens.claims().sub
result.public_refreshed = typeof (await oidc.refreshTokenGrant(pub, publicFlow.tokens.refresh_token)).access_token === 'string'

process.stdout.write(JSON.stringify(result))
