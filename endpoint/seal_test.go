package endpoint_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/keyring"
	"github.com/vitalshq/vitals/topics"
	"github.com/vitalshq/vitals/webhook"
)

// logBuffer collects a logger's output; the registry logs from its table's
// goroutine.
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

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func newMaster(t *testing.T) []byte {
	t.Helper()
	m := make([]byte, keyring.MasterKeySize)
	if _, err := rand.Read(m); err != nil {
		t.Fatal(err)
	}
	return m
}

// newKeyring returns a keyring over store under master, without making a
// data key.
func newKeyring(t *testing.T, master []byte, store keyring.Store) *keyring.Keyring {
	t.Helper()
	w, err := keyring.NewLocalWrapper(master)
	if err != nil {
		t.Fatal(err)
	}
	k, err := keyring.New(context.Background(), w, store)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newSealingKeyring returns a keyring with a data key, on its own store.
func newSealingKeyring(t *testing.T, master []byte) (*keyring.Keyring, *keyring.MemoryStore) {
	t.Helper()
	store := &keyring.MemoryStore{}
	k := newKeyring(t, master, store)
	if err := k.EnsureKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	return k, store
}

// newEndpoint returns an endpoint with all three secrets.
func newEndpoint(t *testing.T) endpoint.Endpoint {
	t.Helper()
	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	prev, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	seed, _, err := webhook.NewEd25519Key()
	if err != nil {
		t.Fatal(err)
	}
	return endpoint.Endpoint{ID: endpoint.NewID(), URL: "https://hooks.example.com/" + endpoint.NewID(), EventTypes: []string{"*"},
		CreatedAt: time.Now().UTC().Truncate(time.Second), Secret: secret, PreviousSecret: prev,
		PreviousUntil: time.Now().Add(time.Hour).UTC().Truncate(time.Second), SigningKeyEd25519: seed}
}

// latest returns the last value of every key of the endpoints topic.
func latest(t *testing.T, brokers []string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, r := range testenv.ReadAll(t, brokers, topics.Endpoints, false) {
		out[string(r.Key)] = r.Value
	}
	return out
}

// produceRaw writes a record to the endpoints topic past the registry.
func produceRaw(t *testing.T, brokers []string, key string, value []byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topics.Endpoints, Key: []byte(key), Value: value}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// fields decodes a raw endpoint record.
func fields(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("record %s: %v", b, err)
	}
	return m
}

func encode(t *testing.T, m map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// secretForms returns every form in which a secret of e could leak into a
// record: as text, as the bytes it encodes, and as base64 of either.
func secretForms(t *testing.T, e endpoint.Endpoint) []string {
	t.Helper()
	var forms []string
	for _, s := range []string{e.Secret, e.PreviousSecret, e.SigningKeyEd25519} {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, webhook.SecretPrefix))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range [][]byte{[]byte(s), raw} {
			forms = append(forms, string(b),
				base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
				base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b))
		}
	}
	return forms
}

func sameSecrets(got, want endpoint.Endpoint) bool {
	return got.Secret == want.Secret && got.PreviousSecret == want.PreviousSecret && got.SigningKeyEd25519 == want.SigningKeyEd25519
}

