package filekind

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"berth/internal/testutil"
)

// TestCheckReplace accepts a missing path and a regular file, and refuses
// everything else, naming the path and what it is.
func TestCheckReplace(t *testing.T) {
	nodes := testutil.NotRegular(t)
	at := func(name string) string { return filepath.Join(filepath.Dir(nodes["a FIFO"]), name) }
	type node struct{ path, want string }
	tests := []node{{at("missing"), ""}, {at("target"), ""}}
	for kind, path := range nodes {
		tests = append(tests, node{path, "is " + kind})
	}
	for _, tc := range tests {
		err := CheckReplace(tc.path)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.path, err)
		case tc.want == "":
		case err == nil || !errors.Is(err, ErrNotRegular) ||
			!strings.Contains(err.Error(), tc.path+" "+tc.want+", not a regular file: refusing to replace it"):
			t.Errorf("%s: %v, want %q", tc.path, err, tc.want)
		}
	}
}
