package container

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCtlFileReadWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "limit")
	if err := os.WriteFile(p, []byte("old value that is longer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(p, "64"); err != nil {
		t.Fatal(err)
	}
	if got, err := readCtlFile(p); err != nil || string(got) != "64" {
		t.Fatalf("after writeFile: %q, %v; want the old content truncated", got, err)
	}
	for _, size := range []int{0, 511, 512, 513, ctlFileMax - 1} {
		data := strings.Repeat("x", size)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := readCtlFile(p); err != nil || string(got) != data {
			t.Errorf("%d bytes: got %d bytes, %v", size, len(got), err)
		}
	}
	for _, size := range []int{ctlFileMax, ctlFileMax + 1} {
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readCtlFile(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%d bytes: err %v, want one naming %s (the limit is %d)", size, err, p, ctlFileMax)
		}
	}
	missing := filepath.Join(dir, "missing")
	if err := writeFile(missing, "1"); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("writeFile of a missing file: %v", err)
	}
	if _, err := readCtlFile(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("readCtlFile of a missing file: %v", err)
	}
	// A write the file refuses names the value and the file.
	if err := writeFile("/proc/self/oom_score_adj", "not a number"); err == nil || !strings.Contains(err.Error(), `"not a number"`) || !strings.Contains(err.Error(), "oom_score_adj") {
		t.Errorf("refused write: %v", err)
	}
}
