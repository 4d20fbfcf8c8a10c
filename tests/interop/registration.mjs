// Dynamic registration as openid-client v6 (panva) does it, against a live oauth_sessions server
// whose own ID token alg is EdDSA (issue 20 items 4 and 5): register with no scope and no
// id_token_signed_response_alg, ask for "openid profile email" (and for more than allowed), and
// validate the ID tokens the way the library does (its alg check follows the registration).
// A second client registers EdDSA explicitly. Prints one JSON object on stdout.
import * as oidc from 'openid-client'

import { issuer, redirectUri, insecure, browse } from './browser.mjs'

async function codeFlow (config, scope) {
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope, nonce,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256'
  })
  const callback = await browse(url)
  const tokens = await oidc.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier, expectedNonce: nonce, idTokenExpected: true
  })
  const header = JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url'))
  return { tokens, alg: header.alg }
}

const result = {}
// openid-client authenticates with client_secret_post unless told otherwise, while RFC 7591
// makes client_secret_basic the registration default: the client registers what it will use.
const metadata = {
  redirect_uris: [redirectUri],
  grant_types: ['authorization_code', 'refresh_token'],
  token_endpoint_auth_method: 'client_secret_post'
}
const plain = await oidc.dynamicClientRegistration(issuer, metadata, undefined, insecure)
result.registered = plain.clientMetadata()
const first = await codeFlow(plain, 'openid profile email')
result.plain_alg = first.alg
result.plain_scope = first.tokens.scope
result.plain_claims = first.tokens.claims()
result.userinfo = await oidc.fetchUserInfo(plain, first.tokens.access_token, first.tokens.claims().sub)
const wider = await codeFlow(plain, 'openid profile email payments offline_access')
result.subset_scope = wider.tokens.scope
result.subset_refreshed = typeof (await oidc.refreshTokenGrant(plain, wider.tokens.refresh_token)).access_token === 'string'

const eddsa = await oidc.dynamicClientRegistration(
  issuer, { ...metadata, id_token_signed_response_alg: 'EdDSA' }, undefined, insecure)
result.eddsa_registered_alg = eddsa.clientMetadata().id_token_signed_response_alg
result.eddsa_alg = (await codeFlow(eddsa, 'openid')).alg

process.stdout.write(JSON.stringify(result))
