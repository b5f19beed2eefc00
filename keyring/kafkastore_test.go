package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/keyring"
	"github.com/vitalshq/vitals/topics"
)

// startKafkaStore runs a KafkaStore on brokers until the test ends and
// waits until it is caught up.
func startKafkaStore(t *testing.T, brokers []string) *keyring.KafkaStore {
	t.Helper()
	s, err := keyring.NewKafkaStore([]kgo.Opt{kgo.SeedBrokers(brokers...)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("KafkaStore.Run: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := s.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKafkaStoreSharesKeysAcrossKeyrings: keyrings over one topic open each
// other's values, including under a key added by a rotation after they
// started, and the raw topic holds no unwrapped key.
func TestKafkaStoreSharesKeysAcrossKeyrings(t *testing.T) {
	brokers := testenv.Kfake(t)
	testenv.CreateTopics(t, brokers, 1, topics.Keyring)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	master := newMaster(t)
	wrapper, err := keyring.NewLocalWrapper(master)
	if err != nil {
		t.Fatal(err)
	}

	store := startKafkaStore(t, brokers)
	first := newKeyring(t, master, store)
	// A second keyring over the same store, started before the rotation:
	// the new key is not in its cache, so Open must find it in the store.
	second, err := keyring.New(ctx, wrapper, store)
	if err != nil {
		t.Fatal(err)
	}
	before := first.Primary()
	if second.Primary() != before {
		t.Fatalf("second keyring's primary = %q, want %q", second.Primary(), before)
	}
	aad := []byte("endpoint-secret:ep_1")
	old, err := first.Seal([]byte("old"), aad)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := first.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := first.Seal([]byte("after rotation"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := keyring.KeyID(sealed); id != rotated.ID || id == before {
		t.Fatalf("sealed after rotation under %q, want %q", id, rotated.ID)
	}
	for want, s := range map[string]string{"old": old, "after rotation": sealed} {
		if got, err := second.Open(s, aad); err != nil || string(got) != want {
			t.Fatalf("second keyring: Open = %q, %v; want %q", got, err, want)
		}
	}
	if second.Primary() != rotated.ID {
		t.Fatalf("second keyring's primary after the rotation = %q, want %q", second.Primary(), rotated.ID)
	}

	// Another instance, with a store of its own on the same topic, sees
	// both keys once caught up, seals under the newest, and the first opens
	// that.
	other := newKeyring(t, master, startKafkaStore(t, brokers))
	if other.Primary() != rotated.ID {
		t.Fatalf("other instance's primary = %q, want %q", other.Primary(), rotated.ID)
	}
	for _, s := range []string{old, sealed} {
		if _, err := other.Open(s, aad); err != nil {
			t.Fatalf("other instance: Open: %v", err)
		}
	}
	bin, err := other.SealBytes([]byte("spool frame"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := first.OpenBytes(bin, aad); err != nil || string(got) != "spool frame" {
		t.Fatalf("first keyring: OpenBytes of the other's value = %q, %v", got, err)
	}

	// The topic holds wrapped keys only: a keyring with another master
	// cannot start on it.
	w2, err := keyring.NewLocalWrapper(newMaster(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.New(ctx, w2, store); !errors.Is(err, keyring.ErrDecrypt) {
		t.Fatalf("keyring with another master: err = %v, want ErrDecrypt", err)
	}
	recs := testenv.ReadAll(t, brokers, topics.Keyring, false)
	if len(recs) != 2 {
		t.Fatalf("keyring topic holds %d records, want 2", len(recs))
	}
	for _, r := range recs {
		if bytes.Contains(r.Value, master) {
			t.Fatalf("keyring record %s holds the master key", r.Key)
		}
	}
}
