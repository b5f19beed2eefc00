package auth_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/keyring"
	"github.com/vitalshq/vitals/topics"
)

// logBuffer collects a logger's output, written from the store's tables'
// goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startStore runs a KafkaStore until the test ends and waits until it is
// caught up.
func startStore(t *testing.T, brokers []string, log *logBuffer, opts ...auth.StoreOption) *auth.KafkaStore {
	t.Helper()
	var logger *slog.Logger
	if log != nil {
		logger = slog.New(slog.NewTextHandler(log, nil))
	}
	s, err := auth.NewKafkaStore([]kgo.Opt{kgo.SeedBrokers(brokers...)}, logger, opts...)
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

// newKeyring returns a keyring with a data key, in memory.
func newKeyring(t *testing.T) *keyring.Keyring {
	t.Helper()
	master := make([]byte, keyring.MasterKeySize)
	if _, err := rand.Read(master); err != nil {
		t.Fatal(err)
	}
	w, err := keyring.NewLocalWrapper(master)
	if err != nil {
		t.Fatal(err)
	}
	k, err := keyring.New(context.Background(), w, &keyring.MemoryStore{})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.EnsureKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	return k
}

func newKey(t *testing.T, alg string) auth.SigningKey {
	t.Helper()
	k, err := auth.NewSigningKeyFor(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// storedKeys returns the last record of every kid in the signing keys
// topic, decoded.
func storedKeys(t *testing.T, brokers []string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, r := range testenv.ReadAll(t, brokers, topics.SigningKeys, false) {
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("record %s: %v", r.Value, err)
		}
		out[string(r.Key)] = m
	}
	return out
}

func produceKey(t *testing.T, brokers []string, kid string, m map[string]any) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topics.SigningKeys, Key: []byte(kid), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// byKID returns the private keys SigningKeys hands out, by kid.
func byKID(s *auth.KafkaStore) map[string][]byte {
	out := map[string][]byte{}
	for _, k := range s.SigningKeys() {
		out[k.KID] = k.PrivateKey
	}
	return out
}

// TestSigningKeysSealedAtRest stores an ES256 and an EdDSA key through a
// store with a keyring: neither the PKCS #8 DER nor any base64 of it is in
// the topic, the record holds an envelope under the keyring's key, and
// SigningKeys returns the keys in the clear. A store without the keyring
// hands out neither and logs errors; a record holding another key's
// sealed private key does not open; a key written in the clear before
// encryption at rest is still read.
func TestSigningKeysSealedAtRest(t *testing.T) {
	brokers := testenv.Kfake(t)
	testenv.CreateTopics(t, brokers, 1, topics.Clients, topics.SigningKeys)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kr := newKeyring(t)
	var log logBuffer
	s := startStore(t, brokers, &log, auth.WithKeySealer(kr))

	es, ed := newKey(t, auth.AlgES256), newKey(t, auth.AlgEdDSA)
	for _, k := range []auth.SigningKey{es, ed} {
		if err := s.PutSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	got := byKID(s)
	if len(got) != 2 || !bytes.Equal(got[es.KID], es.PrivateKey) || !bytes.Equal(got[ed.KID], ed.PrivateKey) {
		t.Fatalf("SigningKeys = %d keys, want both in the clear", len(got))
	}
	for _, k := range s.SigningKeys() {
		if _, err := k.PublicJWK(); err != nil {
			t.Fatalf("key %s does not parse: %v", k.KID, err)
		}
	}
	for _, r := range testenv.ReadAll(t, brokers, topics.SigningKeys, false) {
		for _, k := range []auth.SigningKey{es, ed} {
			for _, form := range [][]byte{k.PrivateKey,
				[]byte(base64.StdEncoding.EncodeToString(k.PrivateKey)), []byte(base64.RawStdEncoding.EncodeToString(k.PrivateKey)),
				[]byte(base64.URLEncoding.EncodeToString(k.PrivateKey)), []byte(base64.RawURLEncoding.EncodeToString(k.PrivateKey))} {
				if bytes.Contains(r.Value, form) {
					t.Fatalf("record %s holds the private key of %s", r.Key, k.KID)
				}
			}
		}
	}
	stored := storedKeys(t, brokers)
	for _, kid := range []string{es.KID, ed.KID} {
		m := stored[kid]
		v, _ := m["sealed_private_key"].(string)
		if id, ok := keyring.KeyID(v); !ok || id != kr.Primary() {
			t.Errorf("%s: sealed_private_key = %q, want an envelope under %s", kid, v, kr.Primary())
		}
		if _, ok := m["private_key"]; ok || m["kid"] != kid || m["alg"] == "" || m["created_at"] == "" {
			t.Errorf("%s: stored %v", kid, m)
		}
	}

	// Without the keyring, sealed keys are not handed out.
	var plainLog logBuffer
	plain := startStore(t, brokers, &plainLog)
	if n := len(plain.SigningKeys()); n != 0 {
		t.Fatalf("store without a keyring hands out %d sealed keys", n)
	}
	if out := plainLog.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, es.KID) || !strings.Contains(out, ed.KID) {
		t.Fatalf("store without a keyring did not log errors:\n%s", out)
	}

	// ed's record with es's sealed private key does not open.
	swapped := stored[ed.KID]
	swapped["sealed_private_key"] = stored[es.KID]["sealed_private_key"]
	produceKey(t, brokers, ed.KID, swapped)
	// A key written in the clear, as before encryption at rest.
	legacy := newKey(t, auth.AlgES256)
	if err := plain.PutSigningKey(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	if _, ok := storedKeys(t, brokers)[legacy.KID]["private_key"]; !ok {
		t.Fatal("store without a keyring did not store the key in the clear")
	}
	// One partition: once this is visible, so are the records above.
	last := newKey(t, auth.AlgES256)
	if err := s.PutSigningKey(ctx, last); err != nil {
		t.Fatal(err)
	}
	got = byKID(s)
	if _, ok := got[ed.KID]; ok {
		t.Fatal("a record holding another key's sealed private key was handed out")
	}
	if !bytes.Equal(got[legacy.KID], legacy.PrivateKey) || !bytes.Equal(got[es.KID], es.PrivateKey) || len(got) != 3 {
		t.Fatalf("SigningKeys = %v, want %s, %s and %s", slices.Sorted(maps.Keys(got)), es.KID, legacy.KID, last.KID)
	}
	if !strings.Contains(log.String(), "kid="+ed.KID) || !strings.Contains(log.String(), keyring.ErrDecrypt.Error()) {
		t.Fatalf("no decryption error logged for %s:\n%s", ed.KID, log.String())
	}
}

// TestSigningKeysReseal seals a key under data key A next to one stored in
// the clear, rotates to B and reseals: every record holds an envelope
// under B that opens to the same private key, and a second Reseal writes
// nothing.
func TestSigningKeysReseal(t *testing.T) {
	brokers := testenv.Kfake(t)
	testenv.CreateTopics(t, brokers, 1, topics.Clients, topics.SigningKeys)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kr := newKeyring(t)
	s := startStore(t, brokers, nil, auth.WithKeySealer(kr))
	plain := startStore(t, brokers, nil)

	sealed, legacy := newKey(t, auth.AlgEdDSA), newKey(t, auth.AlgES256)
	if err := s.PutSigningKey(ctx, sealed); err != nil {
		t.Fatal(err)
	}
	if err := plain.PutSigningKey(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSigningKey(ctx, sealed); err != nil { // applied after legacy's record
		t.Fatal(err)
	}
	if st, err := s.Reseal(ctx); err != nil || st != (auth.ResealStats{Records: 2, Resealed: 1}) {
		t.Fatalf("Reseal before rotation = %+v, %v; want the clear key resealed", st, err)
	}
	dk, err := kr.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := s.Reseal(ctx); err != nil || st != (auth.ResealStats{Records: 2, Resealed: 2}) {
		t.Fatalf("Reseal = %+v, %v", st, err)
	}
	for kid, m := range storedKeys(t, brokers) {
		v, _ := m["sealed_private_key"].(string)
		if id, ok := keyring.KeyID(v); !ok || id != dk.ID {
			t.Errorf("%s: sealed_private_key = %.20q…, want an envelope under %s", kid, v, dk.ID)
		}
		if _, ok := m["private_key"]; ok {
			t.Errorf("%s: private key still in the clear", kid)
		}
	}
	got := byKID(s)
	if !bytes.Equal(got[sealed.KID], sealed.PrivateKey) || !bytes.Equal(got[legacy.KID], legacy.PrivateKey) {
		t.Fatal("keys changed by Reseal")
	}
	if st, err := s.Reseal(ctx); err != nil || st.Resealed != 0 {
		t.Fatalf("second Reseal = %+v, %v", st, err)
	}
}
