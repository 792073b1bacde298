package safe

import (
	"errors"
	"strings"
	"testing"
)

// TestCall checks that Call passes an error through and turns a panic,
// even panic(nil), into a *PanicError that names it and its stack.
func TestCall(t *testing.T) {
	want := errors.New("plain")
	if err := Call("op", func() error { return want }); err != want {
		t.Errorf("plain error: %v", err)
	}
	if err := Call("op", func() error { return nil }); err != nil {
		t.Errorf("no error: %v", err)
	}
	err := Call("op", func() error { panic("boom") })
	var pe *PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" || !strings.Contains(err.Error(), "op: internal error (panic: boom)") ||
		!strings.Contains(err.Error(), "safe.TestCall") {
		t.Errorf("panic: %v", err)
	}
	if err := Call("op", func() error { panic(nil) }); !errors.As(err, &pe) {
		t.Errorf("panic(nil): %v", err)
	}
}
