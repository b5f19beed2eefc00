package testenv

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaBrokersEnv names the environment variable holding a comma-separated
// list of Apache Kafka brokers for tests. When it is set (make test does),
// ApacheKafka uses those brokers instead of starting its own.
const KafkaBrokersEnv = "VITALS_TEST_KAFKA_BROKERS"

// kafkaScript is the broker script, relative to the repository root.
const kafkaScript = "deploy/kafka/kafka.sh"

const (
	// kafkaStartTimeout bounds one kafka.sh start: the first run on a
	// machine downloads the jars from Maven Central; later ones take seconds.
	kafkaStartTimeout = 10 * time.Minute
	// kafkaStopTimeout bounds one kafka.sh stop.
	kafkaStopTimeout = time.Minute
	// kafkaAdminTimeout bounds the admin and read helpers.
	kafkaAdminTimeout = 30 * time.Second
	// kafkaSettleTimeout bounds how long ReadAll waits for transaction
	// markers of committed or aborted transactions to land.
	kafkaSettleTimeout = 5 * time.Second
)

// Kfake starts an in-process kfake cluster listening on 127.0.0.1 TCP ports
// and returns its seed broker addresses. The cluster is closed when the test
// ends. opts are passed to kfake.NewCluster (kfake defaults to 3 brokers).
func Kfake(t testing.TB, opts ...kfake.Opt) []string {
	t.Helper()
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("start kfake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// ApacheKafka returns the seed brokers of a real Apache Kafka cluster. It
// uses $VITALS_TEST_KAFKA_BROKERS when set; otherwise it starts a private
// single-node broker with deploy/kafka/kafka.sh in a temporary directory on
// free ports and stops it when the test ends. It never skips: without a
// broker the test fails.
func ApacheKafka(t testing.TB) []string {
	t.Helper()
	if env := os.Getenv(KafkaBrokersEnv); strings.TrimSpace(env) != "" {
		var brokers []string
		for _, b := range strings.Split(env, ",") {
			if b = strings.TrimSpace(b); b != "" {
				brokers = append(brokers, b)
			}
		}
		return brokers
	}
	return startPrivateKafka(t).brokers
}

// PrivateApacheKafka always starts a private single-node Apache Kafka broker
// for this test (ignoring $VITALS_TEST_KAFKA_BROKERS), so a test may use the
// fixed vitals.* topics and consumer groups without meeting another
// package's. The broker is stopped when the test ends.
func PrivateApacheKafka(t testing.TB) []string {
	t.Helper()
	return startPrivateKafka(t).brokers
}

// Brokers runs fn once against an in-process kfake cluster (subtest "kfake")
// and once against Apache Kafka (subtest "kafka"), so an end-to-end test
// proves its behaviour on both.
func Brokers(t *testing.T, fn func(t *testing.T, brokers []string)) {
	t.Helper()
	t.Run("kfake", func(t *testing.T) { fn(t, Kfake(t)) })
	t.Run("kafka", func(t *testing.T) { fn(t, ApacheKafka(t)) })
}

// UniqueName returns a Kafka-legal name (topic, group, transactional id)
// that starts with prefix and is unique to this test and call, so tests can
// share a broker without seeing each other's data.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("unique name: %v", err)
	}
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '-'
	}, t.Name())
	// Topic names are limited to 249 characters.
	const maxTestPart = 150
	if len(name) > maxTestPart {
		name = name[len(name)-maxTestPart:]
	}
	return prefix + "." + name + "." + hex.EncodeToString(b[:])
}

