package keyring_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/vitalshq/vitals/keyring"
)

func newMaster(t testing.TB) []byte {
	t.Helper()
	m := make([]byte, keyring.MasterKeySize)
	if _, err := rand.Read(m); err != nil {
		t.Fatal(err)
	}
	return m
}

// newKeyring returns a Keyring over store under master, with a primary key.
func newKeyring(t testing.TB, master []byte, store keyring.Store) *keyring.Keyring {
	t.Helper()
	w, err := keyring.NewLocalWrapper(master)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.New(context.Background(), w, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.EnsureKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestSealOpenRoundTrip(t *testing.T) {
	kr := newKeyring(t, newMaster(t), &keyring.MemoryStore{})
	secret := []byte("whsec_plaintext-signing-secret")
	aad := []byte("endpoint-secret:ep_123")

	sealed, err := kr.Seal(secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed, "vk1."+kr.Primary()+".") {
		t.Fatalf("sealed = %q, want prefix vk1.%s.", sealed, kr.Primary())
	}
	if strings.Contains(sealed, string(secret)) || strings.Contains(sealed, base64.RawURLEncoding.EncodeToString(secret)) {
		t.Fatalf("sealed value shows the plaintext: %q", sealed)
	}
	if id, ok := keyring.KeyID(sealed); !ok || id != kr.Primary() {
		t.Fatalf("KeyID = %q, %v; want %q", id, ok, kr.Primary())
	}
	if !keyring.IsSealed(sealed) || keyring.IsSealed(string(secret)) {
		t.Fatalf("IsSealed(sealed) = %v, IsSealed(plaintext) = %v", keyring.IsSealed(sealed), keyring.IsSealed(string(secret)))
	}
	got, err := kr.Open(sealed, aad)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, want %q", got, secret)
	}
	again, err := kr.Seal(secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	if again == sealed {
		t.Fatal("two seals of one plaintext are equal: nonces repeat")
	}

	bin, err := kr.SealBytes(secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bin, secret) {
		t.Fatalf("binary envelope shows the plaintext: %q", bin)
	}
	if id, ok := keyring.KeyIDBytes(bin); !ok || id != kr.Primary() {
		t.Fatalf("KeyIDBytes = %q, %v; want %q", id, ok, kr.Primary())
	}
	// Binary overhead: version, id length, id, nonce, tag.
	if want := 2 + len(kr.Primary()) + 12 + len(secret) + 16; len(bin) != want {
		t.Errorf("binary envelope is %d bytes, want %d", len(bin), want)
	}
	got, err = kr.OpenBytes(bin, aad)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, secret) {
		t.Fatalf("OpenBytes = %q, want %q", got, secret)
	}
	// Empty plaintext and nil AAD are values like any other.
	empty, err := kr.Seal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := kr.Open(empty, nil); err != nil || len(got) != 0 {
		t.Fatalf("Open(Seal(nil)) = %q, %v", got, err)
	}
}

func TestTamperedEnvelopesDoNotOpen(t *testing.T) {
	kr := newKeyring(t, newMaster(t), &keyring.MemoryStore{})
	aad := []byte("totp-seed:usr_1")
	sealed, err := kr.Seal([]byte("JBSWY3DPEHPK3PXP"), aad)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "vk1." + kr.Primary() + "."
	body, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, prefix))
	if err != nil {
		t.Fatal(err)
	}
	for i := range body { // nonce, ciphertext and tag: every byte counts
		b := bytes.Clone(body)
		b[i] ^= 0x01
		if _, err := kr.Open(prefix+base64.RawURLEncoding.EncodeToString(b), aad); !errors.Is(err, keyring.ErrDecrypt) {
			t.Fatalf("byte %d flipped: err = %v, want ErrDecrypt", i, err)
		}
	}
	if _, err := kr.Open(prefix+base64.RawURLEncoding.EncodeToString(body[:len(body)-1]), aad); !errors.Is(err, keyring.ErrDecrypt) {
		t.Fatalf("truncated: err = %v, want ErrDecrypt", err)
	}

	bin, err := kr.SealBytes([]byte("JBSWY3DPEHPK3PXP"), aad)
	if err != nil {
		t.Fatal(err)
	}
	start := 2 + len(kr.Primary())
	for i := start; i < len(bin); i++ {
		b := bytes.Clone(bin)
		b[i] ^= 0x80
		if _, err := kr.OpenBytes(b, aad); !errors.Is(err, keyring.ErrDecrypt) {
			t.Fatalf("binary byte %d flipped: err = %v, want ErrDecrypt", i, err)
		}
	}
	b := bytes.Clone(bin)
	b[start-1] ^= 0x01 // the key id's last character
	if _, err := kr.OpenBytes(b, aad); !errors.Is(err, keyring.ErrUnknownKey) {
		t.Fatalf("key id changed: err = %v, want ErrUnknownKey", err)
	}
}

