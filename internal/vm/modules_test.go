package vm

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestModules(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")
	set, err := Modules(repo, "amd64", []string{"i6300esb", "overlay"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(set.Dep, "kernel/drivers/watchdog/i6300esb.ko:") || !strings.Contains(set.Dep, "kernel/fs/overlayfs/overlay.ko:") {
		t.Errorf("modules.dep:\n%s", set.Dep)
	}
	if _, err := Modules(repo, "amd64", []string{"no_such_module"}); err == nil {
		t.Error("a missing module resolved")
	}
}
