package main

import (
	"github.com/vitalshq/vitals/alerting"
	"github.com/vitalshq/vitals/kafkametrics"
)

// startMonitoring exports consumer lag, retry-tier and DLQ depth, and
// turns alert conditions into operational events (alert.firing,
// alert.resolved) deliverable as webhooks. It runs with the dispatcher:
// one instance per cluster is enough (several send Kafka-level alerts
// more than once, with different ids).
func (e *env) startMonitoring() error {
	col, err := kafkametrics.New(e.clientOpts("kafka-metrics"), kafkametrics.WithRetrySchedule(e.cfg.RetrySchedule...),
		kafkametrics.WithLogger(e.log.With("component", "kafka-metrics")))
	if err != nil {
		return err
	}
	if err := e.reg.Register(col); err != nil {
		return err
	}
	e.g.Go("kafka-metrics", col.Run)
	ev, err := alerting.New(e.clientOpts("alerting"), e.reg, alerting.WithRegisterer(e.reg),
		alerting.WithLogger(e.log.With("component", "alerting")))
	if err != nil {
		return err
	}
	e.g.Go("alerting", ev.Run)
	return nil
}
