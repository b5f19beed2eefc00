package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/config"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/keyring"
	"github.com/vitalshq/vitals/topics"
	"github.com/vitalshq/vitals/user"
)

const keysUsage = `Usage: vitals keys <subcommand> [flags]

Subcommands:
  rotate   create a new data-encryption key and re-encrypt every stored secret under it

Run 'vitals keys rotate -h' for its flags.
`

// keysRotateHelp is the help text of `vitals keys rotate`, before its flags.
func keysRotateHelp() string {
	return `Usage: vitals keys rotate [flags]

Creates a new data-encryption key, makes it the primary key every instance
seals with, and re-encrypts every stored secret under it:

` + fmt.Sprintf("  %-24s %s\n", topics.Endpoints, "endpoint signing secrets and ed25519 keys") +
		fmt.Sprintf("  %-24s %s\n", topics.SigningKeys, "access-token signing keys (their private keys)") +
		fmt.Sprintf("  %-24s %s\n", topics.Users, "TOTP seeds") + `
and prints, per topic, how many records it read and re-wrote. Older data
keys stay in the keyring, so what they sealed (the analytics spool, a record
changed during the rotation) still opens. Running it again is harmless: it
makes another key and moves everything to that. (The access-token signing
key is another key: ` + "`vitals admin keys rotate`" + ` replaces it.)

It needs the master key: ` + keyring.MasterKeyEnv + ` or --master-key-file; with
neither, the key ` + "`vitals run`" + ` generated in its data dir, <--data-dir>/master.key.
And the Kafka cluster: --kafka-brokers. For ` + "`vitals run`" + ` on its embedded
broker, that is the broker's address (--embedded-kafka-listen, 127.0.0.1:9092
by default), while vitals run is running.

It is safe while the API and dispatchers run: they pick the new key up
within moments. Registry writes are last-writer-wins, though: a change to an
endpoint or user made through the API in the milliseconds between this
command reading that record and re-writing it is overwritten; do not rotate
in the middle of endpoint changes.

`
}

// runKeys is `vitals keys`: the data-encryption keys that seal secrets at
// rest.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return errUsage
	}
	switch args[0] {
	case "rotate":
		return runKeysRotate(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, keysUsage)
		return flag.ErrHelp
	}
	fmt.Fprintf(stderr, "vitals keys: unknown subcommand %q\n\n%s", args[0], keysUsage)
	return errUsage
}

// resealed is one topic's line of the rotation summary.
type resealed struct {
	topic                         string
	records, resealed, unreadable int
}

// runKeysRotate is `vitals keys rotate`.
func runKeysRotate(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	if slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" }) {
		fmt.Fprint(stderr, keysRotateHelp())
	}
	e, err := setup(ctx, "keys rotate", args, stderr, []config.Group{config.Common, config.Kafka})
	if err != nil {
		return err
	}
	defer func() {
		e.g.Stop()
		if werr := e.g.Wait(); err == nil {
			err = werr
		}
	}()
	if len(e.brokers) == 0 {
		return fmt.Errorf("%w: --kafka-brokers (or %s) is required: the cluster the API uses (for `vitals run` on its embedded broker: --embedded-kafka-listen, default 127.0.0.1:9092, while it runs)",
			errUsage, config.EnvName("kafka-brokers"))
	}
	if os.Getenv(keyring.MasterKeyEnv) == "" && e.cfg.MasterKeyFile == "" {
		path := filepath.Join(e.cfg.DataDir, "master.key")
		if _, err := os.Stat(path); err == nil {
			e.cfg.MasterKeyFile = path
			e.log.Info("using the master key `vitals run` generated in its data dir", "path", path)
		}
	}
	ctx = e.g.ctx
	if err := e.checkTopics(ctx, topics.Keyring, topics.Endpoints, topics.Clients, topics.SigningKeys, topics.Users); err != nil {
		return err
	}
	keys, err := e.keyring(ctx)
	if err != nil {
		return err
	}
	eps, err := endpoint.NewRegistry(e.clientOpts("keys-endpoints"),
		endpoint.WithSealer(keys), endpoint.WithLogger(e.log.With("component", "endpoints")))
	if err != nil {
		return err
	}
	if err := e.startTable(ctx, "endpoints", eps); err != nil {
		return err
	}
	signing, err := auth.NewKafkaStore(e.clientOpts("keys-auth"), e.log, auth.WithKeySealer(keys))
	if err != nil {
		return err
	}
	if err := e.startTable(ctx, "auth-store", signing); err != nil {
		return err
	}
	users, err := user.NewKafkaStore(e.clientOpts("keys-users"), e.log)
	if err != nil {
		return err
	}
	if err := e.startTable(ctx, "users", users); err != nil {
		return err
	}

	previous := keys.Primary()
	dk, err := keys.Rotate(ctx)
	if err != nil {
		return err
	}
	var (
		rows []resealed
		errs []error
	)
	es, err := eps.Reseal(ctx)
	rows, errs = append(rows, resealed{topics.Endpoints, es.Records, es.Resealed, es.Unreadable}), append(errs, err)
	ks, err := signing.Reseal(ctx)
	rows, errs = append(rows, resealed{topics.SigningKeys, ks.Records, ks.Resealed, ks.Unreadable}), append(errs, err)
	us, err := users.Reseal(ctx, keys)
	rows, errs = append(rows, resealed{topics.Users, us.Records, us.Resealed, us.Unreadable}), append(errs, err)

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tRECORDS\tRESEALED\tUNREADABLE")
	unreadable := 0
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", r.topic, r.records, r.resealed, r.unreadable)
		unreadable += r.unreadable
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "new primary data key: %s (previous: %s)\n", dk.ID, previous)
	if err := errors.Join(errs...); err != nil {
		e.log.Error("keys rotate: some records were not re-encrypted", "err", err)
		if unreadable > 0 {
			return fmt.Errorf("%d records do not open and keep their old key (see the errors logged above): %w", unreadable, err)
		}
		return err
	}
	return nil
}

// checkTopics fails unless every named topic exists, so that a wrong
// --kafka-brokers is reported as such rather than as a table that never
// becomes ready.
func (e *env) checkTopics(ctx context.Context, names ...string) error {
	cl, err := kgo.NewClient(e.clientOpts("admin")...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	details, err := kadm.NewClient(cl).ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("kafka %v: list topics: %w", e.brokers, err)
	}
	var missing []string
	for _, n := range names {
		if d, ok := details[n]; !ok || d.Err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("kafka %v has no topics %v: point --kafka-brokers at the cluster `vitals run` or `vitals api` uses", e.brokers, missing)
	}
	return nil
}
