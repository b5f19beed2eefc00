package user

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: RFC 6238 defaults, the only ones every authenticator
// app honours.
const (
	totpPeriod   = 30 // seconds per step
	totpDigits   = otp.DigitsSix
	totpSeedLen  = 20 // bytes: 160 bits, RFC 4226's recommendation for SHA-1
	totpSkew     = 1  // steps accepted either side of now
	qrImageSize  = 256
	seedAADLabel = "totp-seed:"
)

// b32 is the base32 form of seeds in otpauth:// URIs.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Enrollment is what BeginTOTP shows the user, once: the seed as an
// otpauth:// URI, as a QR code of that URI, and as base32 text for typing
// into an app by hand.
type Enrollment struct {
	URI    string // otpauth://totp/Issuer:username?secret=…&issuer=…
	QRPNG  []byte // PNG, qrImageSize pixels square
	Secret string // base32, unpadded
}

// seedAAD is the additional data sealing a user's TOTP seed: the seed
// opens only in that user's record.
func seedAAD(userID string) []byte { return []byte(seedAADLabel + userID) }

// BeginTOTP starts TOTP enrolment for user id: a fresh seed, stored sealed
// and unconfirmed (replacing an earlier unconfirmed one), and returned as
// an Enrollment labelled with issuer and the username. It is
// ErrTOTPEnrolled when the user already has a confirmed TOTP: an
// administrator must ResetTOTP first, so a stolen session cannot silently
// move the second factor to another device.
func (s *Service) BeginTOTP(ctx context.Context, id, issuer string) (Enrollment, error) {
	if strings.TrimSpace(issuer) == "" {
		return Enrollment{}, fmt.Errorf("begin TOTP of %s: empty issuer", id)
	}
	seed := make([]byte, totpSeedLen)
	_, _ = rand.Read(seed) // never fails; crashes the program instead
	sealed, err := s.sealer.Seal(seed, seedAAD(id))
	if err != nil {
		return Enrollment{}, fmt.Errorf("begin TOTP of %s: seal seed: %w", id, err)
	}
	var enr Enrollment
	_, err = s.update(ctx, id, func(u *User) error {
		if u.Disabled {
			return ErrDisabled
		}
		if u.TOTP != nil && u.TOTP.Confirmed {
			return ErrTOTPEnrolled
		}
		key, err := totp.Generate(totp.GenerateOpts{
			Issuer:      issuer,
			AccountName: u.Username,
			Period:      totpPeriod,
			Secret:      seed,
			Digits:      totpDigits,
			Algorithm:   otp.AlgorithmSHA1,
		})
		if err != nil {
			return fmt.Errorf("otpauth URI: %w", err)
		}
		img, err := key.Image(qrImageSize, qrImageSize)
		if err != nil {
			return fmt.Errorf("QR code: %w", err)
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			return fmt.Errorf("QR code: %w", err)
		}
		enr = Enrollment{URI: key.String(), QRPNG: buf.Bytes(), Secret: key.Secret()}
		u.TOTP = &TOTP{SealedSecret: sealed}
		return nil
	})
	if err != nil {
		return Enrollment{}, fmt.Errorf("begin TOTP of %s: %w", id, err)
	}
	return enr, nil
}

// ConfirmTOTP completes the pending enrolment of user id with a first code
// from the app (proof that it holds the seed). It marks the TOTP
// confirmed, records the code's step as used, and returns
// RecoveryCodeCount fresh recovery codes, to be shown once; only their
// hashes are stored, replacing any earlier ones.
func (s *Service) ConfirmTOTP(ctx context.Context, id, code string) ([]string, error) {
	var codes []string
	_, err := s.update(ctx, id, func(u *User) error {
		if u.Disabled {
			return ErrDisabled
		}
		switch {
		case u.TOTP == nil:
			return ErrNoTOTP
		case u.TOTP.Confirmed:
			return ErrTOTPEnrolled
		}
		step, err := s.checkCode(u, code)
		if err != nil {
			return err
		}
		var hashes []string
		codes, hashes = newRecoveryCodes(u.ID)
		u.TOTP.Confirmed = true
		u.TOTP.LastStep = step
		u.RecoveryCodes = hashes
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("confirm TOTP of %s: %w", id, err)
	}
	return codes, nil
}

// VerifyTOTP checks a code from user id's confirmed authenticator app,
// accepting the current step and one either side (clock skew). A code for
// a step at or before the last accepted one is ErrReplayed: each code
// works once. The step is stored (PutUser) before VerifyTOTP returns nil,
// and checks are serialized within this Service, so on one instance a
// code never works twice.
//
// Across instances there is a window: another API instance that has not
// yet read this write from the topic (normally milliseconds) would accept
// the same code once more. Kafka offers no compare-and-set to close it;
// an attacker would need the code and the password within that window.
//
// VerifyTOTP does not limit attempts (a 6-digit code with ±1 step is
// guessed with probability 3/10⁶ per try): the caller must.
func (s *Service) VerifyTOTP(ctx context.Context, id, code string) error {
	_, err := s.update(ctx, id, func(u *User) error {
		if u.Disabled {
			return ErrDisabled
		}
		if u.TOTP == nil || !u.TOTP.Confirmed {
			return ErrNoTOTP
		}
		step, err := s.checkCode(u, code)
		if err != nil {
			return err
		}
		u.TOTP.LastStep = step
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify TOTP of %s: %w", id, err)
	}
	return nil
}

// ResetTOTP removes user id's TOTP enrolment (pending or confirmed) and
// recovery codes, so the user can enrol again. It is an administrator's
// action, for a lost device.
func (s *Service) ResetTOTP(ctx context.Context, id string) error {
	_, err := s.update(ctx, id, func(u *User) error {
		u.TOTP = nil
		u.RecoveryCodes = nil
		return nil
	})
	if err != nil {
		return fmt.Errorf("reset TOTP of %s: %w", id, err)
	}
	return nil
}

// checkCode opens u's seed and returns the step, later than
// u.TOTP.LastStep and within totpSkew of now, whose code is code. It is
// ErrReplayed when code matches only steps already used, ErrBadCode when
// it matches none.
func (s *Service) checkCode(u *User, code string) (int64, error) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != totpDigits.Length() || strings.Trim(code, "0123456789") != "" {
		return 0, ErrBadCode
	}
	seed, err := s.sealer.Open(u.TOTP.SealedSecret, seedAAD(u.ID))
	if err != nil {
		return 0, fmt.Errorf("open TOTP seed: %w", err)
	}
	secret := b32.EncodeToString(seed)
	now := timeStep(s.now())
	replayed := false
	for step := now - totpSkew; step <= now+totpSkew; step++ {
		want, err := hotp.GenerateCodeCustom(secret, uint64(step), hotp.ValidateOpts{
			Digits:    totpDigits,
			Algorithm: otp.AlgorithmSHA1,
		})
		if err != nil {
			return 0, fmt.Errorf("TOTP code: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) != 1 {
			continue
		}
		if step <= u.TOTP.LastStep {
			replayed = true
			continue
		}
		return step, nil
	}
	if replayed {
		return 0, ErrReplayed
	}
	return 0, ErrBadCode
}

// timeStep returns the RFC 6238 time step of t.
func timeStep(t time.Time) int64 {
	sec := t.Unix()
	step := sec / totpPeriod
	if sec < 0 && sec%totpPeriod != 0 {
		step--
	}
	return step
}
