package appliance_test

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"berth/appliance"
)

// TestFilesCleanPaths: a --file path is taken as written, so it must be
// clean: /etc/../data/x passed the data partition's check as /etc/... and
// landed under /data, which the partition hides.
func TestFilesCleanPaths(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "berth.toml")
	write(t, config, "[storage]\ndevice = \"LABEL=data\"\n")
	f := filepath.Join(dir, "f.txt")
	write(t, f, "secret")
	for at, want := range map[string]string{
		"/etc/../data/x": "file /etc/../data/x: want a clean path (/data/x)",
		"/etc//k.pub":    "file /etc//k.pub: want a clean path (/etc/k.pub)",
		"/data/x":        "file /data/x: under /data, the data partition",
		"/etc/x":         "",
	} {
		_, err := appliance.Build(appliance.Spec{Config: config, Arch: runtime.GOARCH, Berth: testBerth(t), Files: map[string]string{at: f}})
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("--file %s: %v, want %q", at, err, want)
		}
	}
}
