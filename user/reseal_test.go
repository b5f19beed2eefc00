package user_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/keyring"
	"github.com/vitalshq/vitals/topics"
	"github.com/vitalshq/vitals/user"
)

// storedUsers returns the last record of every user in the users topic,
// decoded.
func storedUsers(t *testing.T, brokers []string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, r := range testenv.ReadAll(t, brokers, topics.Users, false) {
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("record %s: %v", r.Value, err)
		}
		out[string(r.Key)] = m
	}
	return out
}

// sealedSeed returns the sealed TOTP seed of a decoded user record, or "".
func sealedSeed(m map[string]any) string {
	totp, _ := m["totp"].(map[string]any)
	s, _ := totp["sealed_secret"].(string)
	return s
}

// TestReseal enrols users with TOTP seeds sealed by a keyring under data
// key A, rotates to B and reseals: every stored seed is an envelope under
// B, and the confirmed user's authenticator codes still verify. A second
// Reseal writes nothing; a seed moved to another user's record does not
// open and is reported.
func TestReseal(t *testing.T) {
	brokers := testenv.Kfake(t)
	testenv.CreateTopics(t, brokers, 1, topics.Users)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	master := make([]byte, keyring.MasterKeySize)
	_, _ = rand.Read(master)
	w, err := keyring.NewLocalWrapper(master)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.New(ctx, w, &keyring.MemoryStore{})
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.EnsureKey(ctx); err != nil {
		t.Fatal(err)
	}
	store := startStore(t, brokers)
	c := newClock()
	s := newService(t, store, kr, c)

	alice, secret, _ := enrolled(t, s, c) // confirmed TOTP
	bob, err := s.Create(ctx, "bob", goodPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginTOTP(ctx, bob.ID, "Vitals"); err != nil { // pending TOTP
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "carol", goodPassword, nil); err != nil { // no TOTP
		t.Fatal(err)
	}

	if st, err := store.Reseal(ctx, kr); err != nil || st != (user.ResealStats{Records: 3}) {
		t.Fatalf("Reseal before rotation = %+v, %v; want 3 records, none resealed", st, err)
	}
	dk, err := kr.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := store.Reseal(ctx, kr); err != nil || st != (user.ResealStats{Records: 3, Resealed: 2}) {
		t.Fatalf("Reseal = %+v, %v; want 3 records, 2 resealed", st, err)
	}
	stored := storedUsers(t, brokers)
	for _, id := range []string{alice, bob.ID} {
		if kid, ok := keyring.KeyID(sealedSeed(stored[id])); !ok || kid != dk.ID {
			t.Errorf("%s: sealed seed %.20q…, want an envelope under %s", id, sealedSeed(stored[id]), dk.ID)
		}
	}
	c.Advance(30 * time.Second)
	if err := s.VerifyTOTP(ctx, alice, code(t, secret, c.Now())); err != nil {
		t.Fatalf("TOTP after Reseal: %v", err)
	}
	if st, err := store.Reseal(ctx, kr); err != nil || st.Resealed != 0 {
		t.Fatalf("second Reseal = %+v, %v; want nothing resealed", st, err)
	}

	// bob's record with alice's sealed seed.
	m := storedUsers(t, brokers)[bob.ID]
	m["totp"].(map[string]any)["sealed_secret"] = sealedSeed(storedUsers(t, brokers)[alice])
	b, _ := json.Marshal(m)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topics.Users, Key: []byte(bob.ID), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// One partition: once dave is visible, so is bob's record.
	if _, err := s.Create(ctx, "dave", goodPassword, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := store.Reseal(ctx, kr)
	if !errors.Is(err, keyring.ErrDecrypt) || st != (user.ResealStats{Records: 4, Resealed: 1, Unreadable: 1}) {
		t.Fatalf("Reseal with a moved seed = %+v, %v", st, err)
	}
}
