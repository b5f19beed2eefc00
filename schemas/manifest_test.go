package schemas

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"testing"

	"github.com/vitalshq/vitals/topics"
)

func TestManifestConsistent(t *testing.T) {
	// The top-level record of each subject must never change, or readers
	// resolving by name would stop matching.
	recordNames := map[string]string{
		Subject(topics.CustomerEvents): "dev.vitals.CustomerEvent",
		Subject(topics.HealthChanges):  "dev.vitals.HealthScoreChange",
		Subject(topics.Expansion):      "dev.vitals.ExpansionReady",
		Subject(topics.Critical):       "dev.vitals.ChurnRiskDetected",
		Subject(topics.CustomerState):  "dev.vitals.state.CustomerState",
	}
	entries := readManifest(t, files)

	wantSubjects := map[string]bool{Subject(topics.CustomerEvents): true, Subject(topics.CustomerState): true}
	for _, tp := range topics.Derived() {
		wantSubjects[Subject(tp)] = true
	}
	if len(recordNames) != len(wantSubjects) {
		t.Fatalf("recordNames covers %d subjects, topics give %d", len(recordNames), len(wantSubjects))
	}

	ids := map[int]string{}
	listed := map[string]bool{}
	versions := map[string][]int{}
	for _, e := range entries {
		if e.ID <= 0 || e.ID >= 1000 {
			t.Errorf("id %d: released ids are 1..999 (1000+ are test fixtures)", e.ID)
		}
		if prev, dup := ids[e.ID]; dup {
			t.Errorf("id %d used by %s and %s", e.ID, prev, e.File)
		}
		ids[e.ID] = e.File
		if !wantSubjects[e.Subject] {
			t.Errorf("%s: subject %q is not <topic>-value of a data topic", e.File, e.Subject)
		}
		if listed[e.File] {
			t.Errorf("%s listed twice", e.File)
		}
		listed[e.File] = true
		if !strings.HasSuffix(e.File, fmt.Sprintf(".v%d.avsc", e.Version)) {
			t.Errorf("%s: file name does not carry version %d", e.File, e.Version)
		}
		versions[e.Subject] = append(versions[e.Subject], e.Version)

		text, err := fs.ReadFile(files, e.File)
		if err != nil {
			t.Errorf("id %d: %v", e.ID, err)
			continue
		}
		var rec struct {
			Type      string `json:"type"`
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		}
		if err := json.Unmarshal(text, &rec); err != nil {
			t.Errorf("%s: %v", e.File, err)
			continue
		}
		if got := rec.Namespace + "." + rec.Name; rec.Type != "record" || got != recordNames[e.Subject] {
			t.Errorf("%s: top level %s %s, want record %s", e.File, rec.Type, got, recordNames[e.Subject])
		}
	}
	for s := range wantSubjects {
		v := versions[s]
		sort.Ints(v)
		if len(v) == 0 {
			t.Errorf("subject %s has no schema", s)
		}
		for i, n := range v {
			if n != i+1 {
				t.Errorf("subject %s versions %v, want 1..%d without gaps", s, v, len(v))
				break
			}
		}
	}

	all, err := fs.Glob(files, "*.avsc")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		if !listed[f] {
			t.Errorf("%s is embedded but not in manifest.json: a released version must keep its id", f)
		}
	}
}

func TestSchemasListsManifest(t *testing.T) {
	c := newTestCodec(t)
	entries := readManifest(t, files)
	infos := c.Schemas()
	if len(infos) != len(entries) {
		t.Fatalf("Schemas() has %d entries, manifest %d", len(infos), len(entries))
	}
	byID := map[int]Info{}
	for i, in := range infos {
		if i > 0 && infos[i-1].ID >= in.ID {
			t.Errorf("Schemas() not ordered by id: %d before %d", infos[i-1].ID, in.ID)
		}
		byID[in.ID] = in
	}
	for _, e := range entries {
		in := byID[e.ID]
		text, _ := fs.ReadFile(files, e.File)
		if in.Subject != e.Subject || in.Version != e.Version || in.Schema != string(text) {
			t.Errorf("id %d: Info %s v%d, want %s v%d with the text of %s", e.ID, in.Subject, in.Version, e.Subject, e.Version, e.File)
		}
	}
	infos[0].Subject = "changed"
	if c.Schemas()[0].Subject == "changed" {
		t.Error("Schemas() returns the Codec's own slice")
	}
}

func TestNewRejectsBadManifests(t *testing.T) {
	cases := map[string][]manifestEntry{
		"duplicate id":      {{ID: 1, Subject: Subject(topics.CustomerEvents), Version: 9, File: "customer_event.v1.avsc"}},
		"duplicate version": {{ID: 500, Subject: Subject(topics.CustomerEvents), Version: 1, File: "customer_event.v1.avsc"}},
		"unknown subject":   {{ID: 500, Subject: "vitals.customer-events.v1-key", Version: 1, File: "customer_event.v1.avsc"}},
		"missing file":      {{ID: 500, Subject: Subject(topics.CustomerEvents), Version: 2, File: "customer_event.v2.avsc"}},
		"id out of range":   {{ID: 1 << 31, Subject: Subject(topics.CustomerEvents), Version: 2, File: "customer_event.v1.avsc"}},
	}
	for name, extra := range cases {
		if _, err := newCodec(files, extra); err == nil {
			t.Errorf("%s: newCodec accepted it", name)
		}
	}
}
