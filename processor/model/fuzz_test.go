package model_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor/journey"
	"github.com/vitalshq/vitals/processor/model"
	"github.com/vitalshq/vitals/schemas"
)

// fuzzStart is when the journeys of the fuzz targets begin.
var fuzzStart = time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)

// FuzzParseConfig feeds arbitrary YAML to ParseConfig (LoadConfig's
// parser). It must never panic; every refusal wraps ErrInvalidConfig; an
// accepted config passes Validate, dumps to YAML that parses to the same
// config, and runs: the scripted journeys go through a Model built from it
// without a panic, with scores 0–100 in a known band, every derived event
// encodes as Avro and decodes to itself (as the dispatcher reads it), and
// every state does.
func FuzzParseConfig(f *testing.F) {
	shipped, err := os.ReadFile("../../deploy/model.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(shipped),
		"",
		"weights: {usage: 0.35, engagement: 0.10}\nchurn:\n  actions:\n    high: [call_the_ceo]\n  indicator_weights: {low_engagement: 2}\n",
		"bands: {green_min: 100, yellow_min: 0}\nneutral_component: 0\nhealth_change: {min_delta: 100}\n",
		"usage: {trend_window_days: 7, min_trend_days: 7, utilisation_days: 14, full_utilisation: 2, decline_ratio: 0.999, growth_ratio: 1.0000001}\n",
		"engagement: {window_days: 90, engaged_day_share: 1e-300, exec_login_share: 0}\nadoption: {window_days: 1, feature_catalogue: [a, b]}\n",
		"churn: {risk_thresholds: {low: 1, medium: 2, high: 3, critical: 2147483647}, renewal_window_days: 3660, low_engagement_days: 366}\n",
		"expansion: {min_score: 0, probability_base: 1, probability_per_factor: 1, probability_max: 1, upsell_days: 1}\n",
		"input: {late_grace: 0s, dedupe_window: 2562047h, dedupe_max_ids: 1, recent_derived: 0}\n",
		"support: {resolved_keep: -1ns}\n", "weights: {usage: .nan}\n", "weights: [1, 2]\n", "nope: 1\n",
		"weights: &w {usage: 1}\nbands: *w\n", "---\n---\n", "bands: {green_min: 9223372036854775808}\n",
	} {
		f.Add([]byte(seed))
	}
	codec, err := schemas.New()
	if err != nil {
		f.Fatal(err)
	}
	sc, err := model.NewStateCodec(codec)
	if err != nil {
		f.Fatal(err)
	}
	var journeys [][]event.CustomerEvent
	for _, name := range journey.Names() {
		journeys = append(journeys, journey.ByName(name)("cust_"+name, fuzzStart))
	}

	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := model.ParseConfig(raw)
		if err != nil {
			if !errors.Is(err, model.ErrInvalidConfig) {
				t.Fatalf("refusal not wrapping ErrInvalidConfig: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted a config that does not validate: %v", err)
		}
		dump, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("accepted config does not dump: %v", err)
		}
		again, err := model.ParseConfig(dump)
		if err != nil {
			t.Fatalf("dump of an accepted config is refused: %v\n%s", err, dump)
		}
		if redump, _ := yaml.Marshal(again); !bytes.Equal(redump, dump) {
			t.Fatalf("dump does not read back the same:\n%s\nthen\n%s", dump, redump)
		}

		m, err := model.NewModel(cfg)
		if err != nil {
			t.Fatalf("NewModel refuses an accepted config: %v", err)
		}
		for _, evs := range journeys {
			st := &model.State{}
			for i, ev := range evs {
				res := m.Apply(st, ev)
				if st.Score < 0 || st.Score > 100 || !slices.Contains([]string{model.BandGreen, model.BandYellow, model.BandRed}, st.Band) {
					t.Fatalf("%s event %d: score %d band %q", ev.CustomerID, i, st.Score, st.Band)
				}
				for _, d := range res.Derived {
					b, err := codec.EncodeDerived(d)
					if err != nil {
						t.Fatalf("%s event %d: derived event does not encode: %v (%#v)", ev.CustomerID, i, err, d)
					}
					if back, err := codec.DecodeDerived(b); err != nil || !reflect.DeepEqual(back, d) {
						t.Fatalf("%s event %d: derived event does not reach the dispatcher intact: %v\n got %#v\nwant %#v", ev.CustomerID, i, err, back, d)
					}
				}
			}
			b, err := sc.EncodeState(st)
			if err != nil {
				t.Fatalf("%s: state does not encode: %v", evs[0].CustomerID, err)
			}
			back, err := sc.DecodeState(b)
			if err != nil || !reflect.DeepEqual(back, st) {
				t.Fatalf("%s: state does not round-trip: %v", evs[0].CustomerID, err)
			}
		}
	})
}

