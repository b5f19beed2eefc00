package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/processor/journey"
)

// TestClickHouseOutage stops ClickHouse while the pipeline delivers: the
// attempts go to the disk spool, and reach ClickHouse once it is back.
func TestClickHouseOutage(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	brokers := testenv.Kfake(t)
	db := "vitals_outage_" + randomSuffix()
	pl := startPipeline(t, "--kafka-brokers", strings.Join(brokers, ","),
		"--clickhouse-addr", ch.Addr(), "--clickhouse-database", db, "--partitions", "3",
		"--rate-limit", "standard=100000/1h/10000") // a minute of steady load
	rcv := newReceiver(t)
	pl.register(t, rcv, "*")
	token := pl.token(t, "events:write")
	start := time.Now().UTC().Add(-61 * 24 * time.Hour).Truncate(24 * time.Hour)

	count := func(ids []string) (uint64, error) {
		if len(ids) == 0 {
			return 0, nil
		}
		// Event ids are UUIDs from the receiver; quote them as literals
		// (18.16 binds no array to IN).
		quoted := make([]string, len(ids))
		for i, id := range ids {
			quoted[i] = "'" + strings.ReplaceAll(id, "'", "") + "'"
		}
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr()}, DialTimeout: 2 * time.Second})
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		var n uint64
		err = conn.QueryRow(context.Background(), fmt.Sprintf(
			"SELECT uniqExact(attempt_id) FROM %s.webhook_attempts WHERE event_id IN (%s)", db, strings.Join(quoted, ","))).Scan(&n)
		return n, err
	}

	// Before the outage: the table exists and rows arrive.
	pre := "cust_pre_" + randomSuffix()
	pl.sendJourney(t, token, journey.Churning(pre, start))
	eventually(t, 60*time.Second, "pre-outage attempts in ClickHouse", func() bool {
		n, err := count(ids(rcv.find(event.ChurnRiskDetected, pre)))
		return err == nil && n > 0
	})

	ch.Stop()
	stopped := time.Now()
	during := "cust_during_" + randomSuffix()
	pl.sendJourney(t, token, journey.Churning(during, start))
	eventually(t, 60*time.Second, "deliveries during the outage", func() bool {
		return len(rcv.find(event.ChurnRiskDetected, during)) >= 2
	})
	spool := filepath.Join(pl.dataDir, "spool")
	// The spool is encrypted (AES-256-GCM, package keyring): the rows are
	// there, but their customer id is not readable on disk.
	eventually(t, 30*time.Second, "sealed attempts spooled to disk", func() bool {
		entries, _ := os.ReadDir(spool)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(spool, e.Name()))
			if err != nil {
				continue
			}
			if strings.Contains(string(b), during) {
				t.Fatalf("spool segment %s holds customer id %s in clear", e.Name(), during)
			}
			if strings.HasSuffix(e.Name(), ".sealed") && len(b) > 0 {
				return true
			}
		}
		return false
	})

	// Load goes on for the rest of a 60-second outage: one churning
	// customer every few seconds.
	customers := []string{during}
	pace := time.NewTicker(2 * time.Second) // load pacing, not synchronisation
	defer pace.Stop()
	for time.Since(stopped) < 60*time.Second {
		<-pace.C
		c := "cust_during_" + randomSuffix()
		pl.sendJourney(t, token, journey.Churning(c, start))
		customers = append(customers, c)
		eventually(t, 30*time.Second, "deliveries of "+c, func() bool { return len(rcv.find(event.ChurnRiskDetected, c)) >= 1 })
	}
	ch.Start()
	var want []string
	for _, c := range customers {
		for _, typ := range event.DerivedTypes() {
			want = append(want, ids(rcv.find(typ, c))...)
		}
	}
	eventually(t, 90*time.Second, "every outage attempt in ClickHouse once it is back", func() bool {
		n, err := count(want)
		return err == nil && n == uint64(len(want))
	})
	eventually(t, 30*time.Second, "the spool drained to empty", func() bool {
		entries, err := os.ReadDir(spool)
		if err != nil {
			return false
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "webhook_attempts-") {
				return false
			}
		}
		return true
	})
	t.Logf("%d customers' deliveries during a %s outage, all in ClickHouse; spool empty", len(customers), 60*time.Second)
}

func ids(ds []delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}
