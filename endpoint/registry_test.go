package endpoint_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/topics"
)

func startRegistry(t *testing.T, brokers []string, opts ...endpoint.Option) *endpoint.Registry {
	t.Helper()
	r, err := endpoint.NewRegistry([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := r.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	return r
}

// waitFor polls cond every 10 ms until it holds or within elapses.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// TestChangesReachOtherInstances runs two registries (two instances) over
// one broker: a create, an update, a Disable and a delete made through one
// are applied by the other within a second.
func TestChangesReachOtherInstances(t *testing.T) {
	brokers := testenv.Kfake(t)
	testenv.CreateTopics(t, brokers, 1, topics.Endpoints)
	a, b := startRegistry(t, brokers), startRegistry(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	e := endpoint.Endpoint{ID: endpoint.NewID(), URL: "https://hooks.example.com/a", EventTypes: []string{"*"}, Secret: "whsec_x"}
	if err := a.Put(ctx, e); err != nil {
		t.Fatal(err)
	}
	d := waitFor(t, time.Second, "create on b", func() bool { _, ok := b.Get(e.ID); return ok })
	t.Logf("create visible on the other instance after %s", d)

	e.RateLimit = 7
	if err := a.Put(ctx, e); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "update on b", func() bool { got, _ := b.Get(e.ID); return got.RateLimit == 7 })
	if len(b.Subscribed("churn_risk_detected")) != 1 {
		t.Fatal("b: endpoint not subscribed before Disable")
	}

	if err := b.Disable(ctx, e.ID, "410 Gone"); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Get(e.ID); !got.Disabled || got.DisabledReason != "410 Gone" || got.DisabledAt.IsZero() || got.RateLimit != 7 {
		t.Fatalf("after Disable on b: %+v", got)
	}
	waitFor(t, time.Second, "disable on a", func() bool { got, _ := a.Get(e.ID); return got.Disabled })
	if len(a.Subscribed("churn_risk_detected")) != 0 {
		t.Fatal("a: disabled endpoint still subscribed")
	}
	// A second Disable keeps the first reason.
	if err := a.Disable(ctx, e.ID, "auto-disabled"); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Get(e.ID); got.DisabledReason != "410 Gone" {
		t.Fatalf("reason overwritten: %q", got.DisabledReason)
	}
	if err := a.Disable(ctx, "ep_missing", "x"); !errors.Is(err, endpoint.ErrNotFound) {
		t.Fatalf("Disable(missing) = %v", err)
	}

	if err := a.Delete(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "delete on b", func() bool { _, ok := b.Get(e.ID); return !ok })
}
