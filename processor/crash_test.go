package processor_test

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/topics"
)

// TestCrash runs the processor as a separate process over 100 000 events
// (2000 customers × 50) flowing into Apache Kafka, kills it with SIGKILL
// three times at random moments and starts it again each time with the
// same transactional id. At the end, the derived events read with
// read_committed must equal, record for record and in per-customer order,
// those of an uninterrupted run of the same input.
//
// The uninterrupted run is computed with the pure model in this process:
// the model is deterministic (event time only, derived event ids from the
// customer, the input event id and the derived type) and the processor
// applies each customer's events in input order, so a run that never
// crashed produces exactly the model's output per customer and topic. The
// kills land inside open transactions, between commit and the next one,
// or during restore; any lost or doubled work, or any state change of an
// aborted transaction that survived, shows up as a missing, extra or
// different record (a leaked change would make the model skip the
// reprocessed events as duplicates).
func TestCrash(t *testing.T) {
	brokers := testenv.PrivateApacheKafka(t)
	testenv.CreateTopics(t, brokers, 4, allTopics()...)

	bin := filepath.Join(t.TempDir(), "crashproc")
	build := exec.Command("go", "build", "-o", bin, "./internal/crashproc")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build crashproc: %v\n%s", err, out)
	}

	codec := newCodec(t)
	evs := cohort("crash", 2000, 50, 100)
	want, wantStates := modelOutput(t, codec, evs)
	t.Logf("%d events, %d derived events expected", len(evs), count(want))

	// The input flows while the processor runs and is killed.
	var recs []*kgo.Record
	for _, ev := range evs {
		b, err := codec.EncodeCustomerEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topics.CustomerEvents, Key: []byte(ev.CustomerID), Value: b})
	}
	pcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MaxBufferedRecords(len(recs)))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	produced := make(chan error, 1)
	go func() {
		const chunk = 5000
		for i := 0; i < len(recs); i += chunk {
			if err := pcl.ProduceSync(context.Background(), recs[i:min(i+chunk, len(recs))]...).FirstErr(); err != nil {
				produced <- err
				return
			}
		}
		produced <- nil
	}()

	logs, err := os.Create(filepath.Join(t.TempDir(), "crashproc.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	startProc := func() *exec.Cmd {
		cmd := exec.Command(bin, "-brokers", brokers[0], "-group", testGroup, "-txn-id", "crash-proc-0")
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	dumpLogs := func() {
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("crashproc log (last 4 KiB):\n%s", b[max(0, len(b)-4096):])
		}
	}
	defer dumpLogs()

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("kill seed %d", seed)
	cmd := startProc()
	for i := range 3 {
		// Kill i lands after a random share of the input was committed,
		// in the i-th third of the run.
		at := int64(float64(len(evs)) * (float64(i) + 0.2 + 0.6*rng.Float64()) / 3.5)
		waitProgress(t, brokers, at, 90*time.Second)
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		t.Logf("kill %d after ≥ %d committed events", i+1, at)
		cmd = startProc()
	}
	if err := <-produced; err != nil {
		t.Fatalf("produce input: %v", err)
	}
	waitCommitted(t, brokers, 150*time.Second)
	got := readDerived(t, brokers)
	equalStreams(t, got, want)
	t.Logf("%d derived events read with read_committed", count(got))

	states, _ := readStates(t, brokers)
	for id, w := range wantStates {
		if !statesEqual(t, states[id], w) {
			t.Errorf("changelog state of %s differs from the uninterrupted run", id)
			break
		}
	}

	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("crashproc did not stop cleanly on SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Error("crashproc did not stop within 30s of SIGTERM")
	}
}

// waitProgress waits until the group committed at least n input offsets in
// all.
func waitProgress(t *testing.T, brokers []string, n int64, timeout time.Duration) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		var sum int64
		if offs, err := adm.FetchOffsets(ctx, testGroup); err == nil {
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Topic == topics.CustomerEvents && o.At > 0 {
					sum += o.At
				}
			})
		}
		if sum >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the group committed %d of %d offsets within %v", sum, n, timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
