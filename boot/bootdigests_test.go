package boot

import (
	"strings"
	"testing"
)

// TestBootDigests: what FormatBootDigests writes reads back the same;
// a line berth would not trust is refused, naming its line.
func TestBootDigests(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	ds := []BootDigest{{"/images/a.tar.zst", 123, d}, {"/images/with space.tar", 0, d}}
	data, err := FormatBootDigests(ds)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseBootDigests(data)
	if err != nil || len(got) != 2 || got[0] != ds[0] || got[1] != ds[1] {
		t.Errorf("round trip: %+v, %v", got, err)
	}
	if got, err := ParseBootDigests(nil); err != nil || len(got) != 0 {
		t.Errorf("empty: %+v, %v", got, err)
	}
	for _, bad := range []struct{ name, text, err string }{
		{"relative path", d + " 1 images/a\n", "line 1: image path"},
		{"unclean path", d + " 1 /images/../etc/a\n", "line 1: image path"},
		{"negative size", d + " 1 /a\n" + d + " -1 /b\n", "line 2: image /b: size -1"},
		{"bad digest", "sha256:AB 1 /a\n", "line 1: image /a: digest"},
		{"md5", "md5:" + strings.Repeat("a", 32) + " 1 /a\n", "line 1: image /a: digest"},
		{"no size", d + " /a\n", "line 1: want"},
		{"empty line", d + " 1 /a\n\n", "line 2: want"},
		{"huge size", d + " 99999999999999999999 /a\n", "line 1: want"},
	} {
		_, err := ParseBootDigests([]byte(bad.text))
		if err == nil || !strings.Contains(err.Error(), bad.err) {
			t.Errorf("%s: %v, want an error with %q", bad.name, err, bad.err)
		}
	}
	if _, err := FormatBootDigests([]BootDigest{{"/a\nb", 1, d}}); err == nil {
		t.Error("a path of two lines was written")
	}
}
