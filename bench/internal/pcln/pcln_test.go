package pcln

import (
	"os"
	"reflect"
	"testing"
)

// TestOpen reads the test binary's own table: this function is found at
// its address, within the text, and its code is the text's bytes there.
func TestOpen(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	pc := uint64(reflect.ValueOf(TestOpen).Pointer())
	if pc < b.Text[0] || pc >= b.Text[1] || uint64(len(b.Code)) != b.Text[1]-b.Text[0] {
		t.Fatalf("pc %#x, text %#x-%#x, %d bytes of code", pc, b.Text[0], b.Text[1], len(b.Code))
	}
	fn := b.Table.PCToFunc(pc)
	if fn == nil || fn.Name != "berth/bench/internal/pcln.TestOpen" || fn.Entry != pc {
		t.Errorf("the function at %#x: %+v", pc, fn)
	}
	if _, err := Open(os.DevNull); err == nil {
		t.Errorf("Open(%s): no error", os.DevNull)
	}
}
