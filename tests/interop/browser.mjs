// What every openid-client script here shares: the server it talks to (from the environment the
// pytest side sets), the test host's "signed-in browser", and the few helpers built on them.
import * as oidc from 'openid-client'

export const env = process.env
export const issuer = new URL(env.ISSUER)
export const redirectUri = env.REDIRECT_URI
export const browserHeaders = { 'X-Test-User': env.USER_ID, 'X-Test-Aal': 'aal1', 'X-Test-Amr': 'password' }
export const insecure = { execute: [oidc.allowInsecureRequests] } // http on 127.0.0.1 only

// Follow an authorization request through consent like a browser; the answer that ends it.
export async function follow (url) {
  const response = await fetch(url, { headers: browserHeaders, redirect: 'manual' })
  if (response.status !== 200) return response
  const page = await response.json()
  const form = new URLSearchParams(page.form_fields)
  form.set('decision', 'approve')
  return fetch(new URL(page.action, issuer), {
    method: 'POST', body: form, headers: browserHeaders, redirect: 'manual'
  })
}

// As follow, but the request must end at the client's redirect URI: that URI.
export async function browse (url) {
  const response = await follow(url)
  if (response.status !== 302) throw new Error(`authorize answered ${response.status}`)
  return new URL(response.headers.get('location'))
}

// The error code a refused openid-client call throws, or null when it did not throw.
export async function errorOf (promise) {
  try { await promise } catch (error) { return error.error || error.code || error.name }
  return null
}

// The payload of a JWT, unverified (the scripts check what the server put in it).
export function jwtPayload (jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'))
}
