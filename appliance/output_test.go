package appliance_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/appliance"
	"berth/internal/testutil"
)

// TestWriteOutputNotRegular writes an initramfs over things that are not
// regular files: each is refused and left as it was (-o /dev/null once
// replaced the host's /dev/null). A regular file is replaced.
func TestWriteOutputNotRegular(t *testing.T) {
	nodes := testutil.NotRegular(t)
	dir := filepath.Dir(nodes["a FIFO"])
	at := func(name string) string { return filepath.Join(dir, name) }
	type node struct{ path, kind string }
	tests := []node{{at("target"), ""}, {at("new"), ""}}
	for kind, path := range nodes {
		tests = append(tests, node{path, kind})
	}
	for _, tc := range tests {
		before, _ := os.Lstat(tc.path)
		err := appliance.NewInitramfs().Write(tc.path)
		after, lerr := os.Lstat(tc.path)
		switch {
		case tc.kind == "" && (err != nil || lerr != nil || !after.Mode().IsRegular() || after.Size() < 4):
			t.Errorf("write %s: %v, then %v (%v)", tc.path, err, after, lerr)
		case tc.kind == "":
		case err == nil || !strings.Contains(err.Error(), tc.path+" is "+tc.kind+", not a regular file: refusing to replace it"):
			t.Errorf("write %s: %v, want it refused as %s", tc.path, err, tc.kind)
		case lerr != nil || after.Mode().Type() != before.Mode().Type():
			t.Errorf("write %s: it is now %v (%v), was %v", tc.path, after.Mode(), lerr, before.Mode())
		}
	}
	if target, err := os.Readlink(at("link")); target != "target" {
		t.Errorf("the symlink now points to %q (%v)", target, err)
	}
}
