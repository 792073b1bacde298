package main

import (
	"strings"
	"testing"
)

// TestGuestSamples reads samples printed a line at a time, as the
// console shows them (stamped, prefixed, CRLF), and keeps each phase's
// largest; a sample whose JSON is cut is an error, not a zero.
func TestGuestSamples(t *testing.T) {
	sample := func(phase, restarts, n string, rss string) string {
		var b strings.Builder
		for _, piece := range []string{`{`, `"pid1":true,`, `"berth_memory":{`, `"rss_bytes":` + rss + `,`, `"rss_anon_bytes":1`, `}`, `}`} {
			b.WriteString("[   12.345678] web | MEM " + phase + " " + restarts + " " + n + " " + piece + "\r\n")
		}
		return b.String()
	}
	out := sample("idle", "0", "0", "7000") + sample("idle", "0", "1", "9000") + "berth: something else\r\n" +
		sample("after", "600", "0", "12000") + sample("after", "601", "1", "11000") + "[ 13.0] web | MEM done\r\n"
	idle, after, err := guestSamples(out)
	if err != nil || idle.RSS != 9000 || after.RSS != 12000 || after.restarts != 600 {
		t.Errorf("idle %+v, after %+v, %v", idle, after, err)
	}
	cut := strings.Replace(out, "MEM idle 0 1 }\r\n", "", 1)
	if _, _, err := guestSamples(cut); err == nil {
		t.Errorf("a sample without its closing brace: no error")
	}
}
