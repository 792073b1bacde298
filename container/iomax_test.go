package container

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// ioMaxRE is the regular expression validIOMax replaced; the test checks
// they accept and refuse the same lines.
var ioMaxRE = regexp.MustCompile(`^\d+:\d+( (rbps|wbps|riops|wiops)=(\d+|max))+$`)

// TestValidIOMax checks the io.max lines limits.io_max accepts and
// refuses, and that validIOMax agrees with the regular expression it
// replaced on those and on 50,000 random lines made of io.max's pieces.
func TestValidIOMax(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{"8:0 rbps=1048576", true},
		{"8:16 rbps=1 wbps=max riops=10 wiops=20", true},
		{"254:0 wiops=max wiops=1", true},
		{"8:0", false},
		{"8:0 ", false},
		{"8:0  rbps=1", false},
		{"8:0 rbps=1 ", false},
		{"8: rbps=1", false},
		{":0 rbps=1", false},
		{"8:0:1 rbps=1", false},
		{"a:0 rbps=1", false},
		{"8:0 rbps=", false},
		{"8:0 rbps=-1", false},
		{"8:0 rbps=1k", false},
		{"8:0 rbps=maximum", false},
		{"8:0 xbps=1", false},
		{"8:0 rbps", false},
		{"8:0 rbps=1\n", false},
		{"8:0\trbps=1", false},
		{"８:0 rbps=1", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := validIOMax(tt.line); got != tt.want {
			t.Errorf("validIOMax(%q) = %v, want %v", tt.line, got, tt.want)
		}
		if re := ioMaxRE.MatchString(tt.line); re != tt.want {
			t.Errorf("the regular expression says %v for %q", re, tt.line)
		}
	}
	// Valid lines built from io.max's pieces, then changed in 0 to 2
	// places: both answers come up often.
	pieces := []string{"8", "0", "12", ":", " ", "=", "rbps", "wbps", "riops", "wiops", "max", "ma", "x", "\n", "-", ""}
	r := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	for range 50000 {
		toks := []string{pieces[r.IntN(3)], ":", pieces[r.IntN(3)]}
		for range 1 + r.IntN(3) {
			toks = append(toks, " ", pieces[6+r.IntN(4)], "=", []string{"1", "max", "42"}[r.IntN(3)])
		}
		for range r.IntN(3) {
			toks[r.IntN(len(toks))] = pieces[r.IntN(len(pieces))]
		}
		line := strings.Join(toks, "")
		got, want := validIOMax(line), ioMaxRE.MatchString(line)
		if got != want {
			t.Fatalf("validIOMax(%q) = %v, the regular expression %v", line, got, want)
		}
		if got {
			accepted++
		}
	}
	t.Logf("%d of 50000 random lines accepted", accepted)
}
