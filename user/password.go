package user

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password length limits, in characters (Unicode code points), after NIST
// SP 800-63B: long passphrases are welcome, composition rules are not.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

// Password policy errors. Every one of them matches ErrPasswordPolicy with
// errors.Is, so the API edge can map the class to one problem type and show
// the message.
var (
	// ErrPasswordPolicy is the class of passwords the policy refuses.
	ErrPasswordPolicy = errors.New("password does not meet the policy")
	// ErrPasswordTooShort: fewer than MinPasswordLen characters.
	ErrPasswordTooShort = fmt.Errorf("%w: too short", ErrPasswordPolicy)
	// ErrPasswordTooLong: more than MaxPasswordLen characters.
	ErrPasswordTooLong = fmt.Errorf("%w: too long", ErrPasswordPolicy)
	// ErrPasswordEncoding: not valid UTF-8, or containing control
	// characters (which no one can type reliably at a login page).
	ErrPasswordEncoding = fmt.Errorf("%w: not printable UTF-8 text", ErrPasswordPolicy)
)

// ErrMalformedHash is returned by VerifyPassword for a stored hash that is
// not an argon2id PHC string this package can verify.
var ErrMalformedHash = errors.New("malformed password hash")

// CheckPassword reports whether pw meets the password policy: between
// MinPasswordLen and MaxPasswordLen characters of valid UTF-8 without
// control characters. The error says which rule failed and never contains
// the password.
func CheckPassword(pw string) error {
	if !utf8.ValidString(pw) {
		return ErrPasswordEncoding
	}
	n := 0
	for _, r := range pw {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ErrPasswordEncoding
		}
		n++
	}
	switch {
	case n < MinPasswordLen:
		return fmt.Errorf("%w (%d characters; at least %d are needed)", ErrPasswordTooShort, n, MinPasswordLen)
	case n > MaxPasswordLen:
		return fmt.Errorf("%w (%d characters; at most %d are allowed)", ErrPasswordTooLong, n, MaxPasswordLen)
	}
	return nil
}

// Params are argon2id cost parameters. They are written into every hash
// (PHC string format), so changing them affects new hashes only and old
// hashes keep verifying.
type Params struct {
	// Memory is the memory cost in KiB.
	Memory uint32
	// Time is the number of passes over the memory.
	Time uint32
	// Threads is the degree of parallelism.
	Threads uint8
	// SaltLen and KeyLen are the salt and derived-key lengths in bytes.
	SaltLen uint32
	KeyLen  uint32
}

// DefaultParams returns the parameters for production: OWASP's argon2id
// recommendation m=19 MiB, t=2, p=1 (about 30-60 ms on one core), with a
// 16-byte salt and a 32-byte key. RFC 9106's first choice (2 GiB) and
// second (64 MiB) cost too much memory per concurrent login for a small
// API instance.
func DefaultParams() Params {
	return Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// TestParams returns cheap parameters (64 KiB, one pass) for tests only:
// hashes made with them are trivially brute-forced.
func TestParams() Params {
	return Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Limits on parameters read from a stored hash, so that a corrupted or
// hostile record cannot make a login allocate gigabytes or spin for minutes.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 64
	minSaltLen   = 8
	minKeyLen    = 16
	maxSaltOrKey = 128
)

// validate reports whether p can be used to hash.
func (p Params) validate() error {
	switch {
	case p.Threads == 0:
		return errors.New("argon2id threads must be at least 1")
	case p.Time == 0 || p.Time > maxTime:
		return fmt.Errorf("argon2id time %d is not in 1..%d", p.Time, maxTime)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB is not in %d..%d", p.Memory, 8*uint32(p.Threads), maxMemoryKiB)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltOrKey:
		return fmt.Errorf("argon2id salt length %d is not in %d..%d", p.SaltLen, minSaltLen, maxSaltOrKey)
	case p.KeyLen < minKeyLen || p.KeyLen > maxSaltOrKey:
		return fmt.Errorf("argon2id key length %d is not in %d..%d", p.KeyLen, minKeyLen, maxSaltOrKey)
	}
	return nil
}

// phcPrefix starts every hash this package writes.
const phcPrefix = "$argon2id$v=19$"

// Hash returns the argon2id hash of pw with a fresh random salt, as a PHC
// string: "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>" (unpadded
// standard base64). It does not apply the password policy; see
// CheckPassword.
func (p Params) Hash(pw string) (string, error) {
	if err := p.validate(); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	salt := make([]byte, p.SaltLen)
	_, _ = rand.Read(salt) // never fails; crashes the program instead
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("%sm=%d,t=%d,p=%d$%s$%s", phcPrefix, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// HashPassword returns the argon2id hash of pw with DefaultParams, as a PHC
// string. It does not apply the password policy; see CheckPassword.
func HashPassword(pw string) (string, error) { return DefaultParams().Hash(pw) }

// VerifyPassword reports whether pw matches hash, a PHC string written by
// Params.Hash with any parameters. The comparison is constant-time. The
// error is ErrMalformedHash (wrapped) when hash cannot be parsed; it never
// means a wrong password, which is (false, nil).
func VerifyPassword(hash, pw string) (bool, error) {
	p, salt, want, err := parsePHC(hash)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// parsePHC splits an argon2id PHC string into its parameters, salt and key.
func parsePHC(hash string) (Params, []byte, []byte, error) {
	malformed := func(format string, args ...any) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("%w: "+format, append([]any{ErrMalformedHash}, args...)...)
	}
	// "", "argon2id", "v=19", "m=…,t=…,p=…", salt, key
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" {
		return malformed("want 5 '$'-separated fields")
	}
	if parts[1] != "argon2id" {
		return malformed("algorithm %q is not argon2id", parts[1])
	}
	if parts[2] != "v=19" {
		return malformed("version %q is not v=19", parts[2])
	}
	var p Params
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return malformed("parameters %q are not m=…,t=…,p=…", parts[3])
	}
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(fields[i], name+"=")
		if !ok {
			return malformed("parameter %d is not %s=…", i+1, name)
		}
		bits := 32
		if name == "p" {
			bits = 8
		}
		n, err := strconv.ParseUint(v, 10, bits)
		if err != nil {
			return malformed("parameter %s: %v", name, err)
		}
		switch name {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			p.Threads = uint8(n)
		}
	}
	b64 := base64.RawStdEncoding.Strict()
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return malformed("salt: %v", err)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil {
		return malformed("hash: %v", err)
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if err := p.validate(); err != nil {
		return malformed("%v", err)
	}
	return p, salt, key, nil
}
