package oauth

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"

	jose3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"

	"github.com/vitalshq/vitals/auth"
)

// client presents an auth.Client to fosite. Clients authenticating with a
// secret accept it in the Authorization header or the form body, as
// before fosite; clients with another method are jwtClient.
type client struct{ c auth.Client }

var _ fosite.Client = client{}

func (c client) GetID() string             { return c.c.ID }
func (c client) GetHashedSecret() []byte   { return []byte(c.c.SecretHash) }
func (c client) GetRedirectURIs() []string { return c.c.RedirectURIs }
func (c client) GetGrantTypes() fosite.Arguments {
	return fosite.Arguments(c.c.Grants())
}
func (c client) GetResponseTypes() fosite.Arguments {
	if c.GetGrantTypes().Has(auth.GrantAuthorizationCode) {
		return fosite.Arguments{"code"}
	}
	return nil
}
func (c client) GetScopes() fosite.Arguments   { return fosite.Arguments(c.c.Scopes) }
func (c client) IsPublic() bool                { return c.c.AuthMethod == auth.AuthNone }
func (c client) GetAudience() fosite.Arguments { return nil }

// jwtClient is a client with a declared token endpoint authentication
// method: private_key_jwt (with its JWKS) or none (public).
type jwtClient struct {
	client
	keys *jose3.JSONWebKeySet
}

var _ fosite.OpenIDConnectClient = jwtClient{}

func (c jwtClient) GetJSONWebKeysURI() string                { return "" }
func (c jwtClient) GetJSONWebKeys() *jose3.JSONWebKeySet     { return c.keys }
func (c jwtClient) GetRequestObjectSigningAlgorithm() string { return "" }
func (c jwtClient) GetRequestURIs() []string                 { return nil }
func (c jwtClient) GetTokenEndpointAuthMethod() string       { return c.c.AuthMethod }

// GetTokenEndpointAuthSigningAlgorithm is the algorithm of the client's
// first key: assertions must use it (ES256 when the key names none).
func (c jwtClient) GetTokenEndpointAuthSigningAlgorithm() string {
	if c.keys != nil && len(c.keys.Keys) > 0 && c.keys.Keys[0].Algorithm != "" {
		return c.keys.Keys[0].Algorithm
	}
	return "ES256"
}

// fositeClient adapts c.
func fositeClient(c auth.Client) (fosite.Client, error) {
	switch c.AuthMethod {
	case "", auth.AuthSecretBasic:
		return client{c}, nil
	case auth.AuthNone:
		return jwtClient{client: client{c}}, nil
	case auth.AuthPrivateKeyJWT:
		var set jose3.JSONWebKeySet
		if err := json.Unmarshal(c.JWKS, &set); err != nil {
			return nil, fmt.Errorf("client %s: jwks: %w", c.ID, err)
		}
		return jwtClient{client: client{c}, keys: &set}, nil
	}
	return nil, fmt.Errorf("client %s: unknown auth method %q", c.ID, c.AuthMethod)
}

// secretHasher compares client secrets by their SHA-256 hash
// (auth.HashClientSecret): secrets are 256-bit random values, so a slow
// password hash would add nothing but latency.
type secretHasher struct{}

var errSecretMismatch = errors.New("oauth: client secret does not match")

func (secretHasher) Compare(_ context.Context, hash, data []byte) error {
	if len(hash) == 0 || subtle.ConstantTimeCompare(hash, []byte(auth.HashClientSecret(string(data)))) != 1 {
		return errSecretMismatch
	}
	return nil
}

func (secretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	return []byte(auth.HashClientSecret(string(data))), nil
}