// TestSecretsSealedAtRest puts an endpoint with a signing secret, a
// previous secret and an ed25519 key through a registry with a keyring:
// no form of any of them is in the topic, whose fields are envelopes
// under the keyring's key, and Get returns them in the clear. A registry
// without the keyring does not hand the endpoint out and logs an error; a
// keyring that meets the data key later opens it then.
func TestSecretsSealedAtRest(t *testing.T) {
	brokers := testenv.Kfake(t)
	testenv.CreateTopics(t, brokers, 1, topics.Endpoints)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	master := newMaster(t)
	kr, keys := newSealingKeyring(t, master)
	reg := startRegistry(t, brokers, endpoint.WithSealer(kr))

	e := newEndpoint(t)
	if err := reg.Put(ctx, e); err != nil {
		t.Fatal(err)
	}
	if got, ok := reg.Get(e.ID); !ok || !sameSecrets(got, e) {
		t.Fatalf("Get = %+v, %v; want the secrets in the clear", got, ok)
	}
	if l := reg.List(); len(l) != 1 || !sameSecrets(l[0], e) {
		t.Fatalf("List = %+v", l)
	}
	if s := reg.Subscribed("churn_risk_detected"); len(s) != 1 || !sameSecrets(s[0], e) {
		t.Fatalf("Subscribed = %+v", s)
	}
	recs := testenv.ReadAll(t, brokers, topics.Endpoints, false)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	for _, form := range secretForms(t, e) {
		if bytes.Contains(recs[0].Value, []byte(form)) {
			t.Fatalf("record holds the secret form %q:\n%s", form, recs[0].Value)
		}
	}
	stored := fields(t, recs[0].Value)
	for _, f := range []string{"secret", "previous_secret", "signing_key_ed25519"} {
		v, _ := stored[f].(string)
		if id, ok := keyring.KeyID(v); !ok || id != kr.Primary() {
			t.Errorf("stored %s = %q: want an envelope under %s", f, v, kr.Primary())
		}
	}
	if stored["id"] != e.ID || stored["url"] != e.URL {
		t.Errorf("non-secret fields changed at rest: %v", stored)
	}

	// Without the keyring: the envelopes are not taken for secrets.
	var plainLog logBuffer
	plain := startRegistry(t, brokers, endpoint.WithLogger(plainLog.logger()))
	if got, ok := plain.Get(e.ID); ok {
		t.Fatalf("registry without a keyring: Get = %+v, want not found", got)
	}
	if len(plain.List()) != 0 || len(plain.Subscribed("churn_risk_detected")) != 0 {
		t.Fatal("registry without a keyring lists a sealed endpoint")
	}
	if out := plainLog.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, e.ID) {
		t.Fatalf("registry without a keyring did not log an error for %s:\n%s", e.ID, out)
	}

	// A keyring that does not hold the data key yet (another instance just
	// rotated): unusable, then usable once the key arrives.
	lateKeys := &keyring.MemoryStore{}
	late := startRegistry(t, brokers, endpoint.WithSealer(newKeyring(t, master, lateKeys)))
	if _, ok := late.Get(e.ID); ok {
		t.Fatal("opened without the data key")
	}
	for _, dk := range keys.DataKeys() {
		if err := lateKeys.PutDataKey(ctx, dk); err != nil {
			t.Fatal(err)
		}
	}
	if got, ok := late.Get(e.ID); !ok || !sameSecrets(got, e) {
		t.Fatalf("after the data key arrived: Get = %+v, %v", got, ok)
	}
}

