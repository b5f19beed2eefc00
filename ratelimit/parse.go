package ratelimit

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ParseLimits reads class limits written "class=quota/window[/burst]"
// (e.g. "standard=5000/1h/250"), for configuration; the result replaces
// the defaults of the classes it names.
func ParseLimits(entries []string) (map[Class]Limit, error) {
	out := map[Class]Limit{}
	for _, e := range entries {
		name, spec, ok := strings.Cut(strings.TrimSpace(e), "=")
		c := Class(strings.TrimSpace(name))
		if !ok || !slices.Contains(Classes(), c) {
			return nil, fmt.Errorf("%q: want class=quota/window[/burst] with class one of %v", e, Classes())
		}
		parts := strings.Split(spec, "/")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		if len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("%q: want quota/window[/burst], e.g. 5000/1h/250", e)
		}
		quota, err := strconv.Atoi(parts[0])
		if err != nil {
			return nil, fmt.Errorf("%q: quota %q is not a number", e, parts[0])
		}
		window, err := time.ParseDuration(parts[1])
		if err != nil {
			return nil, fmt.Errorf("%q: window %q is not a duration such as 1h", e, parts[1])
		}
		l := Limit{Quota: quota, Window: window}
		if len(parts) == 3 {
			if l.Burst, err = strconv.Atoi(parts[2]); err != nil {
				return nil, fmt.Errorf("%q: burst %q is not a number", e, parts[2])
			}
		}
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("%q: %w", e, err)
		}
		out[c] = l
	}
	return out, nil
}
