package main

import (
	"strings"
	"testing"

	"berth/bench/internal/results"
)

// TestCompare prints changes, new and gone figures, a changed unit, and
// keeps only the matching figures with -match.
func TestCompare(t *testing.T) {
	old := &results.File{Figures: []results.Figure{
		{Bench: "boot", Name: "amd64 / berth start -> first output", Value: 1630, Unit: "ms"},
		{Bench: "boot", Name: "amd64 / phase 1/9 early mounts", Value: 527.5, Unit: "ms"},
		{Bench: "start", Name: "berth / median", Value: 4, Unit: "ms"},
		{Bench: "unpack", Name: "minbase / peak RSS", Value: 30, Unit: "MiB"},
	}}
	cur := &results.File{Figures: []results.Figure{
		{Bench: "boot", Name: "amd64 / berth start -> first output", Value: 815, Unit: "ms"},
		{Bench: "boot", Name: "amd64 / phase 8/9 images", Value: 0.25, Unit: "ms"},
		{Bench: "start", Name: "berth / median", Value: 4, Unit: "ms"},
		{Bench: "unpack", Name: "minbase / peak RSS", Value: 31000, Unit: "KiB"},
	}}
	var b strings.Builder
	compare(&b, old, cur, "")
	got := b.String()
	for _, want := range []string{
		"boot / amd64 / berth start -> first output        1630 ms         815 ms    -50.0%",
		"boot / amd64 / phase 8/9 images                         -        0.25 ms       new",
		"start / berth / median                               4 ms           4 ms        0%",
		"unpack / minbase / peak RSS                        30 MiB      31000 KiB     unit?",
		"boot / amd64 / phase 1/9 early mounts            527.5 ms              -      gone",
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	b.Reset()
	compare(&b, old, cur, "EARLY")
	if got := b.String(); strings.Count(got, "\n") != 2 || !strings.Contains(got, "early mounts") {
		t.Errorf("-match early:\n%s", got)
	}
}
