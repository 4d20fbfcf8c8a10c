// Pushed authorization requests (RFC 9126) from openid-client v6 (panva), which pushes with
// buildAuthorizationUrlWithPAR: the client authenticates at the discovered
// pushed_authorization_request_endpoint, gets a request_uri, and the browser carries only
// client_id and request_uri. The server runs with REQUIRE_PUSHED_AUTHORIZATION_REQUESTS on.
//
// The "browser" part talks to the test host of tests/factories.py (X-Test-User header).
// Prints one JSON object on stdout.
import * as oidc from 'openid-client'

import { env, issuer, redirectUri, insecure, follow } from './browser.mjs'

async function pushedFlow (config, scope) {
  const verifier = oidc.randomPKCECodeVerifier()
  const state = oidc.randomState()
  const nonce = oidc.randomNonce()
  const url = await oidc.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce
  })
  const answer = await follow(url)
  if (answer.status !== 302) throw new Error(`authorize answered ${answer.status}`)
  const callback = new URL(answer.headers.get('location'))
  const tokens = await oidc.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true
  })
  return { url, tokens }
}

const result = {}

const config = await oidc.discovery(issuer, env.CLIENT_ID, env.CLIENT_SECRET,
  oidc.ClientSecretBasic(env.CLIENT_SECRET), insecure)
const metadata = config.serverMetadata()
result.par_endpoint = metadata.pushed_authorization_request_endpoint
result.require_par = metadata.require_pushed_authorization_requests

const { url, tokens } = await pushedFlow(config, 'openid profile offline_access')
result.authorize_query_keys = [...url.searchParams.keys()].sort()
result.request_uri = url.searchParams.get('request_uri')
result.id_token_claims = tokens.claims()
result.scope = tokens.scope
result.userinfo = await oidc.fetchUserInfo(config, tokens.access_token, tokens.claims().sub)

// One-time: the same URL again is refused, and no code comes of it.
const replay = await follow(url)
result.replay_status = replay.status
result.replay_error = (await replay.json()).error

// The provider requires pushed requests: a plain authorization request gets an error.
const plain = oidc.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri, scope: 'openid', state: 'plain',
  code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
  code_challenge_method: 'S256'
})
const refused = await follow(plain)
result.plain_status = refused.status
result.plain_error = new URL(refused.headers.get('location')).searchParams.get('error')

// A public client pushes with its client_id and no secret.
const pub = await oidc.discovery(issuer, env.PUBLIC_CLIENT_ID, undefined, oidc.None(), insecure)
const publicFlow = await pushedFlow(pub, 'openid offline_access')
result.public_sub = publicFlow.tokens.claims().sub

process.stdout.write(JSON.stringify(result))