// CreateTopics creates the named topics with the given partition count
// (replication factor 1) and waits until every partition has a leader, so
// the test can produce and consume at once.
func CreateTopics(t testing.TB, brokers []string, partitions int32, names ...string) {
	t.Helper()
	adm := kafkaAdmin(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), kafkaAdminTimeout)
	defer cancel()
	resps, err := adm.CreateTopics(ctx, partitions, 1, nil, names...)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		t.Fatalf("create topics %v: %v", names, err)
	}
	for {
		err := kafkaTopicsReady(ctx, adm, partitions, names)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("topics %v not ready after %v: %v", names, kafkaAdminTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kafkaTopicsReady returns nil once every named topic is listed with the
// given partition count and every partition's leader answers for it. Apache
// Kafka publishes a new partition's leader in metadata a moment before the
// leader serves it; a producer that hits that gap waits for its next metadata
// refresh (5 s in franz-go), so the leaders are asked directly.
func kafkaTopicsReady(ctx context.Context, adm *kadm.Client, partitions int32, names []string) error {
	md, err := adm.Metadata(ctx, names...)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	for _, name := range names {
		td, ok := md.Topics[name]
		switch {
		case !ok:
			return fmt.Errorf("topic %s not in metadata", name)
		case td.Err != nil:
			return fmt.Errorf("topic %s: %w", name, td.Err)
		case int32(len(td.Partitions)) != partitions:
			return fmt.Errorf("topic %s has %d of %d partitions", name, len(td.Partitions), partitions)
		}
	}
	ends, err := adm.ListEndOffsets(ctx, names...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("list offsets from the leaders: %w", err)
	}
	return nil
}

// ReadAll reads topic from the start of every partition up to the end
// offsets it has when called, and returns the records in partition then
// offset order. With committed it reads like a read_committed consumer: up to
// the last stable offset, without records of aborted transactions (waiting a
// few seconds for markers of just-ended transactions; see kafkaEndOffsets);
// otherwise it reads everything up to the high watermark. Tests use it to assert
// exactly what reached Kafka, including that nothing did.
func ReadAll(t testing.TB, brokers []string, topic string, committed bool) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kafkaAdminTimeout)
	defer cancel()
	adm := kafkaAdmin(t, brokers)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		t.Fatalf("read %s: list start offsets: %v", topic, err)
	}
	ends, err := kafkaEndOffsets(ctx, adm, topic, committed)
	if err != nil {
		t.Fatalf("read %s: %v", topic, err)
	}

	// want maps each partition with data to its end offset; from maps it to
	// where reading starts.
	want := map[int32]int64{}
	from := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		start, _ := starts.Lookup(o.Topic, o.Partition)
		if o.Offset > start.Offset {
			want[o.Partition] = o.Offset
			from[o.Partition] = kgo.NewOffset().At(start.Offset)
		}
	})
	if len(want) == 0 {
		return nil
	}

	isolation := kgo.ReadUncommitted()
	if committed {
		isolation = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchIsolationLevel(isolation),
		// Transaction markers are kept so that reading can tell it reached
		// the end offset even when the last offsets are markers; they are
		// not returned to the caller.
		kgo.KeepControlRecords(),
	)
	if err != nil {
		t.Fatalf("read %s: new client: %v", topic, err)
	}
	defer cl.Close()

	var recs []*kgo.Record
	for len(want) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %d partitions not read to their end offsets %v within %v", topic, len(want), want, kafkaAdminTimeout)
		}
		for _, fe := range fetches.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				t.Fatalf("read %s: fetch partition %d: %v", topic, fe.Partition, fe.Err)
			}
		}
		fetches.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if !r.Attrs.IsControl() {
				recs = append(recs, r)
			}
			if r.Offset == end-1 {
				delete(want, r.Partition)
			}
		})
	}
	slices.SortFunc(recs, func(a, b *kgo.Record) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	return recs
}

