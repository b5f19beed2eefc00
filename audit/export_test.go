package audit

import "time"

// SetClock makes c read the time from now: tests pin record times.
func SetClock(c *Chain, now func() time.Time) { c.now = now }
