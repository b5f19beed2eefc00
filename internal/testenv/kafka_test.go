package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestBrokers proves both brokers serve what Vitals needs through these
// helpers: idempotent acks=all produce, transactions with read_committed
// isolation, consumer groups, and consume-transform-produce exactly once.
func TestBrokers(t *testing.T) {
	Brokers(t, func(t *testing.T, brokers []string) {
		t.Run("IdempotentProduce", func(t *testing.T) { testIdempotentProduce(t, brokers) })
		t.Run("Transactions", func(t *testing.T) { testTransactions(t, brokers) })
		t.Run("ConsumerGroup", func(t *testing.T) { testConsumerGroup(t, brokers) })
		t.Run("GroupTransactSession", func(t *testing.T) { testGroupTransactSession(t, brokers) })
	})
}

func testIdempotentProduce(t *testing.T, brokers []string) {
	topic := UniqueName(t, "produce")
	CreateTopics(t, brokers, 3, topic)
	if got := ReadAll(t, brokers, topic, false); len(got) != 0 {
		t.Fatalf("new topic holds %d records, want 0", len(got))
	}

	cl := newClient(t, brokers, kgo.RequiredAcks(kgo.AllISRAcks())) // idempotent by default
	ctx := testContext(t)
	const n = 30
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "cust_%d", i%7), Value: fmt.Appendf(nil, "v%02d", i)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	got := ReadAll(t, brokers, topic, false)
	if len(got) != n {
		t.Fatalf("read %d records, want %d", len(got), n)
	}
	// Per key, values arrive in produce order and each exactly once.
	last := map[string]string{}
	seen := map[string]bool{}
	for _, r := range got {
		k, v := string(r.Key), string(r.Value)
		if seen[v] {
			t.Fatalf("value %s read twice", v)
		}
		seen[v] = true
		if v <= last[k] {
			t.Fatalf("key %s: %s after %s", k, v, last[k])
		}
		last[k] = v
	}
	if committed := ReadAll(t, brokers, topic, true); len(committed) != n {
		t.Fatalf("read_committed read %d records, want %d", len(committed), n)
	}
}

func testTransactions(t *testing.T, brokers []string) {
	topic := UniqueName(t, "txn")
	CreateTopics(t, brokers, 2, topic)
	cl := newClient(t, brokers, kgo.TransactionalID(UniqueName(t, "txn-id")), kgo.DefaultProduceTopic(topic))
	ctx := testContext(t)

	produceTxn := func(commit kgo.TransactionEndTry, values ...string) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatalf("begin transaction: %v", err)
		}
		for _, v := range values {
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatalf("end transaction: %v", err)
		}
	}
	produceTxn(kgo.TryCommit, "committed-0", "committed-1", "committed-2")
	produceTxn(kgo.TryAbort, "aborted-0", "aborted-1")

	committed := values(ReadAll(t, brokers, topic, true))
	if want := "committed-0 committed-1 committed-2"; sortedJoin(committed) != want {
		t.Errorf("read_committed = %q, want %q", sortedJoin(committed), want)
	}
	// Aborted records are in the log; only read_committed hides them. This
	// proves the isolation level is honoured, not merely that nothing was
	// written.
	all := values(ReadAll(t, brokers, topic, false))
	if want := "aborted-0 aborted-1 committed-0 committed-1 committed-2"; sortedJoin(all) != want {
		t.Errorf("read_uncommitted = %q, want %q", sortedJoin(all), want)
	}
}

func testConsumerGroup(t *testing.T, brokers []string) {
	topic := UniqueName(t, "group")
	group := UniqueName(t, "group")
	CreateTopics(t, brokers, 3, topic)
	const n = 12
	produceValues(t, brokers, topic, n)

	cl := newClient(t, brokers,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	)
	ctx := testContext(t)
	got := map[string]bool{}
	for len(got) < n {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("group consumed %d of %d records before the deadline", len(got), n)
		}
		if err := fetches.Err(); err != nil {
			t.Fatalf("poll: %v", err)
		}
		fetches.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit offsets: %v", err)
	}
	assertGroupAtEnd(t, brokers, group, topic)
}

