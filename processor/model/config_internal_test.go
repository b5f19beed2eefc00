package model

import (
	"os"
	"reflect"
	"testing"
)

// TestShippedConfigSpellsEveryDefault decodes deploy/model.yaml onto the
// zero Config: equal to DefaultConfig means the file sets every key, to
// the default value.
func TestShippedConfigSpellsEveryDefault(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/model.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := decodeConfig(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if want := DefaultConfig(); !reflect.DeepEqual(cfg, want) {
		t.Fatalf("deploy/model.yaml is not the default config:\n got %+v\nwant %+v", cfg, want)
	}
}
