package user

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// RecoveryCodeCount is how many recovery codes ConfirmTOTP issues.
const RecoveryCodeCount = 10

// recoveryCodeBytes of randomness make a code: 80 bits, 16 base32
// characters, shown as four groups of four ("abcd-efgh-ijkl-mnop").
const recoveryCodeBytes = 10

// recoveryEncoding is lower-case RFC 4648 base32: no 0, 1, 8 or 9 to
// confuse with letters.
var recoveryEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// recoveryHashPrefix names the hash function inside a stored recovery code
// hash, so a later change of function can tell old hashes apart.
const recoveryHashPrefix = "sha256:"

// newRecoveryCodes returns RecoveryCodeCount fresh codes for user id and
// their stored hashes, in the same order.
func newRecoveryCodes(userID string) (codes, hashes []string) {
	for range RecoveryCodeCount {
		b := make([]byte, recoveryCodeBytes)
		_, _ = rand.Read(b) // never fails; crashes the program instead
		raw := recoveryEncoding.EncodeToString(b)
		codes = append(codes, raw[0:4]+"-"+raw[4:8]+"-"+raw[8:12]+"-"+raw[12:16])
		hashes = append(hashes, hashRecoveryCode(userID, raw))
	}
	return codes, hashes
}

// normalizeRecoveryCode returns code as generated before grouping: lower
// case, without the dashes and spaces people type or paste.
func normalizeRecoveryCode(code string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(code)))
}

// hashRecoveryCode returns the stored form of a normalized recovery code:
// "sha256:" and the hex SHA-256 of the code with the user id. A fast hash
// is enough because codes are 80-bit random values, not passwords; the id
// makes equal codes of two users hash differently.
func hashRecoveryCode(userID, normalized string) string {
	sum := sha256.Sum256([]byte("vitals recovery code\x00" + userID + "\x00" + normalized))
	return recoveryHashPrefix + hex.EncodeToString(sum[:])
}

// UseRecoveryCode signs user id in with one of their recovery codes
// instead of a TOTP code (case, dashes and spaces do not matter). The code
// is removed before UseRecoveryCode returns nil, so it works once. A code
// that matches none is ErrBadCode. As with VerifyTOTP, the caller must
// limit attempts, and another instance may accept the same code within
// the moment before it reads the removal.
func (s *Service) UseRecoveryCode(ctx context.Context, id, code string) error {
	norm := normalizeRecoveryCode(code)
	_, err := s.update(ctx, id, func(u *User) error {
		if u.Disabled {
			return ErrDisabled
		}
		if len(norm) != 16 {
			return ErrBadCode
		}
		h := []byte(hashRecoveryCode(u.ID, norm))
		match := -1
		for i, stored := range u.RecoveryCodes {
			if subtle.ConstantTimeCompare(h, []byte(stored)) == 1 {
				match = i
			}
		}
		if match < 0 {
			return ErrBadCode
		}
		u.RecoveryCodes = slices.Delete(u.RecoveryCodes, match, match+1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("use recovery code of %s: %w", id, err)
	}
	return nil
}
