package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/topics"
)

// Options returns the client options every Vitals Kafka client starts from:
// the seed brokers, a client id and the connection security of sec. Stages
// append their own (groups, producer settings).
//
// Settings sec cannot build (see Security.Validate, which a process should
// call at start) never yield an unprotected client: its every connection
// fails with the settings' error instead.
func Options(brokers []string, clientID string, sec Security) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID(clientID),
		kgo.RetryTimeout(30 * time.Second),
	}
	secOpts, err := sec.ClientOpts()
	if err != nil {
		return append(opts, refusingDialer(err))
	}
	return append(opts, secOpts...)
}

// ParseList splits a comma-separated broker list, dropping blanks.
func ParseList(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// EnsureTopics creates every topic in specs that does not exist yet, with
// replication factor min(3, brokers) and cleanup.policy=compact for
// compacted topics, and waits until each has leaders. Existing topics are
// left as they are (the processor checks that its input and changelog
// topics are co-partitioned before it starts).
func EnsureTopics(ctx context.Context, cl *kgo.Client, specs []topics.Spec) error {
	adm := kadm.NewClient(cl)
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return fmt.Errorf("ensure topics: broker metadata: %w", err)
	}
	rf := int16(min(3, len(meta.Brokers)))
	for _, s := range specs {
		cfg := map[string]*string{}
		if s.Compacted {
			cfg["cleanup.policy"] = kadm.StringPtr("compact")
		}
		resp, err := adm.CreateTopic(ctx, s.Partitions, rf, cfg, s.Name)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("ensure topic %s: %w", s.Name, err)
		}
		if err == nil && resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("ensure topic %s: %w", s.Name, resp.Err)
		}
	}
	// Creation is asynchronous on real clusters: wait until every topic has
	// leaders so the first produce does not race it.
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	for {
		td, err := adm.ListTopics(ctx, names...)
		if err == nil {
			ready := true
			for _, n := range names {
				t, ok := td[n]
				if !ok || t.Err != nil || len(t.Partitions) == 0 {
					ready = false
					break
				}
				for _, p := range t.Partitions {
					if p.Err != nil || p.Leader < 0 {
						ready = false
					}
				}
			}
			if ready {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ensure topics: waiting for leaders: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Embedded is an in-process kfake broker persisted to a directory. It is the
// default of `vitals run` so the pipeline starts with no external services.
type Embedded struct {
	cluster *kfake.Cluster
	addrs   []string
}

// StartEmbedded starts a single-broker kfake cluster listening on listen
// ("127.0.0.1:9092"; port 0 picks a free one) and persisting under dataDir
// (an empty dataDir keeps everything in memory). Call Close to stop it.
func StartEmbedded(listen, dataDir string, logger *slog.Logger) (*Embedded, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka listen address %q: %w", listen, err)
	}
	if host != "127.0.0.1" && host != "localhost" && host != "" {
		return nil, fmt.Errorf("embedded kafka listen address %q: the embedded broker listens on 127.0.0.1 only", listen)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka port %q: %w", portStr, err)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ClusterID("vitals-embedded"),
		kfake.DefaultNumPartitions(topics.DefaultPartitions),
		kfake.WithLogger(kfakeLogger{logger}),
	}
	if dataDir != "" {
		// SyncWrites: an event is acked to an API client only once it is on
		// disk, so a crash of `vitals run` never loses an accepted event.
		opts = append(opts, kfake.DataDir(filepath.Clean(dataDir)), kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka: %w", err)
	}
	return &Embedded{cluster: c, addrs: c.ListenAddrs()}, nil
}

// Addrs returns the broker addresses to use as seed brokers.
func (e *Embedded) Addrs() []string { return e.addrs }

// Close stops the broker and flushes its persisted state.
func (e *Embedded) Close() { e.cluster.Close() }

type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	if k.l == nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	switch level {
	case kfake.LogLevelError:
		k.l.Error(msg, "component", "kfake")
	case kfake.LogLevelWarn:
		k.l.Warn(msg, "component", "kfake")
	}
}
