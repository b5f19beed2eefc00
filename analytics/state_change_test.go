package analytics_test

import (
	"context"
	"testing"
	"time"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/internal/testenv"
)

func TestStateChangesRoundTrip(t *testing.T) {
	addr := testenv.ClickHouse(t)
	_, db := testDB(t, addr)
	w, err := analytics.NewWriter(addr, analytics.WithDatabase(db))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := time.Date(2025, 12, 5, 8, 20, 0, 0, time.UTC)
	want := []analytics.EndpointStateChange{
		{EndpointID: "ep_1", From: "closed", To: "open", Reason: "5 consecutive failures", Timestamp: ts},
		{EndpointID: "ep_1", From: "open", To: "half-open", Reason: "open period over", Timestamp: ts.Add(30 * time.Second)},
		{EndpointID: "ep_2", From: "closed", To: "open", Timestamp: ts},
	}
	// No Run: AppendStateChange migrates by itself.
	for _, c := range want {
		if err := w.AppendStateChange(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := w.StateChanges(ctx, "ep_1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("state changes %+v, want %+v", got, want[:2])
	}
}
