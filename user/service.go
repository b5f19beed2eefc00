package user

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Errors of the Service, to test with errors.Is and map at the API edge.
var (
	// ErrExists: the username is taken.
	ErrExists = errors.New("user already exists")
	// ErrNotFound: no user has the given id.
	ErrNotFound = errors.New("user not found")
	// ErrBadCredentials: unknown username or wrong password. The two are
	// deliberately the same error, so a login cannot probe for usernames.
	ErrBadCredentials = errors.New("invalid username or password")
	// ErrDisabled: the user exists, gave the right password, and is
	// disabled.
	ErrDisabled = errors.New("user is disabled")
	// ErrTOTPEnrolled: BeginTOTP or ConfirmTOTP for a user whose TOTP is
	// already confirmed; an administrator must ResetTOTP first.
	ErrTOTPEnrolled = errors.New("TOTP already enrolled")
	// ErrNoTOTP: ConfirmTOTP without a pending enrolment, or VerifyTOTP for
	// a user without a confirmed one.
	ErrNoTOTP = errors.New("no TOTP enrolment")
	// ErrBadCode: a TOTP code or recovery code that does not match.
	ErrBadCode = errors.New("invalid code")
	// ErrReplayed: a TOTP code for a time step already used.
	ErrReplayed = errors.New("TOTP code already used")
)

// Sealer encrypts secrets at rest (package keyring in production: AES-256-GCM
// under a data-encryption key). aad is bound to the ciphertext: Open with
// different aad fails, so a sealed value copied to another record does not
// open there.
type Sealer interface {
	Seal(plaintext, aad []byte) (string, error)
	Open(sealed string, aad []byte) ([]byte, error)
}

// Service manages users: creation, password authentication, TOTP
// enrolment and verification, recovery codes. It is safe for concurrent
// use. Read-modify-write operations are serialized within the instance;
// see VerifyTOTP for what that means across instances.
type Service struct {
	store  Store
	sealer Sealer
	now    func() time.Time
	params Params
	// dummyHash is verified against for unknown usernames, so that a
	// login takes as long whether or not the user exists.
	dummyHash string

	mu sync.Mutex // serializes read-modify-write of users
}

// Option configures a Service.
type Option func(*Service)

// WithClock sets the clock (default time.Now). Tests use it to walk TOTP
// time steps without sleeping.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithPasswordParams sets the argon2id parameters for new password hashes
// (default DefaultParams). Existing hashes verify with their own.
func WithPasswordParams(p Params) Option { return func(s *Service) { s.params = p } }

// New returns a Service over store, sealing TOTP seeds with sealer. It
// hashes one random password to have a dummy hash (see Authenticate), so
// it costs one password hash.
func New(store Store, sealer Sealer, opts ...Option) (*Service, error) {
	s := &Service{store: store, sealer: sealer, now: time.Now, params: DefaultParams()}
	for _, o := range opts {
		o(s)
	}
	dummy, err := s.params.Hash(rand.Text())
	if err != nil {
		return nil, fmt.Errorf("user service: %w", err)
	}
	s.dummyHash = dummy
	return s, nil
}

// Create adds a user. username is normalized (NormalizeUsername) and must
// pass CheckUsername; password must pass CheckPassword. A taken username
// is ErrExists.
func (s *Service) Create(ctx context.Context, username, password string, scopes []string) (User, error) {
	name := NormalizeUsername(username)
	if err := CheckUsername(name); err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	if err := CheckPassword(password); err != nil {
		return User{}, fmt.Errorf("create user %s: %w", name, err)
	}
	hash, err := s.params.Hash(password)
	if err != nil {
		return User{}, fmt.Errorf("create user %s: %w", name, err)
	}
	now := s.now().UTC()
	u := User{
		ID:                newUserID(),
		Username:          name,
		PasswordHash:      hash,
		Scopes:            slices.Clone(scopes),
		CreatedAt:         now,
		PasswordChangedAt: now,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.store.ByUsername(name); ok {
		return User{}, fmt.Errorf("create user %s: %w", name, ErrExists)
	}
	if err := s.store.PutUser(ctx, u); err != nil {
		return User{}, fmt.Errorf("create user %s: %w", name, err)
	}
	return u.clone(), nil
}

// Authenticate checks a username and password. An unknown username and a
// wrong password are both ErrBadCredentials, and an unknown username still
// costs one password hash (against a dummy), so neither the error nor the
// time taken tells whether the user exists. (A user whose stored hash has
// other parameters than this Service's takes correspondingly longer or
// shorter.) ErrDisabled is returned only after the right password.
//
// Authenticate is the first factor only: when HasMFA, the caller must
// also get VerifyTOTP or UseRecoveryCode to succeed. It does not limit
// attempts; the caller must.
func (s *Service) Authenticate(_ context.Context, username, password string) (User, error) {
	// Longer than any policy-conforming password: refused before any
	// lookup, which tells nothing about the user.
	if len(password) > 4*MaxPasswordLen {
		return User{}, ErrBadCredentials
	}
	u, found := s.store.ByUsername(NormalizeUsername(username))
	hash := s.dummyHash
	if found {
		hash = u.PasswordHash
	}
	ok, err := VerifyPassword(hash, password)
	if err != nil && found {
		return User{}, fmt.Errorf("authenticate %s: stored hash: %w", u.ID, err)
	}
	if !found || !ok {
		return User{}, ErrBadCredentials
	}
	if u.Disabled {
		return User{}, fmt.Errorf("authenticate %s: %w", u.ID, ErrDisabled)
	}
	return u, nil
}

// SetPassword replaces user id's password, which must pass CheckPassword.
func (s *Service) SetPassword(ctx context.Context, id, password string) error {
	if err := CheckPassword(password); err != nil {
		return fmt.Errorf("set password of %s: %w", id, err)
	}
	hash, err := s.params.Hash(password)
	if err != nil {
		return fmt.Errorf("set password of %s: %w", id, err)
	}
	_, err = s.update(ctx, id, func(u *User) error {
		u.PasswordHash = hash
		u.PasswordChangedAt = s.now().UTC()
		return nil
	})
	if err != nil {
		return fmt.Errorf("set password of %s: %w", id, err)
	}
	return nil
}

// SetDisabled disables or re-enables user id. A disabled user cannot
// authenticate, enrol or verify codes.
func (s *Service) SetDisabled(ctx context.Context, id string, disabled bool) error {
	_, err := s.update(ctx, id, func(u *User) error {
		u.Disabled = disabled
		return nil
	})
	if err != nil {
		return fmt.Errorf("set disabled of %s: %w", id, err)
	}
	return nil
}

// HasMFA reports whether u has a confirmed second factor, so that a login
// must go on to VerifyTOTP or UseRecoveryCode.
func (s *Service) HasMFA(u User) bool { return u.TOTP != nil && u.TOTP.Confirmed }

// update reads user id, applies fn to a copy and stores the result, all
// under s.mu. When fn fails nothing is stored. Errors are returned as they
// are (ErrNotFound, fn's, the store's): callers add context.
func (s *Service) update(ctx context.Context, id string, fn func(*User) error) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.store.User(id)
	if !ok {
		return User{}, ErrNotFound
	}
	u = u.clone()
	if err := fn(&u); err != nil {
		return User{}, err
	}
	if err := s.store.PutUser(ctx, u); err != nil {
		return User{}, err
	}
	return u.clone(), nil
}
