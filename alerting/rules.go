package alerting

import (
	"errors"
	"fmt"
	"time"

	"github.com/vitalshq/vitals/kafkametrics"
)

// Kind is how a Rule reads its metric.
type Kind int

const (
	// Above holds while a series' value exceeds the threshold.
	Above Kind = iota
	// Growth holds while a series' value is more than the threshold above
	// its smallest value within the rule's window (as seen by the
	// evaluator): it grew, and a shrinking series never holds. This is
	// `x - min_over_time(x[window]) > threshold` in PromQL.
	Growth
)

// Severities of the default rules.
const (
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Names of the default rules, shared with deploy/prometheus/alerts.yml.
const (
	AlertBreakerOpen     = "VitalsWebhookBreakerOpen"
	AlertDeadLetters     = "VitalsDeadLetterGrowing"
	AlertConsumerLag     = "VitalsConsumerLagHigh"
	AlertSpoolGrowing    = "VitalsAnalyticsSpoolGrowing"
	metricBreakerState   = "vitals_webhook_breaker_state" // dispatcher: 0 closed, 1 half-open, 2 open
	metricAnalyticsSpool = "vitals_analytics_spool_bytes" // analytics writer
)

// Match selects series by one label: its value equals Value, or differs
// from it when Not is set. A missing label has the value "".
type Match struct {
	Label string
	Value string
	Not   bool
}

func (m Match) matches(labels map[string]string) bool {
	return (labels[m.Label] == m.Value) != m.Not
}

// Rule is one condition watched on every series of a metric family; each
// series that meets Where is its own alert (keyed by the rule's name and
// the series' labels).
type Rule struct {
	Name      string        // the alert's name, e.g. AlertBreakerOpen
	Severity  string        // e.g. SeverityWarning
	Summary   string        // one line for the person paged
	Metric    string        // the metric family (gauge or counter)
	Where     []Match       // series to watch; all of them when empty
	Kind      Kind          // Above or Growth
	Threshold float64       // Above: the value; Growth: the increase over Window
	Window    time.Duration // Growth: the span the increase is measured over
	For       time.Duration // how long the condition must hold before the alert fires
}

// Validate reports whether r can be evaluated.
func (r Rule) Validate() error {
	switch {
	case r.Name == "":
		return errors.New("a rule needs a name")
	case r.Metric == "":
		return fmt.Errorf("rule %s: no metric", r.Name)
	case r.Kind != Above && r.Kind != Growth:
		return fmt.Errorf("rule %s: unknown kind %d", r.Name, r.Kind)
	case r.Kind == Growth && r.Window <= 0:
		return fmt.Errorf("rule %s: a growth rule needs a positive window", r.Name)
	case r.For < 0:
		return fmt.Errorf("rule %s: negative for %v", r.Name, r.For)
	}
	return nil
}

func (r Rule) selects(labels map[string]string) bool {
	for _, m := range r.Where {
		if !m.matches(labels) {
			return false
		}
	}
	return true
}

// Thresholds are the tunable figures of the default rules.
type Thresholds struct {
	// BreakerOpenFor is how long an endpoint's breaker stays out of the
	// closed state (open, or half-open probing) before it alerts.
	BreakerOpenFor time.Duration
	// DeadLetterWindow is the span over which any growth of a dead-letter
	// topic alerts; the alert resolves after a window without growth.
	DeadLetterWindow time.Duration
	// ConsumerLag is the lag (offsets, per group and topic) that alerts
	// once it lasted ConsumerLagFor. The retry group is not watched: its
	// lag is the retry tiers' depth, records waiting by design.
	ConsumerLag    float64
	ConsumerLagFor time.Duration
	// SpoolWindow and SpoolFor: the analytics spool alerts when it is
	// larger than SpoolWindow ago, continuously for SpoolFor (ClickHouse
	// down or not configured).
	SpoolWindow time.Duration
	SpoolFor    time.Duration
}

// DefaultThresholds returns the thresholds of deploy/prometheus/alerts.yml.
func DefaultThresholds() Thresholds {
	return Thresholds{
		BreakerOpenFor:   5 * time.Minute,
		DeadLetterWindow: 15 * time.Minute,
		ConsumerLag:      10000,
		ConsumerLagFor:   5 * time.Minute,
		SpoolWindow:      10 * time.Minute,
		SpoolFor:         5 * time.Minute,
	}
}

// Rules returns the default rules with the thresholds th.
func Rules(th Thresholds) []Rule {
	return []Rule{
		{
			Name: AlertBreakerOpen, Severity: SeverityWarning,
			Summary: "an endpoint's circuit breaker has not closed for " + th.BreakerOpenFor.String() + ": its deliveries wait in the retry tiers",
			Metric:  metricBreakerState, Kind: Above, Threshold: 0, For: th.BreakerOpenFor,
		},
		{
			Name: AlertDeadLetters, Severity: SeverityWarning,
			Summary: "deliveries or events were dead-lettered in the last " + th.DeadLetterWindow.String(),
			Metric:  kafkametrics.MetricTopicDepth, Where: []Match{{Label: "kind", Value: kafkametrics.KindDLQ}},
			Kind: Growth, Threshold: 0, Window: th.DeadLetterWindow,
		},
		{
			Name: AlertConsumerLag, Severity: SeverityCritical,
			Summary: fmt.Sprintf("a consumer group is more than %g offsets behind for %s", th.ConsumerLag, th.ConsumerLagFor),
			Metric:  kafkametrics.MetricConsumerLag, Where: []Match{{Label: "group", Value: kafkametrics.DefaultRetryGroup, Not: true}},
			Kind: Above, Threshold: th.ConsumerLag, For: th.ConsumerLagFor,
		},
		{
			Name: AlertSpoolGrowing, Severity: SeverityWarning,
			Summary: "the analytics disk spool keeps growing: ClickHouse is down, slow or not configured",
			Metric:  metricAnalyticsSpool, Kind: Growth, Threshold: 0, Window: th.SpoolWindow, For: th.SpoolFor,
		},
	}
}

// DefaultRules returns Rules(DefaultThresholds()).
func DefaultRules() []Rule { return Rules(DefaultThresholds()) }
