package container

import "testing"

// TestParseSizeForms: a size's unit in every form the README names, in
// either case, with or without i and B, always a power of 1024; what is
// not a number and a unit is refused.
func TestParseSizeForms(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "100": 100, "100B": 100, "100b": 100, "1.5K": 1536,
		"32m": 32 << 20, "32M": 32 << 20, "32MB": 32 << 20, "32mb": 32 << 20, "32Mi": 32 << 20,
		"32MiB": 32 << 20, "32mib": 32 << 20, "32KiB": 32 << 10, "2g": 2 << 30, "1T": 1 << 40, " 8K ": 8 << 10,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "i", "32i", "32ib", "32iB", "32X", "32 M", "M", "1e3", "0x10", "-1", "32MM", "0.5", "32bB", "32KbB", "32BB"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}
