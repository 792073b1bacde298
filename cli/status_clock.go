package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"berth/boot"
)

// printClock writes berth status's clock lines: the time and its source,
// the SNTP sync, the RTC.
func printClock(w io.Writer, c *boot.ClockInfo) {
	if c == nil {
		return
	}
	fmt.Fprintf(w, "clock\t%s (source: %s)\n", utc(c.Time), c.Source)
	var sync string
	switch {
	case len(c.Servers) == 0:
		sync = "no [network] ntp servers"
	case c.LastSync != nil:
		sync = fmt.Sprintf("last %s, offset %+.6fs", utc(*c.LastSync), *c.LastOffsetSec)
		if c.LastAdjust != "" {
			sync += " (" + c.LastAdjust + ")"
		}
	default:
		sync = "none yet"
	}
	if c.NextSync != nil {
		sync += ", next " + utc(*c.NextSync)
	}
	if len(c.Servers) > 0 {
		sync += "; servers " + strings.Join(c.Servers, " ")
	}
	if c.LastError != "" {
		sync += "; last error: " + c.LastError
	}
	fmt.Fprintf(w, "sntp\t%s\n", sync)
	rtc := c.RTC
	switch {
	case c.RTCTime != nil:
		rtc += " " + utc(*c.RTCTime)
	case c.RTCError != "":
		rtc += " (" + c.RTCError + ")"
	}
	fmt.Fprintf(w, "rtc\t%s\n", rtc)
}

// utc formats a time as berth status shows it: UTC, to the millisecond.
func utc(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }
