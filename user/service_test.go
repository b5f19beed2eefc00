package user_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vitalshq/vitals/user"
)

func TestCreate(t *testing.T) {
	ctx := context.Background()
	store := user.NewMemoryStore()
	c := newClock()
	s := newService(t, store, newSealer(t), c)

	u, err := s.Create(ctx, "Alice", goodPassword, []string{"admin"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u.ID, "usr_") || len(u.ID) != 4+32 {
		t.Errorf("ID = %q", u.ID)
	}
	if u.Username != "alice" || !slices.Equal(u.Scopes, []string{"admin"}) || !u.CreatedAt.Equal(t0) || !u.PasswordChangedAt.Equal(t0) {
		t.Errorf("user = %+v", u)
	}
	if u.PasswordHash == "" || strings.Contains(u.PasswordHash, goodPassword) {
		t.Errorf("PasswordHash = %q", u.PasswordHash)
	}
	if got, ok := store.User(u.ID); !ok || got.Username != "alice" {
		t.Fatalf("store.User = %+v, %v", got, ok)
	}
	if s.HasMFA(u) {
		t.Error("HasMFA of a new user")
	}

	// Usernames are unique regardless of case.
	for _, name := range []string{"alice", "ALICE"} {
		if _, err := s.Create(ctx, name, goodPassword, nil); !errors.Is(err, user.ErrExists) {
			t.Errorf("Create(%q) again = %v, want ErrExists", name, err)
		}
	}
	if _, err := s.Create(ctx, "b", goodPassword, nil); !errors.Is(err, user.ErrInvalidUsername) {
		t.Errorf("Create(short name) = %v", err)
	}
	if _, err := s.Create(ctx, "bob", "short", nil); !errors.Is(err, user.ErrPasswordTooShort) {
		t.Errorf("Create(short password) = %v", err)
	}
	if n := len(store.Users()); n != 1 {
		t.Errorf("%d users stored, want 1", n)
	}

	// The store itself refuses a second id with a taken username.
	dup := u
	dup.ID = "usr_other"
	if err := store.PutUser(ctx, dup); !errors.Is(err, user.ErrExists) {
		t.Errorf("MemoryStore.PutUser(duplicate username) = %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	s := newService(t, user.NewMemoryStore(), newSealer(t), newClock())
	created, err := s.Create(ctx, "alice", goodPassword, []string{"admin"})
	if err != nil {
		t.Fatal(err)
	}

	u, err := s.Authenticate(ctx, "Alice", goodPassword)
	if err != nil || u.ID != created.ID {
		t.Fatalf("Authenticate(right) = %+v, %v", u, err)
	}
	_, wrong := s.Authenticate(ctx, "alice", goodPassword+"x")
	_, unknown := s.Authenticate(ctx, "mallory", goodPassword)
	_, invalid := s.Authenticate(ctx, "no such/user", goodPassword)
	_, long := s.Authenticate(ctx, "alice", strings.Repeat("a", 2000))
	for name, err := range map[string]error{"wrong password": wrong, "unknown user": unknown, "invalid username": invalid, "overlong password": long} {
		if !errors.Is(err, user.ErrBadCredentials) {
			t.Errorf("%s: %v, want ErrBadCredentials", name, err)
		}
		if err.Error() != wrong.Error() {
			t.Errorf("%s: %q differs from wrong password's %q", name, err, wrong)
		}
	}

	// New password: the old one stops working.
	const newPassword = "another long passphrase"
	if err := s.SetPassword(ctx, created.ID, "short"); !errors.Is(err, user.ErrPasswordPolicy) {
		t.Fatalf("SetPassword(short) = %v", err)
	}
	if err := s.SetPassword(ctx, created.ID, newPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "alice", goodPassword); !errors.Is(err, user.ErrBadCredentials) {
		t.Errorf("old password after SetPassword: %v", err)
	}
	if _, err := s.Authenticate(ctx, "alice", newPassword); err != nil {
		t.Errorf("new password: %v", err)
	}

	// Disabled: said only to whoever knows the password.
	if err := s.SetDisabled(ctx, created.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "alice", newPassword); !errors.Is(err, user.ErrDisabled) {
		t.Errorf("disabled, right password: %v, want ErrDisabled", err)
	}
	if _, err := s.Authenticate(ctx, "alice", goodPassword); !errors.Is(err, user.ErrBadCredentials) {
		t.Errorf("disabled, wrong password: %v, want ErrBadCredentials", err)
	}
	if err := s.SetDisabled(ctx, "usr_nobody", true); !errors.Is(err, user.ErrNotFound) {
		t.Errorf("SetDisabled(unknown) = %v", err)
	}
}

// TestAuthenticateUnknownUserCostsAHash checks that an unknown username is
// not answered faster than a wrong password: both verify one hash.
func TestAuthenticateUnknownUserCostsAHash(t *testing.T) {
	ctx := context.Background()
	// Costly enough (a few ms) to stand out from a map lookup.
	p := user.TestParams()
	p.Memory = 8 * 1024
	s, err := user.New(user.NewMemoryStore(), newSealer(t), user.WithPasswordParams(p))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "alice", goodPassword, nil); err != nil {
		t.Fatal(err)
	}
	median := func(username string) time.Duration {
		var ds []time.Duration
		for range 7 {
			start := time.Now()
			if _, err := s.Authenticate(ctx, username, "wrong wrong wrong"); !errors.Is(err, user.ErrBadCredentials) {
				t.Fatal(err)
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	known, unknown := median("alice"), median("mallory")
	if unknown < known/3 {
		t.Fatalf("unknown user answered in %v, wrong password in %v: existence shows in the timing", unknown, known)
	}
}
