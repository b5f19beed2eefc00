package user

import (
	"context"
	"fmt"

	"github.com/vitalshq/vitals/httpsig"
)

// User returns the user with the given id, for callers that hold only the
// id (the second step of a sign-in).
func (s *Service) User(id string) (User, bool) { return s.store.User(id) }

// Users returns every user.
func (s *Service) Users() []User { return s.store.Users() }

// MaxRequestKeys bounds the request-signing keys of one person: each sign-in
// of the CLI registers one; the oldest go first.
const MaxRequestKeys = 5

// AddRequestKey registers a request-signing public key for person id
// (httpsig.NewRegisteredKey names it) and returns it.
func (s *Service) AddRequestKey(ctx context.Context, id string, public []byte) (httpsig.RegisteredKey, error) {
	k, err := httpsig.NewRegisteredKey(id, public, s.now())
	if err != nil {
		return httpsig.RegisteredKey{}, err
	}
	_, err = s.update(ctx, id, func(u *User) error {
		u.RequestKeys = append(u.RequestKeys, k)
		if n := len(u.RequestKeys); n > MaxRequestKeys {
			u.RequestKeys = u.RequestKeys[n-MaxRequestKeys:]
		}
		return nil
	})
	if err != nil {
		return httpsig.RegisteredKey{}, fmt.Errorf("add request key of %s: %w", id, err)
	}
	return k, nil
}
