// Package oauth is the OAuth 2.0 authorization server of the Vitals API,
// built on ory/fosite: the token endpoint (client_credentials,
// authorization_code with PKCE S256, refresh_token), the login page of the
// code flow (password, then a TOTP or recovery code when the user enrolled
// one), revocation (RFC 7009), introspection (RFC 7662) and the metadata
// document (RFC 8414). Package auth signs and verifies the access tokens
// (JWT, ES256 or EdDSA, RFC 9068 claims plus amr and auth_time) and guards
// the resource routes; this package decides who gets one.
//
// Why fosite. The grant flows are where authorization servers get broken:
// code and PKCE binding, redirect URI matching, client authentication
// (client_secret_basic, private_key_jwt with assertion replay protection),
// refresh-token rotation with reuse detection. fosite implements them
// following RFC 6749, RFC 7636 and RFC 9700 and is the core of Ory Hydra;
// we supply storage, the access-token format and the login page.
//
// Tokens. Access tokens are JWTs issued by auth.Server.Issue; authorization
// codes and refresh tokens are opaque fosite HMAC tokens, stored only by
// their HMAC signature, so the stored form is never a usable token. Every
// grant is stored in the compacted topic topics.OAuthTokens (package ktable),
// so any API instance can continue a flow another began, and a revocation
// written by one instance reaches the others as soon as they read it
// (within the fetch wait, well under a second).
//
// Refresh tokens rotate on every use. The whole chain descending from one
// authorization is a family (fosite's request id); presenting a rotated
// refresh token again revokes the family: its live refresh token and its
// access tokens, whose ids go on the revocation list auth.Server consults.
//
// Policy this package must keep: no password or implicit grant; PKCE S256
// required for every code flow (plain refused); redirect URIs matched
// exactly; client secrets compared by hash only; a user with TOTP enrolled
// never gets a token without a fresh code, and a code step is accepted once.
package oauth
