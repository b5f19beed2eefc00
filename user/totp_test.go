package user_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/color"
	"image/png"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vitalshq/vitals/user"
)

// enrolled creates alice with a confirmed TOTP (confirmed with the code
// of the clock's current step) and returns her id, base32 secret and
// recovery codes.
func enrolled(t *testing.T, s *user.Service, c *clock) (string, string, []string) {
	t.Helper()
	ctx := context.Background()
	u, err := s.Create(ctx, "alice", goodPassword, []string{"admin"})
	if err != nil {
		t.Fatal(err)
	}
	enr, err := s.BeginTOTP(ctx, u.ID, "Vitals")
	if err != nil {
		t.Fatal(err)
	}
	codes, err := s.ConfirmTOTP(ctx, u.ID, code(t, enr.Secret, c.Now()))
	if err != nil {
		t.Fatal(err)
	}
	return u.ID, enr.Secret, codes
}

func TestBeginTOTP(t *testing.T) {
	ctx := context.Background()
	store := user.NewMemoryStore()
	c := newClock()
	s := newService(t, store, newSealer(t), c)
	u, err := s.Create(ctx, "alice@example.com", goodPassword, nil)
	if err != nil {
		t.Fatal(err)
	}

	enr, err := s.BeginTOTP(ctx, u.ID, "Vitals Prod")
	if err != nil {
		t.Fatal(err)
	}
	uri, err := url.Parse(enr.URI)
	if err != nil {
		t.Fatal(err)
	}
	q := uri.Query()
	if uri.Scheme != "otpauth" || uri.Host != "totp" || uri.Path != "/Vitals Prod:alice@example.com" {
		t.Errorf("URI = %s", enr.URI)
	}
	if q.Get("issuer") != "Vitals Prod" || q.Get("secret") != enr.Secret || q.Get("digits") != "6" || q.Get("period") != "30" || q.Get("algorithm") != "SHA1" {
		t.Errorf("URI query = %v", q)
	}
	if !regexp.MustCompile(`^[A-Z2-7]{32}$`).MatchString(enr.Secret) {
		t.Errorf("Secret = %q, want 160 bits of base32", enr.Secret)
	}

	img, err := png.Decode(bytes.NewReader(enr.QRPNG))
	if err != nil {
		t.Fatalf("QR code is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 256 || b.Dy() != 256 {
		t.Errorf("QR image is %v, want 256×256", b)
	}
	var dark, light int
	for y := range 256 {
		for x := range 256 {
			if color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y < 128 {
				dark++
			} else {
				light++
			}
		}
	}
	if dark < 256*256/5 || light < 256*256/5 {
		t.Errorf("QR image has %d dark and %d light pixels: not a QR code", dark, light)
	}

	// Pending: sealed, not confirmed, not MFA yet, nothing to verify against.
	stored, _ := store.User(u.ID)
	if stored.TOTP == nil || stored.TOTP.Confirmed || stored.TOTP.SealedSecret == "" || s.HasMFA(stored) {
		t.Fatalf("stored TOTP = %+v", stored.TOTP)
	}
	if err := s.VerifyTOTP(ctx, u.ID, code(t, enr.Secret, c.Now())); !errors.Is(err, user.ErrNoTOTP) {
		t.Errorf("VerifyTOTP while pending = %v, want ErrNoTOTP", err)
	}

	// Begin again replaces the pending seed: the first one no longer confirms.
	enr2, err := s.BeginTOTP(ctx, u.ID, "Vitals Prod")
	if err != nil {
		t.Fatal(err)
	}
	if enr2.Secret == enr.Secret {
		t.Fatal("second enrolment has the same secret")
	}
	if _, err := s.ConfirmTOTP(ctx, u.ID, code(t, enr.Secret, c.Now())); !errors.Is(err, user.ErrBadCode) {
		t.Errorf("ConfirmTOTP with the replaced seed = %v, want ErrBadCode", err)
	}
	if _, err := s.ConfirmTOTP(ctx, u.ID, code(t, enr2.Secret, c.Now())); err != nil {
		t.Fatal(err)
	}

	// Confirmed: no new enrolment until an administrator resets it.
	if _, err := s.BeginTOTP(ctx, u.ID, "Vitals Prod"); !errors.Is(err, user.ErrTOTPEnrolled) {
		t.Errorf("BeginTOTP when confirmed = %v, want ErrTOTPEnrolled", err)
	}
	if err := s.ResetTOTP(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	stored, _ = store.User(u.ID)
	if stored.TOTP != nil || len(stored.RecoveryCodes) != 0 || s.HasMFA(stored) {
		t.Fatalf("after ResetTOTP: %+v", stored)
	}
	if _, err := s.BeginTOTP(ctx, u.ID, "Vitals Prod"); err != nil {
		t.Errorf("BeginTOTP after reset = %v", err)
	}

	if _, err := s.BeginTOTP(ctx, u.ID, ""); err == nil {
		t.Error("BeginTOTP with no issuer succeeded")
	}
	if _, err := s.BeginTOTP(ctx, "usr_nobody", "Vitals"); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("BeginTOTP(unknown) = %v", err)
	}
	if _, err := s.ConfirmTOTP(ctx, "usr_nobody", "123456"); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("ConfirmTOTP(unknown) = %v", err)
	}
}