// kafkaEndOffsets lists the offsets ReadAll reads up to: the high
// watermarks, or with committed the last stable offsets. A committed
// transaction becomes readable only once its markers are written, which
// happens after EndTransaction returns; so with committed it waits up to
// kafkaSettleTimeout for the last stable offsets to reach the high
// watermarks, and then takes them as they are (a transaction still open
// stays unread).
func kafkaEndOffsets(ctx context.Context, adm *kadm.Client, topic string, committed bool) (kadm.ListedOffsets, error) {
	list := func(f func(context.Context, ...string) (kadm.ListedOffsets, error)) (kadm.ListedOffsets, error) {
		offs, err := f(ctx, topic)
		if err == nil {
			err = offs.Error()
		}
		return offs, err
	}
	if !committed {
		hw, err := list(adm.ListEndOffsets)
		if err != nil {
			return nil, fmt.Errorf("list end offsets: %w", err)
		}
		return hw, nil
	}
	settle := time.Now().Add(kafkaSettleTimeout)
	for {
		lso, err := list(adm.ListCommittedOffsets)
		if err != nil {
			return nil, fmt.Errorf("list committed offsets: %w", err)
		}
		hw, err := list(adm.ListEndOffsets)
		if err != nil {
			return nil, fmt.Errorf("list end offsets: %w", err)
		}
		stable := true
		hw.Each(func(o kadm.ListedOffset) {
			if l, _ := lso.Lookup(o.Topic, o.Partition); l.Offset < o.Offset {
				stable = false
			}
		})
		if stable || time.Now().After(settle) {
			return lso, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list committed offsets: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kafkaAdmin returns an admin client for brokers, closed when the test ends.
func kafkaAdmin(t testing.TB, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("admin client for %v: %v", brokers, err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// privateKafka is a broker started by kafka.sh for one test.
type privateKafka struct {
	brokers []string
	// script runs kafka.sh with this broker's environment.
	script func(ctx context.Context, cmd string) (string, error)
}

// startPrivateKafka starts a single-node Apache Kafka broker with
// deploy/kafka/kafka.sh in t.TempDir() on free ports, and stops it (waiting
// until it has exited) when the test ends.
func startPrivateKafka(t testing.TB) *privateKafka {
	t.Helper()
	root, err := kafkaRepoRoot()
	if err != nil {
		t.Fatalf("apache kafka: %v", err)
	}
	ports, err := kafkaFreePorts(2)
	if err != nil {
		t.Fatalf("apache kafka: %v", err)
	}
	env := append(os.Environ(),
		"KAFKA_DIR="+t.TempDir(),
		"KAFKA_PORT="+strconv.Itoa(ports[0]),
		"KAFKA_CONTROLLER_PORT="+strconv.Itoa(ports[1]),
		// The script stops the broker when this process dies without
		// running cleanups (a test binary timeout, a kill).
		"KAFKA_OWNER_PID="+strconv.Itoa(os.Getpid()),
	)
	script := func(ctx context.Context, command string) (string, error) {
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, kafkaScript), command)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		err := cmd.Run()
		return out.String(), err
	}

	ctx, cancel := context.WithTimeout(context.Background(), kafkaStartTimeout)
	defer cancel()
	began := time.Now()
	out, err := script(ctx, "start")
	// Register the stop before checking the start: a start that timed out
	// may have left a broker behind.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), kafkaStopTimeout)
		defer cancel()
		if out, err := script(ctx, "stop"); err != nil {
			t.Errorf("%s stop: %v\n%s", kafkaScript, err, out)
		}
	})
	if err != nil {
		t.Fatalf("%s start: %v\n%s", kafkaScript, err, out)
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	t.Logf("apache kafka on %s (started in %v)", addr, time.Since(began).Round(time.Millisecond))
	return &privateKafka{brokers: []string{addr}, script: script}
}

// kafkaFreePorts returns n distinct TCP ports free on 127.0.0.1 right now.
func kafkaFreePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find free port: %w", err)
		}
		// Closed only after all are chosen, so the ports differ.
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// kafkaRepoRoot returns the repository root: the nearest directory at or above
// the working directory that holds go.mod.
func kafkaRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repo root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repo root: no go.mod above the working directory")
		}
		dir = parent
	}
}
