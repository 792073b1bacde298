package boot

import (
	"runtime/debug"
	"testing"
)

// TestSelfMemory: berth status's berth_memory has the kernel's counts and
// the runtime's, and the collector's settings as berth set them.
func TestSelfMemory(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	defer gcPercent.Store(gcPercent.Load())
	gcPercent.Store(0)
	m := selfMemory()
	if m.RSS <= 0 || m.Anon <= 0 || m.PSS <= 0 || m.HWM < m.RSS {
		t.Errorf("kernel's counts missing or inconsistent: %+v", m)
	}
	if m.GoHeapObjects <= 0 || m.GoHeapGoal <= 0 || m.GoStacks <= 0 || m.GoHeld < m.GoHeapObjects || m.Goroutines < 1 {
		t.Errorf("runtime's figures missing or inconsistent: %+v", m)
	}
	if m.GCPercent != 100 {
		t.Errorf("before berth sets the collector: gc_percent %d, want Go's default 100", m.GCPercent)
	}
	bootGC()
	if m = selfMemory(); m.GCPercent != bootGCPercent || m.Limit > bootMemoryLimit {
		t.Errorf("while booting: gc_percent %d, limit %d; want %d and at most %d", m.GCPercent, m.Limit, bootGCPercent, bootMemoryLimit)
	}
	steadyGC()
	if m = selfMemory(); m.GCPercent != steadyGCPercent || m.Limit <= bootMemoryLimit {
		t.Errorf("booted: gc_percent %d, limit %d; want %d and no limit", m.GCPercent, m.Limit, steadyGCPercent)
	}
}
