package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/vitalshq/vitals/clientip"
	"github.com/vitalshq/vitals/httpsig"
	"github.com/vitalshq/vitals/ratelimit"
)

// Client is an OAuth client registered with Vitals. It is stored as JSON in
// the compacted clients topic, keyed by ID; the secret itself is never
// stored, only SecretHash.
type Client struct {
	ID   string `json:"id"`   // "vc_…", also the OAuth client_id
	Name string `json:"name"` // for people: what this client is
	// SecretHash is HashClientSecret of the secret. A fast hash is enough
	// because secrets are 256-bit random values, not passwords.
	SecretHash string    `json:"secret_hash"`
	Scopes     []string  `json:"scopes"`
	CreatedAt  time.Time `json:"created_at"`
	// Disabled clients cannot obtain tokens, and tokens already issued to
	// them stop being accepted.
	Disabled bool `json:"disabled,omitempty"`

	// AuthMethod is how the client authenticates at the token endpoint:
	// AuthSecretBasic (the default: HTTP Basic or the form body),
	// AuthPrivateKeyJWT (RFC 7523 assertion signed with a key of JWKS) or
	// AuthNone (a public client such as the CLI, code flow with PKCE only).
	AuthMethod string `json:"auth_method,omitempty"`
	// JWKS holds the client's public keys for AuthPrivateKeyJWT (a JWK
	// Set, RFC 7517).
	JWKS json.RawMessage `json:"jwks,omitempty"`
	// GrantTypes the client may use; empty means client_credentials only.
	GrantTypes []string `json:"grant_types,omitempty"`
	// RedirectURIs of a code-flow client, matched exactly (loopback
	// redirects may use any port, RFC 8252 §7.3).
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// IPAllow lists the CIDR ranges requests with this client's tokens, and
	// its token requests, may come from; empty allows any address.
	IPAllow clientip.AllowList `json:"ip_allow,omitzero"`
	// RequestKeys sign the client's high-value requests (RFC 9421).
	RequestKeys []httpsig.RegisteredKey `json:"request_keys,omitempty"`
	// RateLimits override the class defaults for this client, class-wide
	// (Route "") or for one route ("POST /v1/events").
	RateLimits []ratelimit.Override `json:"rate_limits,omitempty"`
}

// Client authentication methods at the token endpoint (RFC 7591 names).
const (
	AuthSecretBasic   = "client_secret_basic"
	AuthPrivateKeyJWT = "private_key_jwt"
	AuthNone          = "none"
)

// Grant types a client may be allowed.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
)

// Grants returns the grant types c may use.
func (c Client) Grants() []string {
	if len(c.GrantTypes) == 0 {
		return []string{GrantClientCredentials}
	}
	return c.GrantTypes
}

// HasScope reports whether c may be granted scope.
func (c Client) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

// VerifySecret reports whether secret is c's secret, comparing hashes in
// constant time.
func (c Client) VerifySecret(secret string) bool {
	// An empty SecretHash never matches: HashClientSecret is never empty.
	return subtle.ConstantTimeCompare([]byte(c.SecretHash), []byte(HashClientSecret(secret))) == 1
}

// secretHashPrefix names the hash function inside SecretHash so a later
// change of function can tell old hashes apart.
const secretHashPrefix = "sha256:"

// HashClientSecret returns the stored form of a client secret:
// "sha256:" followed by the hex SHA-256 of the secret.
func HashClientSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return secretHashPrefix + hex.EncodeToString(sum[:])
}

// NewClientID returns a fresh client id: "vc_" and 24 hex digits (96
// random bits).
func NewClientID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // never fails; crashes the program instead
	return "vc_" + hex.EncodeToString(b)
}

// NewClientSecret returns a fresh client secret: "vcs_" and 32 random bytes
// in unpadded base64url. The prefix lets secret scanners recognise a leak.
func NewClientSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails; crashes the program instead
	return "vcs_" + base64.RawURLEncoding.EncodeToString(b)
}

// NewClient returns a client with a fresh id and secret for the given
// scopes, and the secret, which is shown once and never stored.
func NewClient(name string, scopes []string, now time.Time) (Client, string) {
	secret := NewClientSecret()
	return Client{
		ID:         NewClientID(),
		Name:       strings.TrimSpace(name),
		SecretHash: HashClientSecret(secret),
		Scopes:     slices.Clone(scopes),
		CreatedAt:  now.UTC(),
	}, secret
}
