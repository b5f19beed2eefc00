package processor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/processor/model"
	"github.com/vitalshq/vitals/schemas"
	"github.com/vitalshq/vitals/topics"
)

// TestRestore builds the state of 100 000 customers with one processor,
// stops it, and starts another: before it processes anything, the new one
// must have restored every customer's state from the changelog exactly as
// it was before the restart (the pure model's state for the same input).
func TestRestore(t *testing.T) {
	const customers = 100_000
	names := append([]string{topics.CustomerEvents, topics.CustomerState, topics.CustomerEventsDLQ}, topics.Derived()...)
	brokers := testenv.Kfake(t, kfake.NumBrokers(1), kfake.SeedTopics(4, names...))
	codec, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.NewModel(model.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 5, 5, 9, 0, 0, 0, time.UTC)
	want := make(map[string]*model.State, customers)
	recs := make([]*kgo.Record, 0, customers)
	for i := range customers {
		ev := event.CustomerEvent{EventID: fmt.Sprintf("e%d", i), CustomerID: fmt.Sprintf("cust-%06d", i),
			OccurredAt: start.Add(time.Duration(i) * time.Second), Source: "test",
			Data: event.UsageReported{ActiveUsers: int64(i % 50), SeatsPurchased: 50, FeaturesUsed: []string{"api"}}}
		st := &model.State{CustomerID: ev.CustomerID}
		m.Apply(st, ev)
		want[ev.CustomerID] = st
		b, err := codec.EncodeCustomerEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topics.CustomerEvents, Key: []byte(ev.CustomerID), Value: b})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MaxBufferedRecords(customers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	run := func(p *Processor) (stop func()) {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(rctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	first, err := New(codec, WithBrokers(brokers...), WithGroup("restore"), WithTransactionalID("restore-1"),
		WithTransactionRecords(10_000), WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(first)
	adm := kadm.NewClient(cl)
	for caughtUp := false; !caughtUp; {
		select {
		case <-ctx.Done():
			t.Fatal("first processor did not commit all input in time")
		case <-time.After(50 * time.Millisecond):
		}
		offs, err := adm.FetchOffsets(ctx, "restore")
		n := int64(0)
		if err == nil {
			offs.Each(func(o kadm.OffsetResponse) { n += o.At })
		}
		caughtUp = n == customers
	}
	stop()

	reg := prometheus.NewRegistry()
	second, err := New(codec, WithBrokers(brokers...), WithGroup("restore"), WithTransactionalID("restore-1"),
		WithLogger(logger), WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	type restore struct {
		tables map[int32]*table
		took   time.Duration
	}
	restored := make(chan restore, 8)
	second.restored = func(ts map[int32]*table, took time.Duration) { restored <- restore{ts, took} }
	defer run(second)()

	got := map[string]*model.State{}
	var took time.Duration
	for parts := 0; parts < 4; {
		select {
		case r := <-restored:
			took += r.took
			for _, tb := range r.tables {
				parts++
				for id, st := range tb.customers {
					got[id] = st
				}
			}
		case <-ctx.Done():
			t.Fatalf("restored %d of 4 partitions in time", parts)
		}
	}
	t.Logf("restored %d customers in %v", len(got), took)
	if len(got) != customers {
		t.Errorf("restored %d customers, want %d", len(got), customers)
	}
	js := JSONStateCodec{}
	bad := 0
	for id, w := range want {
		a, _ := js.EncodeState(w)
		b, _ := js.EncodeState(got[id])
		if string(a) != string(b) && bad < 3 {
			bad++
			t.Errorf("restored state of %s:\n got %s\nwant %s", id, b, a)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "vitals_processor_restored_customers_total":
			seen[mf.GetName()] = mf.GetMetric()[0].GetCounter().GetValue() == customers
		case "vitals_processor_restore_seconds":
			seen[mf.GetName()] = mf.GetMetric()[0].GetHistogram().GetSampleCount() > 0
		}
	}
	if !seen["vitals_processor_restored_customers_total"] || !seen["vitals_processor_restore_seconds"] {
		t.Errorf("restore metrics not as expected: %v", seen)
	}
}

// TestCloneStateIsDeep fills every field of a model.State reachable by
// reflection with non-zero values, clones it and checks that the clone is
// equal and shares no slice, map or pointer with the original — so a
// reference field added to model.State later is copied too.
func TestCloneStateIsDeep(t *testing.T) {
	st := new(model.State)
	fill(reflect.ValueOf(st).Elem(), 0)
	c := cloneState(st)
	if !reflect.DeepEqual(st, c) {
		t.Fatalf("clone differs:\n%+v\n%+v", st, c)
	}
	if path := shared(reflect.ValueOf(st).Elem(), reflect.ValueOf(c).Elem(), "State"); path != "" {
		t.Fatalf("clone shares %s with the original", path)
	}
}

// fill sets v to a non-zero value, recursing into exported fields.
func fill(v reflect.Value, depth int) {
	if depth > 6 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), depth+1)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), depth+1)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k := reflect.New(v.Type().Key()).Elem()
		fill(k, depth+1)
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, depth+1)
		v.SetMapIndex(k, e)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth+1)
			}
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(0.5)
	}
}

// shared returns the path of the first reference a and b share, or "".
func shared(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() {
			return ""
		}
		if a.Pointer() == b.Pointer() {
			return path
		}
		return shared(a.Elem(), b.Elem(), "*"+path)
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for i := range a.Len() {
			if p := shared(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case reflect.Map:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for it := a.MapRange(); it.Next(); {
			if p := shared(it.Value(), b.MapIndex(it.Key()), path+"[k]"); p != "" {
				return p
			}
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				if p := shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
					return p
				}
			}
		}
	}
	return ""
}