func TestWrongAADDoesNotOpen(t *testing.T) {
	kr := newKeyring(t, newMaster(t), &keyring.MemoryStore{})
	sealed, err := kr.Seal([]byte("whsec_abc"), []byte("endpoint-secret:ep_1"))
	if err != nil {
		t.Fatal(err)
	}
	// Moved to another endpoint's record, it must not open.
	if _, err := kr.Open(sealed, []byte("endpoint-secret:ep_2")); !errors.Is(err, keyring.ErrDecrypt) {
		t.Fatalf("Open with another record's AAD: err = %v, want ErrDecrypt", err)
	}
	if _, err := kr.Open(sealed, nil); !errors.Is(err, keyring.ErrDecrypt) {
		t.Fatalf("Open without AAD: err = %v, want ErrDecrypt", err)
	}
	bin, err := kr.SealBytes([]byte("row"), []byte("spool:1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.OpenBytes(bin, []byte("spool:2")); !errors.Is(err, keyring.ErrDecrypt) {
		t.Fatalf("OpenBytes with another AAD: err = %v, want ErrDecrypt", err)
	}
}

func TestUnknownKeyAndMalformedEnvelopes(t *testing.T) {
	master := newMaster(t)
	kr := newKeyring(t, master, &keyring.MemoryStore{})
	// Same master, other store: its data key is not in kr's store.
	other := newKeyring(t, master, &keyring.MemoryStore{})
	sealed, err := other.Seal([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Open(sealed, nil); !errors.Is(err, keyring.ErrUnknownKey) {
		t.Fatalf("Open under a key the store lacks: err = %v, want ErrUnknownKey", err)
	}
	bin, err := other.SealBytes([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.OpenBytes(bin, nil); !errors.Is(err, keyring.ErrUnknownKey) {
		t.Fatalf("OpenBytes under a key the store lacks: err = %v, want ErrUnknownKey", err)
	}

	id := kr.Primary()
	for _, s := range []string{
		"", "plaintext", "vk1.", "vk1." + id, "vk1." + id + ".", "vk2." + id + ".AAAA",
		"vk1.bad id." + strings.Repeat("A", 40), "vk1." + id + ".!!!!", "vk1." + id + ".AAAA",
		"vk1." + strings.Repeat("k", 65) + ".AAAA",
	} {
		if _, err := kr.Open(s, nil); !errors.Is(err, keyring.ErrMalformed) {
			t.Errorf("Open(%q): err = %v, want ErrMalformed", s, err)
		}
	}
	for _, b := range [][]byte{nil, {1}, {2, 1, 'k'}, {1, 5, 'k'}, {1, 0}, append([]byte{1, byte(len(id))}, id...)} {
		if _, err := kr.OpenBytes(b, nil); !errors.Is(err, keyring.ErrMalformed) {
			t.Errorf("OpenBytes(%q): err = %v, want ErrMalformed", b, err)
		}
	}
}

func TestSealWithoutKey(t *testing.T) {
	w, err := keyring.NewLocalWrapper(newMaster(t))
	if err != nil {
		t.Fatal(err)
	}
	store := &keyring.MemoryStore{}
	kr, err := keyring.New(context.Background(), w, store)
	if err != nil {
		t.Fatal(err)
	}
	if kr.Primary() != "" {
		t.Fatalf("Primary of an empty store = %q", kr.Primary())
	}
	if _, err := kr.Seal([]byte("x"), nil); !errors.Is(err, keyring.ErrNoKey) {
		t.Fatalf("Seal without a key: err = %v, want ErrNoKey", err)
	}
	if _, err := kr.SealBytes([]byte("x"), nil); !errors.Is(err, keyring.ErrNoKey) {
		t.Fatalf("SealBytes without a key: err = %v, want ErrNoKey", err)
	}
	for range 2 {
		if err := kr.EnsureKey(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(store.DataKeys()); n != 1 {
		t.Fatalf("EnsureKey twice made %d keys, want 1", n)
	}
	if keys := store.DataKeys(); keys[0].MasterID != w.ID() || keys[0].ID != kr.Primary() || bytes.Contains(keys[0].Wrapped, []byte(kr.Primary())) {
		t.Fatalf("stored key = %+v", keys[0])
	}
}

func TestRotate(t *testing.T) {
	store := &keyring.MemoryStore{}
	master := newMaster(t)
	kr := newKeyring(t, master, store)
	first := kr.Primary()
	aad := []byte("jwt-private-key:kid_1")
	old, err := kr.Seal([]byte("old secret"), aad)
	if err != nil {
		t.Fatal(err)
	}
	oldBin, err := kr.SealBytes([]byte("old row"), aad)
	if err != nil {
		t.Fatal(err)
	}

	dk, err := kr.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if dk.ID == first || kr.Primary() != dk.ID || len(store.DataKeys()) != 2 {
		t.Fatalf("after Rotate: new key %q, primary %q, first %q, %d keys", dk.ID, kr.Primary(), first, len(store.DataKeys()))
	}
	if got, err := kr.Open(old, aad); err != nil || string(got) != "old secret" {
		t.Fatalf("Open of a value sealed before the rotation = %q, %v", got, err)
	}
	if got, err := kr.OpenBytes(oldBin, aad); err != nil || string(got) != "old row" {
		t.Fatalf("OpenBytes of a value sealed before the rotation = %q, %v", got, err)
	}
	fresh, err := kr.Seal([]byte("new secret"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := keyring.KeyID(fresh); id != dk.ID {
		t.Fatalf("sealed after Rotate under %q, want %q", id, dk.ID)
	}
	freshBin, err := kr.SealBytes([]byte("new row"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := keyring.KeyIDBytes(freshBin); id != dk.ID {
		t.Fatalf("binary sealed after Rotate under %q, want %q", id, dk.ID)
	}

	resealed, err := kr.Reseal(old, aad)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := keyring.KeyID(resealed); id != dk.ID {
		t.Fatalf("Reseal left the value under %q, want %q", id, dk.ID)
	}
	if got, err := kr.Open(resealed, aad); err != nil || string(got) != "old secret" {
		t.Fatalf("Open(Reseal(old)) = %q, %v", got, err)
	}
	if same, err := kr.Reseal(fresh, aad); err != nil || same != fresh {
		t.Fatalf("Reseal of a value under the primary changed it: %v", err)
	}
	if _, err := kr.Reseal(old, []byte("other")); !errors.Is(err, keyring.ErrDecrypt) {
		t.Fatalf("Reseal with the wrong AAD: err = %v, want ErrDecrypt", err)
	}

	// A keyring started later takes the newest key as primary and opens
	// values under either key.
	later := newKeyring(t, master, store)
	if later.Primary() != dk.ID {
		t.Fatalf("later keyring's primary = %q, want %q", later.Primary(), dk.ID)
	}
	for _, s := range []string{old, fresh} {
		if _, err := later.Open(s, aad); err != nil {
			t.Fatalf("later keyring: Open: %v", err)
		}
	}
}

func TestNewRefusesAnotherMaster(t *testing.T) {
	store := &keyring.MemoryStore{}
	master := newMaster(t)
	kr := newKeyring(t, master, store)
	sealed, err := kr.Seal([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}

	w, err := keyring.NewLocalWrapper(newMaster(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.New(context.Background(), w, store); !errors.Is(err, keyring.ErrDecrypt) {
		t.Fatalf("New with another master over existing keys: err = %v, want ErrDecrypt", err)
	}
	// The same master, restarted, opens what was sealed.
	w, err = keyring.NewLocalWrapper(master)
	if err != nil {
		t.Fatal(err)
	}
	again, err := keyring.New(context.Background(), w, store)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := again.Open(sealed, nil); err != nil || string(got) != "x" {
		t.Fatalf("Open after restart = %q, %v", got, err)
	}
}

func TestLocalWrapperBindsKeyID(t *testing.T) {
	if _, err := keyring.NewLocalWrapper(make([]byte, 16)); !errors.Is(err, keyring.ErrBadMaster) {
		t.Fatalf("16-byte master: err = %v, want ErrBadMaster", err)
	}
	master := newMaster(t)
	w, err := keyring.NewLocalWrapper(master)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(w.ID(), "local:") || strings.Contains(w.ID(), base64.StdEncoding.EncodeToString(master)[:8]) {
		t.Fatalf("ID = %q", w.ID())
	}
	w2, _ := keyring.NewLocalWrapper(newMaster(t))
	if w2.ID() == w.ID() {
		t.Fatal("two masters have one ID")
	}
	dek := newMaster(t)
	wrapped, err := w.Wrap(context.Background(), "dk_a", dek)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w.Unwrap(context.Background(), "dk_a", wrapped); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("Unwrap = %x, %v", got, err)
	}
	if _, err := w.Unwrap(context.Background(), "dk_b", wrapped); !errors.Is(err, keyring.ErrDecrypt) {
		t.Fatalf("Unwrap under another key id: err = %v, want ErrDecrypt", err)
	}
	if _, err := w2.Unwrap(context.Background(), "dk_a", wrapped); !errors.Is(err, keyring.ErrDecrypt) {
		t.Fatalf("Unwrap under another master: err = %v, want ErrDecrypt", err)
	}
}

// TestConcurrentSealAndRotate is for the race detector: seals and opens run
// while the primary key changes.
func TestConcurrentSealAndRotate(t *testing.T) {
	kr := newKeyring(t, newMaster(t), &keyring.MemoryStore{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Go(func() {
			aad := []byte{byte(g)}
			for range 200 {
				s, err := kr.Seal([]byte("v"), aad)
				if err == nil {
					_, err = kr.Open(s, aad)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 5 {
		if _, err := kr.Rotate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkSeal(b *testing.B) {
	kr := newKeyring(b, newMaster(b), &keyring.MemoryStore{})
	secret := []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	aad := []byte("endpoint-secret:ep_123")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Seal(secret, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	kr := newKeyring(b, newMaster(b), &keyring.MemoryStore{})
	aad := []byte("endpoint-secret:ep_123")
	sealed, err := kr.Seal([]byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), aad)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Open(sealed, aad); err != nil {
			b.Fatal(err)
		}
	}
}
