package ktable_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/ktable"
)

type row struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

func start(t *testing.T, brokers []string, topic string, opts ...ktable.Option[row]) *ktable.Table[row] {
	t.Helper()
	tb, err := ktable.New[row](topic, []kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tb.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := tb.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestTable(t *testing.T) {
	testenv.Brokers(t, func(t *testing.T, brokers []string) {
		topic := testenv.UniqueName(t, "table")
		testenv.CreateTopics(t, brokers, 3, topic)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()

		var applied []string
		appliedCh := make(chan string, 100)
		a := start(t, brokers, topic)
		b := start(t, brokers, topic, ktable.OnApply(func(key string, v row, deleted bool) { appliedCh <- key }))

		// Read-your-writes: Get right after Put sees the value.
		for i, k := range []string{"k1", "k2", "k3"} {
			if err := a.Put(ctx, k, row{Name: k, N: i}); err != nil {
				t.Fatal(err)
			}
			if v, ok := a.Get(k); !ok || v.N != i {
				t.Fatalf("Get(%s) after Put = %+v, %v", k, v, ok)
			}
		}
		if err := a.Put(ctx, "k1", row{Name: "k1", N: 10}); err != nil {
			t.Fatal(err)
		}
		if err := a.Delete(ctx, "k2"); err != nil {
			t.Fatal(err)
		}
		if got := a.All(); len(got) != 2 || got[0].N != 10 || got[1].Name != "k3" {
			t.Fatalf("All = %+v", got)
		}
		// Another instance converges: wait until it applied the delete.
		for len(applied) < 5 {
			select {
			case k := <-appliedCh:
				applied = append(applied, k)
			case <-ctx.Done():
				t.Fatalf("second table applied only %v", applied)
			}
		}
		if _, ok := b.Get("k2"); ok || b.Len() != 2 {
			t.Fatalf("second table: len %d, k2 present %v", b.Len(), ok)
		}
		// A new instance restores everything before Ready.
		c := start(t, brokers, topic)
		if v, ok := c.Get("k1"); !ok || v.N != 10 || c.Len() != 2 {
			t.Fatalf("restored table: %+v %v len %d", v, ok, c.Len())
		}
	})
}
