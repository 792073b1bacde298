package main

import (
	"reflect"
	"testing"
)

// A console as berth writes it, QEMU's escape codes before a stamp
// included.
const sampleConsole = "\x1b[2J[    3.100000] berth: berth dev starting as PID 1 (amd64, kernel 6.1.0-57-amd64)\n" +
	"[    3.110000] berth: phase 1/9 early mounts: 10.00 ms\n" +
	"[    3.300000] berth: phase 6/9 images: 0.20 ms\n" +
	"[    3.400000] berth: phase 9/9 containers: 5.00 ms\n" +
	"[    3.500000] berth: image /images/demo.tar.zst for web: sha256:a9bfe7904b27 unpacked into the cache\n" +
	"[    3.600000] berth: image /images/demo.tar.zst for sensor: sha256:a9bfe7904b27 already unpacked\n" +
	"[    3.700000] berth: container web started: pid 86, memory 32 MiB, pids 16\n" +
	"[    3.800000] web | I am the web server | hostname: web\n" +
	"[    3.850000] berth: container sensor started: pid 91, memory 16 MiB, pids 8\n" +
	"[    3.900000] berth: images: all ready 600.0 ms after the images phase began\n"

// TestParse reads berth's start, its first container output and the
// milestones between, each once.
func TestParse(t *testing.T) {
	c := parse(sampleConsole)
	if c.initStart != 3.1 || c.firstOutput != 3.8 {
		t.Errorf("init start %v, first output %v", c.initStart, c.firstOutput)
	}
	want := map[string]float64{"phase 1/9 early mounts": 10, "phase 6/9 images": 200, "phase 9/9 containers": 300,
		firstImage: 400, firstStart: 600, firstOutput: 700, allImages: 800}
	for name, ms := range c.at {
		c.at[name] = float64(int(ms + 0.5)) // stamps are decimal: round off the float error
	}
	if !reflect.DeepEqual(c.at, want) {
		t.Errorf("milestones %v, want %v", c.at, want)
	}
}

// TestParseFloor reads the floor's start, its steps and its container's
// first output; its "power off" is no step.
func TestParseFloor(t *testing.T) {
	out := "[    2.500000] floor: started\r\n" +
		"[    2.550000] floor: step overlay module\r\n" +
		"[    2.650000] floor: step unpack\r\n" +
		"[    2.700000] floor: step started\r\n" +
		"[    2.750000] web | I am the web server; hostname: (none)\r\n" +
		"[    2.800000] floor: power off\r\n"
	c := parse(out)
	if c.initStart != 2.5 || c.firstOutput != 2.75 {
		t.Errorf("init start %v, first output %v", c.initStart, c.firstOutput)
	}
	want := map[string]float64{"floor: overlay module": 50, "floor: unpack": 150, "floor: started": 200, firstOutput: 250}
	for name, ms := range c.at {
		c.at[name] = float64(int(ms + 0.5))
	}
	if !reflect.DeepEqual(c.at, want) {
		t.Errorf("milestones %v, want %v", c.at, want)
	}
}

// TestBreakdown orders milestones by their medians and leaves out one
// that not every boot passed.
func TestBreakdown(t *testing.T) {
	boots := []console{
		{at: map[string]float64{"a": 10, "b": 30, "c": 50, "only here": 1}},
		{at: map[string]float64{"a": 20, "b": 10, "c": 60}},
		{at: map[string]float64{"a": 30, "b": 20, "c": 40}},
	}
	want := []milestone{{"a", 20}, {"b", 20}, {"c", 50}} // a tie goes by name
	if got := breakdown(boots); !reflect.DeepEqual(got, want) {
		t.Errorf("breakdown %v, want %v", got, want)
	}
}

// TestRSSFrom joins the admin's JSON from its console lines; a console
// without it is an error, not an RSS of 0.
func TestRSSFrom(t *testing.T) {
	out := "[ 1.0] admin | STATUS {\r\n[ 1.1] berth: other\r\n[ 1.2] admin | STATUS \"berth_rss_bytes\":8192,\r\n[ 1.3] admin | STATUS \"berth_rss_anon_bytes\":4096}\r\n"
	if rss, err := rssFrom(out); rss != 8192 || err != nil {
		t.Errorf("rssFrom: %d, %v; want 8192", rss, err)
	}
	if rss, err := rssFrom("[ 1.0] admin | STATUS {\"berth_rss_bytes\":81"); err == nil {
		t.Errorf("a cut line: %d, no error", rss)
	}
}

func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\r\nb\r\nc\r\n", 2, "    | b\n    | c"},
		{"a\nb", 5, "    | a\n    | b"},
		{"", 3, "    | "},
	} {
		if got := lastLines(tc.in, tc.n); got != tc.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
