// Command crashproc runs one processor against the given brokers until it
// receives SIGINT or SIGTERM (or is killed). It exists for the processor's
// crash test, which kills it with SIGKILL at random moments and starts it
// again; it is never shipped.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/processor"
	"github.com/vitalshq/vitals/schemas"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "crashproc:", err)
		os.Exit(1)
	}
}

func run() error {
	brokers := flag.String("brokers", "", "comma-separated Kafka brokers")
	group := flag.String("group", processor.DefaultGroup, "consumer group")
	txnID := flag.String("txn-id", "", "transactional id")
	records := flag.Int("txn-records", processor.DefaultTransactionRecords, "max input records per transaction")
	interval := flag.Duration("txn-interval", processor.DefaultTransactionInterval, "max transaction duration")
	session := flag.Duration("session-timeout", 6*time.Second, "group session timeout")
	flag.Parse()

	codec, err := schemas.New()
	if err != nil {
		return err
	}
	p, err := processor.New(codec,
		processor.WithBrokers(strings.Split(*brokers, ",")...),
		processor.WithGroup(*group),
		processor.WithTransactionalID(*txnID),
		processor.WithTransactionRecords(*records),
		processor.WithTransactionInterval(*interval),
		processor.WithClientOptions(kgo.SessionTimeout(*session), kgo.HeartbeatInterval(*session/6)),
		processor.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))),
	)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return p.Run(ctx)
}