// FuzzDecodeState feeds arbitrary bytes to the changelog restore path.
// DecodeState must never panic; what it decodes encodes again to bytes
// that decode to the same state; and the model can go on from it: a
// restored state, however odd, must not crash the processor when the next
// event arrives, nor give a score outside 0–100.
func FuzzDecodeState(f *testing.F) {
	codec, err := schemas.New()
	if err != nil {
		f.Fatal(err)
	}
	sc, err := model.NewStateCodec(codec)
	if err != nil {
		f.Fatal(err)
	}
	m, err := model.NewModel(model.DefaultConfig())
	if err != nil {
		f.Fatal(err)
	}
	var next []event.CustomerEvent // one event of each type, after every journey
	for _, name := range journey.Names() {
		evs := journey.ByName(name)("cust_"+name, fuzzStart)
		st := &model.State{}
		for i, ev := range evs {
			m.Apply(st, ev)
			if i%25 == 0 || i == len(evs)-1 {
				b, err := sc.EncodeState(st)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(b)
			}
		}
	}
	b, err := sc.EncodeState(&model.State{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:5])
	f.Add([]byte{0, 0, 0, 0, 1, 0})
	f.Add([]byte{0, 0, 0, 0, 9})
	late := fuzzStart.Add(90 * 24 * time.Hour)
	for i, p := range []event.Payload{
		event.UsageReported{ActiveUsers: 10, SeatsPurchased: 20, FeaturesUsed: []string{"reports"}},
		event.LoginRecorded{UserID: "u", Role: "executive"},
		event.SupportTicket{TicketID: "t", Status: "escalated", Priority: "urgent"},
		event.PaymentEvent{InvoiceID: "i", Status: "failed", AmountCents: 100},
		event.NpsResponse{Score: 2},
		event.ContractUpdated{Plan: "p", Seats: 20, ArrCents: 100, RenewalDate: "2026-01-31", PlanFeatures: []string{"reports", "api"}},
		event.SponsorChanged{ChampionLeft: true},
	} {
		next = append(next, event.CustomerEvent{EventID: fmt.Sprintf("next-%d", i), CustomerID: "cust_x",
			OccurredAt: late.Add(time.Duration(i) * time.Hour), Source: journey.Source, Data: p})
	}

	f.Fuzz(func(t *testing.T, msg []byte) {
		st, err := sc.DecodeState(msg)
		if err != nil {
			return
		}
		b, err := sc.EncodeState(st)
		if err != nil {
			t.Fatalf("decoded state does not encode: %v (%+v)", err, st)
		}
		back, err := sc.DecodeState(b)
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if again, err := sc.EncodeState(back); err != nil || !bytes.Equal(again, b) {
			t.Fatalf("state does not round-trip: %v", err)
		}
		for _, ev := range next {
			res := m.Apply(st, ev)
			if res.Skipped == "" && (st.Score < 0 || st.Score > 100) {
				t.Fatalf("restored state %+v scores %d after %s", back, st.Score, ev.Type())
			}
		}
	})
}