func testGroupTransactSession(t *testing.T, brokers []string) {
	in, out := UniqueName(t, "eos-in"), UniqueName(t, "eos-out")
	group := UniqueName(t, "eos")
	CreateTopics(t, brokers, 3, in, out)
	const n = 9
	produceValues(t, brokers, in, n)

	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(brokers...),
		kgo.TransactionalID(UniqueName(t, "eos-id")),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
	)
	if err != nil {
		t.Fatalf("new group transact session: %v", err)
	}
	defer sess.Close()
	ctx := testContext(t)

	done := 0
	for done < n {
		fetches := sess.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("transformed %d of %d records before the deadline", done, n)
		}
		if err := fetches.Err(); err != nil {
			t.Fatalf("poll: %v", err)
		}
		if fetches.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			t.Fatalf("begin: %v", err)
		}
		var produced []*kgo.Record
		fetches.EachRecord(func(r *kgo.Record) {
			produced = append(produced, &kgo.Record{Topic: out, Key: r.Key, Value: []byte(strings.ToUpper(string(r.Value)))})
		})
		if err := sess.ProduceSync(ctx, produced...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil {
			t.Fatalf("end: %v", err)
		}
		if committed {
			done += len(produced)
		}
	}

	got := values(ReadAll(t, brokers, out, true))
	if len(got) != n {
		t.Fatalf("output holds %d committed records, want %d: %v", len(got), n, got)
	}
	for _, v := range got {
		if !strings.HasPrefix(v, "V") {
			t.Fatalf("output record %q was not transformed", v)
		}
	}
	assertGroupAtEnd(t, brokers, group, in)
}

// TestPrivateApacheKafka proves the kafka.sh path of ApacheKafka even when
// VITALS_TEST_KAFKA_BROKERS points at a shared broker: a private broker
// starts, serves, reports its status, and stop terminates it.
func TestPrivateApacheKafka(t *testing.T) {
	k := startPrivateKafka(t)
	ctx := testContext(t)
	if out, err := k.script(ctx, "status"); err != nil || !strings.Contains(out, "running") {
		t.Fatalf("status of a started broker = %q, %v; want running", out, err)
	}

	topic := UniqueName(t, "private")
	CreateTopics(t, k.brokers, 1, topic)
	produceValues(t, k.brokers, topic, 1)
	if got := ReadAll(t, k.brokers, topic, false); len(got) != 1 {
		t.Fatalf("read %d records, want 1", len(got))
	}

	if out, err := k.script(ctx, "stop"); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	out, err := k.script(ctx, "status")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(out, "stopped") {
		t.Fatalf("status of a stopped broker = %q, %v; want exit 3, stopped", out, err)
	}
	// stop waits for the process to exit, so the port is closed at once.
	if c, err := net.DialTimeout("tcp", k.brokers[0], time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after stop", k.brokers[0])
	}
}

func TestUniqueName(t *testing.T) {
	a, b := UniqueName(t, "p"), UniqueName(t, "p")
	if a == b {
		t.Fatalf("two calls returned %q", a)
	}
	if !strings.HasPrefix(a, "p.TestUniqueName.") {
		t.Fatalf("UniqueName = %q, want prefix p.TestUniqueName.", a)
	}
	t.Run("odd/chars here", func(t *testing.T) {
		n := UniqueName(t, "x")
		for _, r := range n {
			if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", r) {
				t.Fatalf("UniqueName = %q holds %q, illegal in topic names", n, r)
			}
		}
	})
}

// assertGroupAtEnd fails unless group has committed, for every partition of
// topic, the topic's current end offset.
func assertGroupAtEnd(t *testing.T, brokers []string, group, topic string) {
	t.Helper()
	adm := kafkaAdmin(t, brokers)
	ctx := testContext(t)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	// RequireStable makes the broker wait for pending transactional offset
	// commits, whose markers land after EndTransaction returns.
	committed, err := adm.FetchOffsets(kadm.RequireStable(ctx), group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(topic, o.Partition)
		if o.Offset == 0 && !ok {
			return // nothing to consume, nothing to commit
		}
		if !ok || c.At != o.Offset {
			t.Errorf("group %s partition %d committed %d (present %v), want end offset %d", group, o.Partition, c.At, ok, o.Offset)
		}
	})
}

// produceValues produces values v00, v01, … to topic, spread over its
// partitions by key.
func produceValues(t *testing.T, brokers []string, topic string, n int) {
	t.Helper()
	cl := newClient(t, brokers)
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%02d", i)})
	}
	if err := cl.ProduceSync(testContext(t), recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

func newClient(t *testing.T, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// testContext is cancelled after 60 s or when the test ends.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func values(recs []*kgo.Record) []string {
	var vs []string
	for _, r := range recs {
		vs = append(vs, string(r.Value))
	}
	return vs
}

func sortedJoin(vs []string) string {
	s := append([]string(nil), vs...)
	slices.Sort(s)
	return strings.Join(s, " ")
}