func TestConfirmTOTP(t *testing.T) {
	ctx := context.Background()
	store := user.NewMemoryStore()
	c := newClock()
	s := newService(t, store, newSealer(t), c)
	u, err := s.Create(ctx, "alice", goodPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConfirmTOTP(ctx, u.ID, "123456"); !errors.Is(err, user.ErrNoTOTP) {
		t.Errorf("ConfirmTOTP before BeginTOTP = %v, want ErrNoTOTP", err)
	}
	enr, err := s.BeginTOTP(ctx, u.ID, "Vitals")
	if err != nil {
		t.Fatal(err)
	}

	right := code(t, enr.Secret, c.Now())
	wrong := code(t, enr.Secret, c.Now().Add(5*time.Minute))
	for _, bad := range []string{wrong, "", "12345", "1234567", "abcdef"} {
		if _, err := s.ConfirmTOTP(ctx, u.ID, bad); !errors.Is(err, user.ErrBadCode) {
			t.Errorf("ConfirmTOTP(%q) = %v, want ErrBadCode", bad, err)
		}
	}
	if stored, _ := store.User(u.ID); stored.TOTP.Confirmed {
		t.Fatal("confirmed by a wrong code")
	}

	codes, err := s.ConfirmTOTP(ctx, u.ID, right[:3]+" "+right[3:]) // as some apps show it
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != user.RecoveryCodeCount || user.RecoveryCodeCount != 10 {
		t.Fatalf("%d recovery codes, want 10", len(codes))
	}
	seen := map[string]bool{}
	format := regexp.MustCompile(`^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$`)
	for _, rc := range codes {
		if seen[rc] || !format.MatchString(rc) {
			t.Errorf("recovery code %q is repeated or malformed", rc)
		}
		seen[rc] = true
	}

	stored, _ := store.User(u.ID)
	if !stored.TOTP.Confirmed || !s.HasMFA(stored) || stored.TOTP.LastStep != t0.Unix()/30 || len(stored.RecoveryCodes) != 10 {
		t.Fatalf("stored = %+v, TOTP %+v", stored, stored.TOTP)
	}
	if _, err := s.ConfirmTOTP(ctx, u.ID, code(t, enr.Secret, c.Now().Add(30*time.Second))); !errors.Is(err, user.ErrTOTPEnrolled) {
		t.Errorf("ConfirmTOTP again = %v, want ErrTOTPEnrolled", err)
	}

	// Nothing secret is stored in the clear.
	raw, err := json.Marshal(stored)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecrets(t, raw, enr.Secret, codes)
}

// assertNoSecrets fails t if raw holds the TOTP secret or any recovery
// code, in any of the forms they are shown or typed.
func assertNoSecrets(t *testing.T, raw []byte, secret string, codes []string) {
	t.Helper()
	lower := bytes.ToLower(raw)
	if bytes.Contains(lower, []byte(strings.ToLower(secret))) {
		t.Errorf("stored user contains the TOTP secret: %s", raw)
	}
	for _, rc := range codes {
		if bytes.Contains(lower, []byte(rc)) || bytes.Contains(lower, []byte(strings.ReplaceAll(rc, "-", ""))) {
			t.Errorf("stored user contains recovery code %s: %s", rc, raw)
		}
	}
	if bytes.Contains(raw, []byte(goodPassword)) {
		t.Errorf("stored user contains the password")
	}
}

func TestVerifyTOTPReplay(t *testing.T) {
	ctx := context.Background()
	store := user.NewMemoryStore()
	c := newClock()
	s := newService(t, store, newSealer(t), c)
	id, secret, _ := enrolled(t, s, c)

	// The confirming code was the current step's: it cannot be used again.
	if err := s.VerifyTOTP(ctx, id, code(t, secret, c.Now())); !errors.Is(err, user.ErrReplayed) {
		t.Fatalf("VerifyTOTP(confirming code) = %v, want ErrReplayed", err)
	}
	c.Advance(30 * time.Second)
	next := code(t, secret, c.Now())
	if err := s.VerifyTOTP(ctx, id, next); err != nil {
		t.Fatalf("VerifyTOTP(next step) = %v", err)
	}
	if stored, _ := store.User(id); stored.TOTP.LastStep != c.Now().Unix()/30 {
		t.Errorf("LastStep = %d, want %d", stored.TOTP.LastStep, c.Now().Unix()/30)
	}
	if err := s.VerifyTOTP(ctx, id, next); !errors.Is(err, user.ErrReplayed) {
		t.Fatalf("VerifyTOTP(same code again) = %v, want ErrReplayed", err)
	}
	// Still refused later in the skew window, and an older step too.
	c.Advance(30 * time.Second)
	if err := s.VerifyTOTP(ctx, id, next); !errors.Is(err, user.ErrReplayed) {
		t.Fatalf("VerifyTOTP(same code, next step) = %v, want ErrReplayed", err)
	}
	if err := s.VerifyTOTP(ctx, id, code(t, secret, c.Now())); err != nil {
		t.Fatalf("VerifyTOTP(new step) = %v", err)
	}
	if err := s.VerifyTOTP(ctx, id, code(t, secret, c.Now().Add(-30*time.Second))); !errors.Is(err, user.ErrReplayed) {
		t.Fatalf("VerifyTOTP(older step) = %v, want ErrReplayed", err)
	}
	if err := s.VerifyTOTP(ctx, id, "000000x"); !errors.Is(err, user.ErrBadCode) {
		t.Fatalf("VerifyTOTP(garbage) = %v", err)
	}
}

func TestVerifyTOTPSkew(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := newService(t, user.NewMemoryStore(), newSealer(t), c)
	id, secret, _ := enrolled(t, s, c)
	c.Advance(time.Hour + 10*time.Second)
	now := c.Now()

	for _, d := range []time.Duration{-60 * time.Second, 60 * time.Second, -90 * time.Second, 90 * time.Second} {
		if err := s.VerifyTOTP(ctx, id, code(t, secret, now.Add(d))); !errors.Is(err, user.ErrBadCode) {
			t.Errorf("code from %v = %v, want ErrBadCode", d, err)
		}
	}
	// One step behind, then one step ahead (later steps after earlier ones).
	if err := s.VerifyTOTP(ctx, id, code(t, secret, now.Add(-30*time.Second))); err != nil {
		t.Errorf("code from one step behind = %v", err)
	}
	if err := s.VerifyTOTP(ctx, id, code(t, secret, now.Add(30*time.Second))); err != nil {
		t.Errorf("code from one step ahead = %v", err)
	}
	// The current step is now behind the last accepted one.
	if err := s.VerifyTOTP(ctx, id, code(t, secret, now)); !errors.Is(err, user.ErrReplayed) {
		t.Errorf("current code after a later one = %v, want ErrReplayed", err)
	}
}

func TestVerifyTOTPRefusals(t *testing.T) {
	ctx := context.Background()
	store := user.NewMemoryStore()
	c := newClock()
	s := newService(t, store, newSealer(t), c)
	id, secret, _ := enrolled(t, s, c)

	bob, err := s.Create(ctx, "bob", goodPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyTOTP(ctx, bob.ID, "123456"); !errors.Is(err, user.ErrNoTOTP) {
		t.Errorf("VerifyTOTP without enrolment = %v, want ErrNoTOTP", err)
	}
	if err := s.VerifyTOTP(ctx, "usr_nobody", "123456"); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("VerifyTOTP(unknown) = %v, want ErrNotFound", err)
	}

	// The sealed seed is bound to its user: copied into bob's record it
	// does not open, and alice's codes do not work for bob.
	alice, _ := store.User(id)
	bob.TOTP = alice.TOTP
	if err := store.PutUser(ctx, bob); err != nil {
		t.Fatal(err)
	}
	c.Advance(30 * time.Second)
	err = s.VerifyTOTP(ctx, bob.ID, code(t, secret, c.Now()))
	if err == nil || errors.Is(err, user.ErrBadCode) || errors.Is(err, user.ErrReplayed) {
		t.Errorf("VerifyTOTP with a copied seed = %v, want an open error", err)
	}

	if err := s.SetDisabled(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyTOTP(ctx, id, code(t, secret, c.Now())); !errors.Is(err, user.ErrDisabled) {
		t.Errorf("VerifyTOTP of a disabled user = %v, want ErrDisabled", err)
	}
}

// barrierStore, once armed, holds every User read until n readers are
// inside it (or a short timeout passes), so that concurrent
// read-modify-writes that are not serialized all read the same state.
type barrierStore struct {
	*user.MemoryStore
	n       int
	mu      sync.Mutex
	armed   bool
	waiting int
	release chan struct{}
}

func (b *barrierStore) arm() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.armed, b.waiting, b.release = true, 0, make(chan struct{})
}

func (b *barrierStore) User(id string) (user.User, bool) {
	b.mu.Lock()
	armed, release := b.armed, b.release
	if armed {
		b.waiting++
		if b.waiting == b.n {
			close(b.release)
		}
	}
	b.mu.Unlock()
	if armed {
		select {
		case <-release:
		case <-time.After(100 * time.Millisecond):
		}
	}
	return b.MemoryStore.User(id)
}

func TestVerifyTOTPConcurrentSameCode(t *testing.T) {
	ctx := context.Background()
	const n = 4
	bs := &barrierStore{MemoryStore: user.NewMemoryStore(), n: n}
	c := newClock()
	s := newService(t, bs, newSealer(t), c)
	id, secret, _ := enrolled(t, s, c)
	c.Advance(30 * time.Second)
	now := code(t, secret, c.Now())

	bs.arm()
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			err := s.VerifyTOTP(ctx, id, now)
			switch {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, user.ErrReplayed):
				t.Errorf("VerifyTOTP = %v", err)
			}
		})
	}
	wg.Wait()
	if got := ok.Load(); got != 1 {
		t.Fatalf("%d of %d concurrent VerifyTOTP with one code succeeded, want 1", got, n)
	}
}

