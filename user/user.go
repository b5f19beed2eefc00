package user

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/vitalshq/vitals/httpsig"
)

// User is a person who signs in to Vitals. It is stored as JSON in the
// compacted topic topics.Users, keyed by ID. It holds no secret in the
// clear: PasswordHash is argon2id, the TOTP seed is sealed, and
// RecoveryCodes are hashes.
type User struct {
	ID string `json:"id"` // "usr_" and 32 hex digits
	// Username is unique, lower-case and valid per CheckUsername.
	Username string `json:"username"`
	// PasswordHash is an argon2id PHC string (Params.Hash).
	PasswordHash string `json:"password_hash"`
	// Scopes are the OAuth scopes this user may be granted.
	Scopes    []string  `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
	// PasswordChangedAt is when PasswordHash was last set.
	PasswordChangedAt time.Time `json:"password_changed_at"`
	// Disabled users cannot sign in.
	Disabled bool `json:"disabled,omitempty"`
	// TOTP is the user's authenticator app, pending or confirmed; nil when
	// none was ever enrolled or it was reset.
	TOTP *TOTP `json:"totp,omitempty"`
	// RecoveryCodes are the hashes (hashRecoveryCode: "sha256:" and hex)
	// of the one-time recovery codes not used yet.
	RecoveryCodes []string `json:"recovery_codes,omitempty"`
	// RequestKeys sign the person's high-value requests (RFC 9421): the
	// CLI registers one at sign-in.
	RequestKeys []httpsig.RegisteredKey `json:"request_keys,omitempty"`
}

// TOTP is a user's time-based one-time-password enrolment (RFC 6238:
// SHA-1, 6 digits, 30-second steps, as every authenticator app supports).
type TOTP struct {
	// SealedSecret is the 160-bit seed, sealed by the Sealer with the
	// user id bound as additional data (seedAAD).
	SealedSecret string `json:"sealed_secret"`
	// Confirmed is set once the user proved, with a first code, that the
	// authenticator app holds the seed; only then does it count as MFA.
	Confirmed bool `json:"confirmed"`
	// LastStep is the last time step (Unix seconds / 30) whose code was
	// accepted. A code for this step or an earlier one is refused, so
	// every code works once.
	LastStep int64 `json:"last_step,omitempty"`
}

// LogValue implements slog.LogValuer: only the id and username are logged,
// never the hashes or the sealed seed.
func (u User) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", u.ID), slog.String("username", u.Username))
}

// clone returns a deep copy of u, so that changing it leaves a stored value
// (a store's map, a ktable row) untouched.
func (u User) clone() User {
	u.Scopes = slices.Clone(u.Scopes)
	u.RecoveryCodes = slices.Clone(u.RecoveryCodes)
	u.RequestKeys = slices.Clone(u.RequestKeys)
	if u.TOTP != nil {
		t := *u.TOTP
		u.TOTP = &t
	}
	return u
}

// newUserID returns a fresh user id: "usr_" and 32 hex digits (128 random
// bits).
func newUserID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails; crashes the program instead
	return "usr_" + hex.EncodeToString(b)
}

// Username length limits, in bytes (usernames are ASCII).
const (
	MinUsernameLen = 3
	MaxUsernameLen = 64
)

// ErrInvalidUsername is returned for a username CheckUsername refuses.
var ErrInvalidUsername = errors.New("invalid username")

// NormalizeUsername returns the stored form of a username: lower-cased.
// Lookups go through it too, so "Alice" and "alice" are the same user.
func NormalizeUsername(name string) string { return strings.ToLower(name) }

// CheckUsername reports whether name, already normalized, is a valid
// username: MinUsernameLen to MaxUsernameLen characters of a-z, 0-9 and
// "._-@+", starting with a letter or digit (so an email address works).
// The restricted alphabet keeps usernames unambiguous on screen and safe
// in an otpauth:// label.
func CheckUsername(name string) error {
	if len(name) < MinUsernameLen || len(name) > MaxUsernameLen {
		return fmt.Errorf("%w: must be %d to %d characters long", ErrInvalidUsername, MinUsernameLen, MaxUsernameLen)
	}
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case i > 0 && strings.ContainsRune("._-@+", r):
		default:
			return fmt.Errorf("%w: only a-z, 0-9 and ._-@+ are allowed, starting with a letter or digit", ErrInvalidUsername)
		}
	}
	return nil
}
