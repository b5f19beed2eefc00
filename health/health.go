// Package health is the customer health read model: a view (goka's term)
// of the processor's changelog topic, vitals.customer-state.v1, kept in
// every API instance. It answers GET /v1/customers/{id}/health without a
// processor in the process and without asking one.
//
// It only reads: the processor is the changelog's one writer. It keeps a
// small projection of each customer's state, not the state itself.
package health

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/ktable"
	"github.com/vitalshq/vitals/processor/model"
	"github.com/vitalshq/vitals/topics"
)

// View is what the API shows of one customer's health.
type View struct {
	CustomerID       string                 `json:"customer_id"`
	Score            int                    `json:"score"`
	Band             string                 `json:"band"`
	Components       model.Components       `json:"components"`
	RiskLevel        string                 `json:"risk_level"`
	ActiveIndicators []string               `json:"active_indicators"`
	LastEventAt      time.Time              `json:"last_event_at"`
	RecentEvents     []model.DerivedSummary `json:"recent_derived_events"`
}

// StateDecoder decodes changelog values (model.StateCodec).
type StateDecoder interface {
	DecodeState([]byte) (*model.State, error)
}

// Reader is the read model. Run it, wait for Ready, then Get.
type Reader struct {
	table   *ktable.Table[View]
	summary *summary // band counts and recent churn alerts
}

// NewReader returns a reader of the changelog over a client built from
// clientOpts.
func NewReader(clientOpts []kgo.Opt, states StateDecoder, logger *slog.Logger) (*Reader, error) {
	sum := newSummary(DefaultRecentChurn)
	t, err := ktable.New(topics.CustomerState, clientOpts,
		ktable.WithCodec[View](projection{states}), ktable.WithLogger[View](logger),
		ktable.OnApply(sum.apply))
	if err != nil {
		return nil, err
	}
	return &Reader{table: t, summary: sum}, nil
}

// Run follows the changelog until ctx is done.
func (r *Reader) Run(ctx context.Context) error { return r.table.Run(ctx) }

// WaitReady blocks until the reader caught up with the changelog.
func (r *Reader) WaitReady(ctx context.Context) error { return r.table.WaitReady(ctx) }

// Get returns the health of a customer.
func (r *Reader) Get(customerID string) (View, bool) { return r.table.Get(customerID) }

// Project returns the view of a state.
func Project(st *model.State) View {
	v := View{CustomerID: st.CustomerID, Score: st.Score, Band: st.Band, Components: st.Components,
		RiskLevel: st.RiskLevel, ActiveIndicators: st.Indicators, LastEventAt: st.Now,
		RecentEvents: st.RecentDerived}
	if v.RiskLevel == "" {
		v.RiskLevel = "none"
	}
	if v.ActiveIndicators == nil {
		v.ActiveIndicators = []string{}
	}
	if v.RecentEvents == nil {
		v.RecentEvents = []model.DerivedSummary{}
	}
	return v
}

// projection decodes a changelog value straight into its View.
type projection struct{ states StateDecoder }

var errReadOnly = errors.New("health: the read model never writes the changelog")

func (projection) Marshal(View) ([]byte, error) { return nil, errReadOnly }

func (p projection) Unmarshal(b []byte) (View, error) {
	st, err := p.states.DecodeState(b)
	if err != nil {
		return View{}, err
	}
	return Project(st), nil
}
