package user_test

import (
	"bytes"
	"context"
	"encoding/base32"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/topics"
	"github.com/vitalshq/vitals/user"
)

// startStore runs a KafkaStore until the test ends and waits until it is
// caught up.
func startStore(t *testing.T, brokers []string) *user.KafkaStore {
	t.Helper()
	s, err := user.NewKafkaStore([]kgo.Opt{kgo.SeedBrokers(brokers...)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := s.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKafkaStore(t *testing.T) {
	brokers := testenv.Kfake(t)
	testenv.CreateTopics(t, brokers, 3, topics.Users)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	sealer := newSealer(t) // in production, the keyring every instance shares
	c := newClock()
	storeA, storeB := startStore(t, brokers), startStore(t, brokers)
	a, b := newService(t, storeA, sealer, c), newService(t, storeB, sealer, c)

	// Instance A creates and enrols alice; reads on A see each write at once.
	id, secret, codes := enrolled(t, a, c)
	if got, ok := storeA.ByUsername("alice"); !ok || got.ID != id || !a.HasMFA(got) {
		t.Fatalf("A: ByUsername = %+v, %v", got, ok)
	}
	if _, err := a.Create(ctx, "Alice", goodPassword, nil); !errors.Is(err, user.ErrExists) {
		t.Fatalf("A: duplicate Create = %v, want ErrExists", err)
	}
	c.Advance(30 * time.Second)
	step := c.Now().Unix() / 30
	next := code(t, secret, c.Now())
	if err := a.VerifyTOTP(ctx, id, next); err != nil {
		t.Fatal(err)
	}
	if err := a.UseRecoveryCode(ctx, id, codes[0]); err != nil {
		t.Fatal(err)
	}

	// Instance B sees the user, by id and by username, with the step used.
	eventually(t, "B sees LastStep and the used recovery code", func() bool {
		u, ok := storeB.User(id)
		return ok && u.TOTP != nil && u.TOTP.LastStep == step && len(u.RecoveryCodes) == 9
	})
	if got, ok := storeB.ByUsername("alice"); !ok || got.ID != id {
		t.Fatalf("B: ByUsername = %+v, %v", got, ok)
	}
	if _, err := b.Authenticate(ctx, "alice", goodPassword); err != nil {
		t.Fatalf("B: Authenticate = %v", err)
	}
	if err := b.VerifyTOTP(ctx, id, next); !errors.Is(err, user.ErrReplayed) {
		t.Fatalf("B: VerifyTOTP(code used on A) = %v, want ErrReplayed", err)
	}
	if err := b.UseRecoveryCode(ctx, id, codes[0]); !errors.Is(err, user.ErrBadCode) {
		t.Fatalf("B: UseRecoveryCode(code used on A) = %v, want ErrBadCode", err)
	}
	if _, err := b.Create(ctx, "alice", goodPassword, nil); !errors.Is(err, user.ErrExists) {
		t.Fatalf("B: duplicate Create = %v, want ErrExists", err)
	}
	bob, err := b.Create(ctx, "bob", goodPassword, []string{"read"})
	if err != nil {
		t.Fatal(err)
	}

	// An instance started later catches up on everything.
	storeC := startStore(t, brokers)
	if got := storeC.Users(); len(got) != 2 {
		t.Fatalf("C: %d users, want 2", len(got))
	}
	if u, ok := storeC.ByUsername("bob"); !ok || u.ID != bob.ID || u.Scopes[0] != "read" {
		t.Fatalf("C: ByUsername(bob) = %+v, %v", u, ok)
	}
	if u, ok := storeC.User(id); !ok || u.TOTP.LastStep != step || !u.TOTP.Confirmed {
		t.Fatalf("C: User(alice) = %+v, %v", u, ok)
	}
	if _, ok := storeC.ByUsername("mallory"); ok {
		t.Fatal("C: ByUsername(mallory) found someone")
	}

	// Nothing secret reached Kafka in the clear.
	recs := testenv.ReadAll(t, brokers, topics.Users, true)
	if len(recs) == 0 {
		t.Fatal("no records in the users topic")
	}
	seed, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		assertNoSecrets(t, r.Value, secret, codes)
		if bytes.Contains(r.Value, seed) {
			t.Errorf("record at offset %d holds the raw seed", r.Offset)
		}
		if !strings.Contains(string(r.Value), "$argon2id$") {
			t.Errorf("record at offset %d has no argon2id hash: %s", r.Offset, r.Value)
		}
	}
}

// TestKafkaStoreUsernameRace: two instances that each create the same
// username before seeing the other's record converge on the same user.
func TestKafkaStoreUsernameRace(t *testing.T) {
	brokers := testenv.Kfake(t)
	testenv.CreateTopics(t, brokers, 3, topics.Users)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	storeA, storeB := startStore(t, brokers), startStore(t, brokers)

	first := user.User{ID: "usr_b", Username: "carol", CreatedAt: t0}
	second := user.User{ID: "usr_a", Username: "carol", CreatedAt: t0.Add(time.Second)}
	if err := storeA.PutUser(ctx, first); err != nil {
		t.Fatal(err)
	}
	// B writes before it has read A's record: simulated by writing through
	// a third store that never saw A's write.
	raw, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.ProduceSync(ctx, &kgo.Record{Topic: topics.Users, Key: []byte(second.ID),
		Value: []byte(`{"id":"usr_a","username":"carol","created_at":"` + second.CreatedAt.UTC().Format(time.RFC3339) + `"}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*user.KafkaStore{"A": storeA, "B": storeB} {
		eventually(t, name+" sees both", func() bool { return len(s.Users()) == 2 })
		if u, ok := s.ByUsername("carol"); !ok || u.ID != first.ID {
			t.Errorf("%s: ByUsername(carol) = %q, %v; want the one created first, %q", name, u.ID, ok, first.ID)
		}
	}
	// Either store refuses a further write of a third id with the name.
	if err := storeB.PutUser(ctx, user.User{ID: "usr_c", Username: "carol"}); !errors.Is(err, user.ErrExists) {
		t.Errorf("PutUser(third carol) = %v, want ErrExists", err)
	}
}
