package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/broker"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/topics"
)

func TestEnsureTopicsIsIdempotentAndCompacts(t *testing.T) {
	testenv.Brokers(t, func(t *testing.T, brokers []string) {
		cl, err := kgo.NewClient(broker.Options(brokers, "test", broker.Security{})...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		data, table := testenv.UniqueName(t, "data"), testenv.UniqueName(t, "table")
		specs := []topics.Spec{{Name: data, Partitions: 3}, {Name: table, Partitions: 1, Compacted: true}}
		for range 2 {
			if err := broker.EnsureTopics(ctx, cl, specs); err != nil {
				t.Fatal(err)
			}
		}
		adm := kadm.NewClient(cl)
		td, err := adm.ListTopics(ctx, data, table)
		if err != nil {
			t.Fatal(err)
		}
		if len(td[data].Partitions) != 3 || len(td[table].Partitions) != 1 {
			t.Fatalf("partitions: %d, %d", len(td[data].Partitions), len(td[table].Partitions))
		}
		rc, err := adm.DescribeTopicConfigs(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		v, err := rc.On(table, nil)
		if err != nil {
			t.Fatal(err)
		}
		var policy string
		for _, c := range v.Configs {
			if c.Key == "cleanup.policy" && c.Value != nil {
				policy = *c.Value
			}
		}
		if policy != "compact" {
			t.Fatalf("cleanup.policy of %s = %q, want compact", table, policy)
		}
	})
}

func TestEmbeddedPersistsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	emb, err := broker.StartEmbedded("127.0.0.1:0", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(broker.Options(emb.Addrs(), "test", broker.Security{})...)
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.EnsureTopics(ctx, cl, []topics.Spec{{Name: "t", Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("kept")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	emb.Close()

	emb, err = broker.StartEmbedded("127.0.0.1:0", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	cl, err = kgo.NewClient(append(broker.Options(emb.Addrs(), "test", broker.Security{}), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fs := cl.PollFetches(ctx)
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "kept" {
		t.Fatalf("after restart: %v %v", recs, fs.Errors())
	}
	if _, err := broker.StartEmbedded("0.0.0.0:0", "", nil); err == nil {
		t.Fatal("the embedded broker must refuse non-loopback addresses")
	}
}
