package dispatcher

import (
	"net/http"
	"testing"

	"github.com/vitalshq/vitals/webhook"
)

// TestCanonicalHeaderNames checks the precomputed header names against the
// webhook package's, canonicalized as net/http would.
func TestCanonicalHeaderNames(t *testing.T) {
	for got, name := range map[string]string{
		canonicalHeaderID:        webhook.HeaderID,
		canonicalHeaderTimestamp: webhook.HeaderTimestamp,
		canonicalHeaderSignature: webhook.HeaderSignature,
	} {
		if want := http.CanonicalHeaderKey(name); got != want {
			t.Errorf("header %q: have %q, want %q", name, got, want)
		}
	}
}
