package httpsig

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// testClock is a settable clock shared by signer, verifier and caches.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// newSignedDelete returns a server-side view of a signed DELETE.
func newSignedDelete(t *testing.T, key Key, p SignParams) *http.Request {
	t.Helper()
	signed, err := http.NewRequest(http.MethodDelete, "http://api.example/v1/endpoints/ep_1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Sign(signed, nil, key, p); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodDelete, "/v1/endpoints/ep_1", nil)
	r.Host = "api.example"
	r.Header = signed.Header.Clone()
	return r
}