// TestSwappedCiphertextDoesNotOpen writes, past the registry, endpoint
// b's record with a's sealed secret, and a record under a new id holding
// a's sealed secrets: neither opens, neither is handed out (not even b's
// previous version), both are logged as errors. Writing b again with a
// fresh secret makes it usable.
func TestSwappedCiphertextDoesNotOpen(t *testing.T) {
	brokers := testenv.Kfake(t)
	testenv.CreateTopics(t, brokers, 1, topics.Endpoints)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kr, _ := newSealingKeyring(t, newMaster(t))
	var log logBuffer
	reg := startRegistry(t, brokers, endpoint.WithSealer(kr), endpoint.WithLogger(log.logger()))

	a, b := newEndpoint(t), newEndpoint(t)
	for _, e := range []endpoint.Endpoint{a, b} {
		if err := reg.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	recs := latest(t, brokers)
	aRec, bRec := fields(t, recs[a.ID]), fields(t, recs[b.ID])
	bRec["secret"] = aRec["secret"]
	produceRaw(t, brokers, b.ID, encode(t, bRec))
	c := endpoint.NewID()
	aRec["id"] = c
	produceRaw(t, brokers, c, encode(t, aRec))
	// One partition: once this Put is visible, so are the records above.
	d := newEndpoint(t)
	if err := reg.Put(ctx, d); err != nil {
		t.Fatal(err)
	}

	if got, ok := reg.Get(b.ID); ok {
		t.Fatalf("b with a's sealed secret: Get = %+v", got)
	}
	if got, ok := reg.Get(c); ok {
		t.Fatalf("a's sealed secrets under id %s: Get = %+v", c, got)
	}
	var ids []string
	for _, e := range reg.Subscribed("churn_risk_detected") {
		ids = append(ids, e.ID)
	}
	if len(ids) != 2 || !strings.Contains(strings.Join(ids, " "), a.ID) || !strings.Contains(strings.Join(ids, " "), d.ID) {
		t.Fatalf("Subscribed = %v, want only %s and %s", ids, a.ID, d.ID)
	}
	for _, id := range []string{b.ID, c} {
		if !strings.Contains(log.String(), "level=ERROR") || !strings.Contains(log.String(), "endpoint_id="+id) {
			t.Errorf("no error logged for %s:\n%s", id, log.String())
		}
	}
	if !strings.Contains(log.String(), keyring.ErrDecrypt.Error()) {
		t.Errorf("the log does not say the decryption failed:\n%s", log.String())
	}

	b.Secret, _ = webhook.NewSecret()
	if err := reg.Put(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got, ok := reg.Get(b.ID); !ok || got.Secret != b.Secret {
		t.Fatalf("b written again: Get = %+v, %v", got, ok)
	}
}

// TestResealMovesEveryRecordToTheNewKey seals endpoints under key A, and
// one in the clear as written before encryption at rest, then rotates to
// key B and reseals: every secret field of every record is an envelope
// under B that opens to the same secret. A second Reseal writes nothing; a
// record that does not open is counted and reported.
func TestResealMovesEveryRecordToTheNewKey(t *testing.T) {
	brokers := testenv.Kfake(t)
	testenv.CreateTopics(t, brokers, 1, topics.Endpoints)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kr, _ := newSealingKeyring(t, newMaster(t))
	keyA := kr.Primary()
	reg := startRegistry(t, brokers, endpoint.WithSealer(kr))
	legacyReg := startRegistry(t, brokers) // writes as before encryption at rest

	e1, e2, legacy := newEndpoint(t), newEndpoint(t), newEndpoint(t)
	e2.PreviousSecret, e2.PreviousUntil, e2.SigningKeyEd25519 = "", time.Time{}, ""
	for _, e := range []endpoint.Endpoint{e1, e2} {
		if err := reg.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := legacyReg.Put(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	if err := reg.Put(ctx, newEndpoint(t)); err != nil { // applied after legacy's record
		t.Fatal(err)
	}
	if got, ok := reg.Get(legacy.ID); !ok || !sameSecrets(got, legacy) {
		t.Fatalf("record in the clear: Get = %+v, %v", got, ok)
	}

	// Under key A already, but for the record in the clear.
	st, err := reg.Reseal(ctx)
	if err != nil || st != (endpoint.ResealStats{Records: 4, Resealed: 1}) {
		t.Fatalf("Reseal before rotation = %+v, %v; want 4 records, 1 resealed", st, err)
	}

	dk, err := kr.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if dk.ID == keyA {
		t.Fatal("Rotate kept the key id")
	}
	st, err = reg.Reseal(ctx)
	if err != nil || st != (endpoint.ResealStats{Records: 4, Resealed: 4}) {
		t.Fatalf("Reseal = %+v, %v; want 4 records, 4 resealed", st, err)
	}
	checkSealedUnder := func(want string) {
		t.Helper()
		for id, b := range latest(t, brokers) {
			m := fields(t, b)
			for _, f := range []string{"secret", "previous_secret", "signing_key_ed25519"} {
				v, _ := m[f].(string)
				if v == "" {
					continue
				}
				if kid, ok := keyring.KeyID(v); !ok || kid != want {
					t.Errorf("%s: %s = %.20q…, want an envelope under %s", id, f, v, want)
				}
			}
		}
	}
	checkSealedUnder(dk.ID)
	for _, want := range []endpoint.Endpoint{e1, e2, legacy} {
		if got, ok := reg.Get(want.ID); !ok || !sameSecrets(got, want) || got.URL != want.URL {
			t.Fatalf("after Reseal: Get(%s) = %+v, %v", want.ID, got, ok)
		}
	}
	if st, err := reg.Reseal(ctx); err != nil || st.Resealed != 0 {
		t.Fatalf("second Reseal = %+v, %v; want nothing resealed", st, err)
	}

	// A record whose secret does not open is left alone and reported.
	m := fields(t, latest(t, brokers)[e1.ID])
	m["secret"] = fields(t, latest(t, brokers)[e2.ID])["secret"]
	produceRaw(t, brokers, e1.ID, encode(t, m))
	if err := reg.Put(ctx, newEndpoint(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	st, err = reg.Reseal(ctx)
	if !errors.Is(err, keyring.ErrDecrypt) || st != (endpoint.ResealStats{Records: 5, Resealed: 4, Unreadable: 1}) {
		t.Fatalf("Reseal with a swapped secret = %+v, %v", st, err)
	}
}
