package user

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Resealer re-encrypts a sealed value under the current data key: package
// keyring's Keyring in production. It returns sealed itself when the
// current key sealed it, and fails when sealed does not open with aad.
type Resealer interface {
	Reseal(sealed string, aad []byte) (string, error)
}

// ResealStats counts what one Reseal pass did.
type ResealStats struct {
	Records    int // users read
	Resealed   int // users written again with their TOTP seed under the current data key
	Unreadable int // users whose TOTP seed does not open; left as they are
}

// Reseal moves every user's sealed TOTP seed to r's current data key
// (after keyring.Keyring.Rotate), writing again only the users whose seed
// was sealed under another key, so that afterwards every seed carries the
// current key id. It is what `vitals keys rotate` runs for topics.Users; a
// second run finds nothing to do. Seeds that do not open are counted, left
// as they are, and reported in the error, which joins one error per user.
//
// Each user is read right before it is written, but writes are
// last-writer-wins: a change to the same user through another instance
// that this store has not applied yet when Reseal reads the user (a TOTP
// code accepted, which records its time step; a password change) is
// overwritten by the older version Reseal writes. The window is the time
// for a write to reach this instance, milliseconds; a lost time step lets
// that one code be used once more within its 30-second step.
func (s *KafkaStore) Reseal(ctx context.Context, r Resealer) (ResealStats, error) {
	var (
		st   ResealStats
		errs []error
	)
	ids := s.users.Keys()
	slices.Sort(ids)
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return st, errors.Join(append(errs, fmt.Errorf("reseal users: %w", err))...)
		}
		u, ok := s.users.Get(id)
		if !ok {
			continue // deleted meanwhile
		}
		st.Records++
		if u.TOTP == nil || u.TOTP.SealedSecret == "" {
			continue
		}
		sealed, err := r.Reseal(u.TOTP.SealedSecret, seedAAD(u.ID))
		if err == nil && u.ID != id {
			err = fmt.Errorf("user record %s holds user %s", id, u.ID)
		}
		if err != nil {
			st.Unreadable++
			errs = append(errs, fmt.Errorf("user %s: reseal TOTP seed: %w", id, err))
			continue
		}
		if sealed == u.TOTP.SealedSecret {
			continue
		}
		u = u.clone()
		u.TOTP.SealedSecret = sealed
		if err := s.users.Put(ctx, id, u); err != nil {
			return st, errors.Join(append(errs, fmt.Errorf("reseal user %s: %w", id, err))...)
		}
		st.Resealed++
	}
	return st, errors.Join(errs...)
}
