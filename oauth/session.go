package oauth

import (
	"maps"
	"slices"
	"time"

	"github.com/ory/fosite"
)

// Session is what a grant remembers about who authorized it. It is stored
// with the grant (JSON) and becomes the access token's claims.
type Session struct {
	// Subject is the user id for the code flow; empty for client
	// credentials, whose tokens speak for the client itself.
	Subject  string `json:"sub,omitempty"`
	Username string `json:"username,omitempty"`
	// AuthTime and AMR are when and how the user authenticated.
	AuthTime time.Time `json:"auth_time,omitzero"`
	AMR      []string  `json:"amr,omitempty"`
	// JTI is the id of the access token issued last in this session, so a
	// revocation can name it.
	JTI       string                         `json:"jti,omitempty"`
	ExpiresAt map[fosite.TokenType]time.Time `json:"expires_at,omitempty"`
}

var _ fosite.Session = (*Session)(nil)

// SetExpiresAt sets when the token of kind key expires.
func (s *Session) SetExpiresAt(key fosite.TokenType, exp time.Time) {
	if s.ExpiresAt == nil {
		s.ExpiresAt = map[fosite.TokenType]time.Time{}
	}
	s.ExpiresAt[key] = exp
}

// GetExpiresAt returns when the token of kind key expires (zero: unknown).
func (s *Session) GetExpiresAt(key fosite.TokenType) time.Time { return s.ExpiresAt[key] }

// GetUsername returns the user's name ("" for a machine client).
func (s *Session) GetUsername() string { return s.Username }

// GetSubject returns the user id ("" for a machine client).
func (s *Session) GetSubject() string { return s.Subject }

// Clone returns a deep copy.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	c.AMR = slices.Clone(s.AMR)
	c.ExpiresAt = maps.Clone(s.ExpiresAt)
	return &c
}
