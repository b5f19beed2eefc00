package ratelimit

import (
	"testing"
	"time"
)

func TestParseLimits(t *testing.T) {
	got, err := ParseLimits([]string{"standard=5000/1h/250", " bulk = 10/24h"})
	if err != nil {
		t.Fatal(err)
	}
	if got[ClassStandard] != (Limit{Quota: 5000, Window: time.Hour, Burst: 250}) || got[ClassBulk] != (Limit{Quota: 10, Window: 24 * time.Hour}) || len(got) != 2 {
		t.Fatalf("parsed %+v", got)
	}
	for _, bad := range []string{"standard", "nope=1/1h", "standard=x/1h", "standard=10/forever", "standard=10/1h/x", "standard=0/1h", "standard=1/2/3/4"} {
		if _, err := ParseLimits([]string{bad}); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
