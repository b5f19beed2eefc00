package analytics

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestQueryWindowAndStep(t *testing.T) {
	q := Query{Since: t0.Add(30 * time.Second), Until: t0.Add(time.Hour + 500*time.Millisecond)}
	since, until, err := q.window(time.Second)
	if err != nil || since != t0.Unix()+30 || until != t0.Unix()+3601 {
		t.Errorf("window in seconds = %d, %d, %v; want since %d, until rounded up to %d", since, until, err, t0.Unix()+30, t0.Unix()+3601)
	}
	since, until, err = q.window(time.Minute)
	if err != nil || since != t0.Unix() || until != t0.Unix()+3660 {
		t.Errorf("window in minutes = %d, %d, %v; want whole minutes %d, %d", since, until, err, t0.Unix(), t0.Unix()+3660)
	}
	for _, c := range []struct {
		q       Query
		minimum time.Duration
		want    int64
	}{
		{Query{Since: t0, Until: t0.Add(time.Hour)}, time.Second, 60},
		{Query{Since: t0, Until: t0.Add(time.Hour)}, time.Minute, 60},
		{Query{Since: t0, Until: t0.Add(10 * time.Minute)}, time.Minute, 60}, // 10 s buckets raised to a minute
		{Query{Since: t0, Until: t0.Add(10 * time.Minute)}, time.Second, 10},
		{Query{Since: t0, Until: t0.Add(90 * time.Minute)}, time.Minute, 120}, // 90 s rounded up to whole minutes
		{Query{Since: t0, Until: t0.Add(time.Hour), Step: 5 * time.Minute}, time.Minute, 300},
	} {
		if got := c.q.step(c.minimum); got != c.want {
			t.Errorf("step of %v..%v (Step %v, min %v) = %ds, want %ds", c.q.Since, c.q.Until, c.q.Step, c.minimum, got, c.want)
		}
	}
	if (Query{}).limit() != DefaultLimit || (Query{Limit: 1 << 30}).limit() != MaxLimit || (Query{}).seriesLimit() != MaxLimit {
		t.Error("limits not defaulted and capped")
	}
}

func TestExcerptIsBoundedValidUTF8(t *testing.T) {
	if got := Excerpt([]byte("ok")); got != "ok" {
		t.Errorf("Excerpt(ok) = %q", got)
	}
	if got := Excerpt([]byte{'a', 0xff, 'b'}); got != "a\uFFFDb" {
		t.Errorf("Excerpt of invalid UTF-8 = %q, want the byte replaced", got)
	}
	// "é" is two bytes: a cut at MaxResponseExcerpt would split one.
	long := "x" + strings.Repeat("é", MaxResponseExcerpt)
	got := Excerpt([]byte(long))
	if len(got) > MaxResponseExcerpt || !utf8.ValidString(got) || len(got) < MaxResponseExcerpt-1 || !strings.HasPrefix(long, got) {
		t.Errorf("Excerpt of a long body: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}