func TestRecoveryCodes(t *testing.T) {
	ctx := context.Background()
	store := user.NewMemoryStore()
	c := newClock()
	s := newService(t, store, newSealer(t), c)
	id, _, codes := enrolled(t, s, c)

	if err := s.UseRecoveryCode(ctx, id, codes[3]); err != nil {
		t.Fatalf("UseRecoveryCode = %v", err)
	}
	if err := s.UseRecoveryCode(ctx, id, codes[3]); !errors.Is(err, user.ErrBadCode) {
		t.Fatalf("UseRecoveryCode(used) = %v, want ErrBadCode", err)
	}
	// Case, dashes and spaces do not matter.
	typed := " " + strings.ToUpper(strings.ReplaceAll(codes[0], "-", " ")) + " "
	if err := s.UseRecoveryCode(ctx, id, typed); err != nil {
		t.Fatalf("UseRecoveryCode(%q) = %v", typed, err)
	}
	for _, bad := range []string{"", "abcd-efgh-ijkl-mnop", codes[1] + "a", codes[1][:18]} {
		if err := s.UseRecoveryCode(ctx, id, bad); !errors.Is(err, user.ErrBadCode) {
			t.Errorf("UseRecoveryCode(%q) = %v, want ErrBadCode", bad, err)
		}
	}
	stored, _ := store.User(id)
	if len(stored.RecoveryCodes) != 8 {
		t.Fatalf("%d recovery codes left, want 8", len(stored.RecoveryCodes))
	}
	// Codes are per user.
	bob, err := s.Create(ctx, "bob", goodPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	bob.RecoveryCodes = stored.RecoveryCodes
	if err := store.PutUser(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if err := s.UseRecoveryCode(ctx, bob.ID, codes[1]); !errors.Is(err, user.ErrBadCode) {
		t.Errorf("alice's code for bob = %v, want ErrBadCode", err)
	}
	// Reset removes them.
	if err := s.ResetTOTP(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.UseRecoveryCode(ctx, id, codes[1]); !errors.Is(err, user.ErrBadCode) {
		t.Errorf("UseRecoveryCode after reset = %v, want ErrBadCode", err)
	}
}
