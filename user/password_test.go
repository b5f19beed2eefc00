package user_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vitalshq/vitals/user"
)

func TestHashAndVerifyPassword(t *testing.T) {
	// The production parameters, once, to pin the PHC string they write.
	h, err := user.HashPassword(goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash = %q, want argon2id m=19456,t=2,p=1", h)
	}
	if strings.Contains(h, goodPassword) {
		t.Fatal("hash contains the password")
	}
	ok, err := user.VerifyPassword(h, goodPassword)
	if err != nil || !ok {
		t.Fatalf("VerifyPassword(right) = %v, %v", ok, err)
	}
	ok, err = user.VerifyPassword(h, goodPassword+"!")
	if err != nil || ok {
		t.Fatalf("VerifyPassword(wrong) = %v, %v", ok, err)
	}

	// Other parameters verify from what the hash says, not the defaults.
	p := user.TestParams()
	p.Time, p.KeyLen, p.SaltLen = 3, 24, 12
	h2, err := p.Hash(goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h2, "$argon2id$v=19$m=64,t=3,p=1$") {
		t.Fatalf("hash = %q", h2)
	}
	if ok, err := user.VerifyPassword(h2, goodPassword); err != nil || !ok {
		t.Fatalf("VerifyPassword(other params) = %v, %v", ok, err)
	}
	// A fresh salt every time.
	h3, _ := p.Hash(goodPassword)
	if h3 == h2 {
		t.Fatal("two hashes of one password are equal")
	}
	// Bad parameters are refused.
	if _, err := (user.Params{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32}).Hash("x"); err == nil {
		t.Fatal("Hash with t=0 succeeded")
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	good, err := user.TestParams().Hash(goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=…, salt, key
	salt, key := parts[4], parts[5]
	for name, h := range map[string]string{
		"empty":          "",
		"bcrypt":         "$2a$10$abcdefghijklmnopqrstuu5Q0Vq1u3yQ0yq7c8kqgkq6m1nJm6",
		"argon2i":        "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"version 16":     "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"missing field":  "$argon2id$v=19$m=64,t=1,p=1$" + salt,
		"extra field":    good + "$x",
		"no leading $":   strings.TrimPrefix(good, "$"),
		"params order":   "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key,
		"params count":   "$argon2id$v=19$m=64,t=1$" + salt + "$" + key,
		"not a number":   "$argon2id$v=19$m=lots,t=1,p=1$" + salt + "$" + key,
		"p overflows":    "$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key,
		"zero time":      "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"huge memory":    "$argon2id$v=19$m=4194304,t=1,p=1$" + salt + "$" + key,
		"huge time":      "$argon2id$v=19$m=64,t=100000,p=1$" + salt + "$" + key,
		"bad salt b64":   "$argon2id$v=19$m=64,t=1,p=1$!!!!$" + key,
		"padded key b64": "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "==",
		"short salt":     "$argon2id$v=19$m=64,t=1,p=1$AAAA$" + key,
		"short key":      "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$AAAA",
	} {
		t.Run(name, func(t *testing.T) {
			ok, err := user.VerifyPassword(h, goodPassword)
			if ok || !errors.Is(err, user.ErrMalformedHash) {
				t.Fatalf("VerifyPassword = %v, %v; want ErrMalformedHash", ok, err)
			}
			if strings.Contains(err.Error(), goodPassword) {
				t.Fatalf("error %q contains the password", err)
			}
		})
	}
}

func TestCheckPassword(t *testing.T) {
	for name, tc := range map[string]struct {
		pw   string
		want error
	}{
		"empty":             {"", user.ErrPasswordTooShort},
		"11 characters":     {strings.Repeat("a", 11), user.ErrPasswordTooShort},
		"12 characters":     {strings.Repeat("a", 12), nil},
		"12 multibyte":      {strings.Repeat("é", 12), nil},
		"11 multibyte":      {strings.Repeat("é", 11), user.ErrPasswordTooShort}, // 22 bytes
		"256 characters":    {strings.Repeat("a", 256), nil},
		"257 characters":    {strings.Repeat("a", 257), user.ErrPasswordTooLong},
		"256 multibyte":     {strings.Repeat("日", 256), nil},
		"invalid UTF-8":     {strings.Repeat("a", 12) + "\xff", user.ErrPasswordEncoding},
		"control character": {strings.Repeat("a", 12) + "\n", user.ErrPasswordEncoding},
		"spaces are fine":   {"a passphrase with spaces", nil},
	} {
		t.Run(name, func(t *testing.T) {
			err := user.CheckPassword(tc.pw)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("CheckPassword = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, user.ErrPasswordPolicy) {
				t.Fatalf("CheckPassword = %v, want %v (a policy error)", err, tc.want)
			}
		})
	}
	err := user.CheckPassword("short")
	if want := "at least 12"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	if strings.Contains(err.Error(), "short\"") {
		t.Fatalf("error %q quotes the password", err)
	}
}

func TestCheckUsername(t *testing.T) {
	for _, ok := range []string{"alice", "bob.smith", "ops-admin_2", "alice+vitals@example.com", "a1b"} {
		if err := user.CheckUsername(ok); err != nil {
			t.Errorf("CheckUsername(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "ab", strings.Repeat("a", 65), "Alice", "al ice", ".alice", "-x-", "älice", "a/b", "a:b"} {
		if err := user.CheckUsername(bad); !errors.Is(err, user.ErrInvalidUsername) {
			t.Errorf("CheckUsername(%q) = %v, want ErrInvalidUsername", bad, err)
		}
	}
}
