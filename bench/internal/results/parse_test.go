package results

import (
	"fmt"
	"reflect"
	"testing"
)

// TestParse names the numbers of lines as bench/start, bench/unpack and
// bench/boot print them.
func TestParse(t *testing.T) {
	table := fmt.Sprintf("%-20s %10s %10s %12s %10s\n", "runtime", "median", "net", "p25-p75", "vs crun") +
		fmt.Sprintf("%-20s %10s %10s %12s %10s\n", "berth (no wrapper)", "3.21ms", "-", "3.00ms-13.40ms", "0.80x")
	tests := []struct {
		name, text string
		want       []Figure
	}{
		{"heading, table, range, a column without a number",
			"start-to-exit of /bin/true, 25 runs each, alternating (median; p25-p75)\n" + table, []Figure{
				{Name: "start-to-exit of /bin/true / runs each", Value: 25},
				{Name: "start-to-exit of /bin/true / berth (no wrapper) / median", Value: 3.21, Unit: "ms"},
				{Name: "start-to-exit of /bin/true / berth (no wrapper) / p25-p75", Value: 3, Unit: "ms"},
				{Name: "start-to-exit of /bin/true / berth (no wrapper) / p25-p75 #2", Value: 13.4, Unit: "ms"},
				{Name: "start-to-exit of /bin/true / berth (no wrapper) / vs crun", Value: 0.8, Unit: "x"}}},
		{"a blank line ends the table; a note names by its words",
			table + "\n(net = median minus the wrapper's; crun net = 1.23ms)\n", []Figure{
				{Name: "berth (no wrapper) / median", Value: 3.21, Unit: "ms"},
				{Name: "berth (no wrapper) / p25-p75", Value: 3, Unit: "ms"},
				{Name: "berth (no wrapper) / p25-p75 #2", Value: 13.4, Unit: "ms"},
				{Name: "berth (no wrapper) / vs crun", Value: 0.8, Unit: "x"},
				{Name: "crun net", Value: 1.23, Unit: "ms"}}},
		{"words before, words after, units after a space, a flag is no number",
			"== minbase: 6768 entries; zstd -3 (one frame) 40.2 MB (+1.50% vs zstd -3)\n" +
				"  kernel start -> init start:  hello   3429 ms, berth   3912 ms (1.14x)\n", []Figure{
				{Name: "minbase", Value: 6768, Unit: "entries"},
				{Name: "minbase / zstd -3 (one frame)", Value: 40.2, Unit: "MB"},
				{Name: "minbase / vs zstd -3", Value: 1.5, Unit: "%"},
				{Name: "minbase / kernel start -> init start / hello", Value: 3429, Unit: "ms"},
				{Name: "minbase / kernel start -> init start / berth", Value: 3912, Unit: "ms"},
				{Name: "minbase / kernel start -> init start", Value: 1.14, Unit: "x"}}},
		{"sums, signs, repeated names",
			"steps: attach 0.10ms + detach 0.20ms = 0.30ms\n  resolve  0.1ms  -0.2ms\n  p75 eth0 x86-64 vmlinuz-6.1.0\n", []Figure{
				{Name: "steps / attach", Value: 0.1, Unit: "ms"},
				{Name: "steps / detach", Value: 0.2, Unit: "ms"},
				{Name: "steps", Value: 0.3, Unit: "ms"},
				{Name: "steps / resolve", Value: 0.1, Unit: "ms"},
				{Name: "steps / resolve #2", Value: -0.2, Unit: "ms"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Parse(tc.text); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%q):\ngot  %+v\nwant %+v", tc.text, got, tc.want)
			}
		})
	}
}
