package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBootstrapWritesPrivateFileOnce(t *testing.T) {
	e := newEnv(t, AlgES256)
	// A store with a client does nothing.
	path := filepath.Join(t.TempDir(), "data", "nested", "bootstrap-client.json")
	created, err := e.srv.Bootstrap(context.Background(), path, e.url+TokenPath, e.url)
	if err != nil || created {
		t.Fatalf("bootstrap with a client present: %v %v", created, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("file written although clients exist: %v", err)
	}

	// An empty store gets a client and the file.
	store := NewMemoryStore()
	s := NewServer(e.url, store, e.store, WithClock(e.clock.Now), WithLogger(e.srv.log))
	created, err = s.Bootstrap(context.Background(), path, e.url+TokenPath, e.url)
	if err != nil || !created {
		t.Fatalf("first bootstrap: %v %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("file mode %o, want 600", perm)
	}
	for _, dir := range []string{filepath.Dir(path), filepath.Dir(filepath.Dir(path))} {
		di, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if perm := di.Mode().Perm(); perm != 0o700 {
			t.Fatalf("dir %s mode %o, want 700", dir, perm)
		}
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]string
	if err := json.Unmarshal(first, &f); err != nil {
		t.Fatal(err)
	}
	if len(f) != 6 || f["token_url"] != e.url+TokenPath || f["api_url"] != e.url ||
		!strings.HasPrefix(f["client_id"], "vc_") || f["client_secret"] == "" ||
		!strings.HasPrefix(f["request_key_id"], f["client_id"]+"/") || f["request_key"] == "" {
		t.Fatalf("file %s", first)
	}
	clients := store.Clients()
	if len(clients) != 1 || clients[0].ID != f["client_id"] || !slices.Equal(clients[0].Scopes, NonAdminScopes()) ||
		len(clients[0].RequestKeys) != 1 || clients[0].RequestKeys[0].ID != f["request_key_id"] {
		t.Fatalf("stored clients %+v", clients)
	}
	if strings.Contains(string(mustJSON(t, clients)), f["client_secret"]) {
		t.Fatal("store holds the plain secret")
	}
	if strings.Contains(e.logs.String(), f["client_secret"]) {
		t.Fatal("secret logged")
	}
	if !strings.Contains(e.logs.String(), f["client_id"]) {
		t.Fatal("bootstrap not logged")
	}

	// Idempotent: the second call changes nothing.
	created, err = s.Bootstrap(context.Background(), path, e.url+TokenPath, e.url)
	if err != nil || created {
		t.Fatalf("second bootstrap: %v %v", created, err)
	}
	again, _ := os.ReadFile(path)
	if !bytes.Equal(first, again) || len(store.Clients()) != 1 {
		t.Fatal("second bootstrap rewrote the file or added a client")
	}

	// The file's secret is the stored client's; package oauth's tests
	// cover using such credentials at the token endpoint.
	if !clients[0].VerifySecret(f["client_secret"]) || clients[0].HasScope(ScopeAdmin) {
		t.Fatal("the bootstrap secret does not verify, or the client holds admin")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
